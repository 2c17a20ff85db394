#!/usr/bin/env bash
# Sets up a fresh Debian 12 host for the test suite and runs it: system packages, a virtualenv
# with monostack and its test tools, libvirtd, then pytest. Idempotent; run as root.
#   bash tests/run.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  python3 python3-venv python3-dev gcc pkg-config git
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-dev
  nftables iproute2 busybox-static dnsmasq-base linux-image-cloud-amd64
  syslinux syslinux-common mtools dosfstools fdisk xorriso genisoimage
  openssh-server openssh-client tmux cpio gzip dnsmasq-base
  debootstrap slirp4netns
  chromium chromium-driver
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" ca-certificates
fi

PY=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import appliance, libvirt, textual, openstackclient" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  echo "== installing monostack and test tools into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test]"
  touch .venv/.installed
fi

# Ansible's openstack.cloud modules run in a venv of their own: the collection PyPI's `ansible`
# ships reads openstack.version, which openstacksdk 4.15 removed (the CLI tests keep the newest).
if [ ! -x .venv/ansible-sdk/bin/python ]; then
  echo "== creating the SDK venv for Ansible's openstack.cloud modules"
  "$PY" -m venv .venv/ansible-sdk
  .venv/ansible-sdk/bin/pip install -q 'openstacksdk<4.15'
fi

# libvirt without systemd (containers, CI): start the daemons ourselves when they do not answer.
# A libvirtd started here belongs to the test suite, which may then restart it (the
# libvirtd-restart fault test); one someone else started is never touched.
# Each daemon is asked whether it answers, never whether its socket file or pidfile exists: a
# machine whose /run is not a tmpfs keeps both from its last life (a CI machine cloned from a
# disk had /run/libvirt/virtlogd-sock and no virtlogd, so every guest failed to start).
answers() { "$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$1" 2>/dev/null; }
OWNED=/run/monostack-tests-libvirtd.pid
if ! answers /run/libvirt/virtlogd-sock; then
  echo "== starting virtlogd"
  virtlogd -d  # replaces a stale socket; exits non-zero only when a live one holds the pidfile
  for _ in $(seq 1 50); do answers /run/libvirt/virtlogd-sock && break; sleep 0.1; done
fi
if ! virsh -c qemu:///system version >/dev/null 2>&1; then
  echo "== starting libvirtd"
  # `libvirtd -d` exits non-zero when another libvirtd holds the pidfile: only one this
  # started is recorded as the suite's own.
  if libvirtd -d; then
    for _ in $(seq 1 50); do [ -s /run/libvirtd.pid ] && break; sleep 0.1; done
    cp /run/libvirtd.pid "$OWNED" 2>/dev/null || true
  fi
  for _ in $(seq 1 50); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
fi
answers /run/libvirt/virtlogd-sock || echo "== warning: virtlogd does not answer; guests cannot start" >&2

export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest tests "$@"
