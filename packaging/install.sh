#!/usr/bin/env bash
# Installs and starts monostack on a fresh Debian 12 host. Idempotent: a second run changes
# nothing and says so.
#   sudo bash packaging/install.sh [--prefix /opt/monostack] [--admin-password PW]
#                                  [--listen 127.0.0.1:5000] [--tls-name NAME]...
#                                  [--web [HOST:PORT] | --no-web]
# The admin password comes from --admin-password, MONOSTACK_ADMIN_PASSWORD, or is generated; it
# is kept in /etc/monostack/admin-password (root only) for host-side commands (backup, status),
# and in /etc/monostack/admin-openrc (root only) for the OpenStack clients shipped with it.
# The TCP API speaks TLS with a private CA made here (/etc/monostack/tls/ca.crt: OS_CACERT).
# SSH operators (monostack operator add) land in the TUI; where systemd is not PID 1 this
# script starts sshd itself, as it does the daemon and libvirtd.
# --web (off by default) also serves the operator console to browsers (`monostack web`, TLS,
# default 0.0.0.0:8443) as an unprivileged user; once enabled, later runs keep it running
# until --no-web stops it.
# Uses only Debian's /usr/bin/python3 and packages; nothing from a development machine.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/monostack
LISTEN=127.0.0.1:5000
ADMIN_PASSWORD=${MONOSTACK_ADMIN_PASSWORD:-}
TLS_NAMES=()
ETC=/etc/monostack
STATE=/var/lib/monostack
WEB=""
WEB_LISTEN=""
# shellcheck source=packaging/web-console.sh
. "$SRC/packaging/web-console.sh"
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --admin-password) ADMIN_PASSWORD=$2; shift 2 ;;
    --listen) LISTEN=$2; shift 2 ;;
    --tls-name) TLS_NAMES+=(--name "$2"); shift 2 ;;
    --web) WEB=1
           if [ $# -gt 1 ] && [[ $2 != -* ]]; then WEB_LISTEN=$2; shift; fi
           shift ;;
    --no-web) WEB=off; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -n "$WEB_LISTEN" ] && ! web_listen_valid "$WEB_LISTEN"; then
  echo "install.sh: --web takes HOST:PORT with a port from 1024 (the console runs unprivileged)," \
       "not '$WEB_LISTEN'" >&2; exit 2
fi
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }

changed=0   # anything at all changed on this host
restart=0   # the running daemon must be restarted to see a change (program, config, cert)
say() { echo "monostack install: $*"; }
warn() { echo "monostack install: WARNING: $*" >&2; }

PACKAGES=(
  python3 python3-venv python3-dev gcc pkg-config ca-certificates
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-dev
  nftables iproute2 busybox-static linux-image-cloud-amd64
  syslinux syslinux-common mtools dosfstools fdisk xorriso genisoimage
  openssh-server cpio gzip
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  changed=1
fi

# -- the program, in its own virtualenv ---------------------------------------------------------
src_hash=$(cd "$SRC" && find appliance storage tui packaging pyproject.toml -type f \
             ! -path '*/__pycache__/*' ! -path 'packaging/guest-image/out/*' -print0 \
           | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$PREFIX/.source-hash" 2>/dev/null)" != "$src_hash" ]; then
  say "installing monostack into $PREFIX/venv"
  mkdir -p "$PREFIX"
  [ -x "$PREFIX/venv/bin/python" ] || /usr/bin/python3 -m venv "$PREFIX/venv"
  "$PREFIX/venv/bin/pip" install -q --upgrade pip
  "$PREFIX/venv/bin/pip" install -q "$SRC[clients]"
  cp "$SRC/README.md" "$PREFIX/README.md"
  echo "$src_hash" > "$PREFIX/.source-hash"
  changed=1; restart=1
fi
for cmd in monostack openstack swift; do  # the appliance and the OpenStack clients on PATH
  if [ "$(readlink "/usr/local/bin/$cmd" 2>/dev/null)" != "$PREFIX/venv/bin/$cmd" ]; then
    ln -sfn "$PREFIX/venv/bin/$cmd" "/usr/local/bin/$cmd"; changed=1
  fi
done
ms() { "$PREFIX/venv/bin/monostack" --config "$ETC/monostack.toml" "$@"; }

# -- directories and configuration --------------------------------------------------------------
# state/ holds identity and tokens: root only. Disk files must be traversable by libvirt-qemu.
install -d -m 0755 "$STATE" "$STATE/instances" "$STATE/images" "$STATE/volumes"
install -d -m 0700 "$STATE/state" "$STATE/objects" "$STATE/objects/d1" "$STATE/objects/d2" "$STATE/objects/d3"
# /etc/monostack is traversable so operators' TUI can read client.toml; what is secret in it
# is root-only file by file (monostack.toml 0640, admin-password and admin-openrc 0600, keys).
if [ ! -d "$ETC" ] || [ "$(stat -c %a "$ETC")" != 755 ]; then install -d -m 0755 "$ETC"; changed=1; fi
if [ ! -f "$ETC/monostack.toml" ]; then
  say "writing $ETC/monostack.toml"
  cat > "$ETC/monostack.toml" <<CONF
state_dir = "$STATE/state"

[api]
socket = "/run/monostack/api.sock"
listen = "$LISTEN"
tls_cert = "$ETC/tls/server.crt"
tls_key = "$ETC/tls/server.key"

[compute]
libvirt_uri = "qemu:///system"
instances_dir = "$STATE/instances"

[network]
namespace = "monostack-dp"

[storage]
images_dir = "$STATE/images"
volumes_dir = "$STATE/volumes"
object_devices = ["$STATE/objects/d1", "$STATE/objects/d2", "$STATE/objects/d3"]

[log]
format = "json"
CONF
  chmod 0640 "$ETC/monostack.toml"
  changed=1; restart=1
fi
if ! grep -q '^tls_cert' "$ETC/monostack.toml"; then  # a config from before TLS
  say "enabling TLS on the TCP API in $ETC/monostack.toml"
  sed -i "/^\[api\]/a tls_cert = \"$ETC/tls/server.crt\"\ntls_key = \"$ETC/tls/server.key\"" \
    "$ETC/monostack.toml"
  changed=1; restart=1
fi

# -- TLS: a private CA (kept) and a server certificate for this host's names and addresses -----
tls_out=$(ms tls init --dir "$ETC/tls" "${TLS_NAMES[@]}")
if ! grep -q "nothing changed" <<<"$tls_out"; then
  grep -v '^clients:' <<<"$tls_out" | sed 's/^/monostack install: /'
  changed=1; restart=1
fi

# -- SSH into the appliance: operators land in the TUI ------------------------------------------
# by pid file, not by name: in a chroot, a name would match the host's daemons
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
systemd_running() { [ -d /run/systemd/system ]; }
getent group monostack-operators >/dev/null || { groupadd --system monostack-operators; changed=1; }
if [ -d /etc/ssh/sshd_config.d ] && ! cmp -s "$SRC/packaging/ssh/monostack.conf" /etc/ssh/sshd_config.d/monostack.conf; then
  install -m 0644 "$SRC/packaging/ssh/monostack.conf" /etc/ssh/sshd_config.d/monostack.conf
  if sshd -t 2>/dev/null; then
    (systemctl reload ssh 2>/dev/null || kill -HUP "$(cat /run/sshd.pid 2>/dev/null)" 2>/dev/null) || true
  fi
  say "sshd: members of monostack-operators land in the TUI (/etc/ssh/sshd_config.d/monostack.conf)"
  changed=1
fi
sshd_ports() { sshd -T 2>/dev/null | awk '/^port /{print $2}' | paste -sd, -; }
if systemd_running; then
  if ! systemctl is-active --quiet ssh; then
    systemctl enable --now ssh >/dev/null 2>&1 || true
    systemctl is-active --quiet ssh && say "started sshd: systemctl enable --now ssh (port $(sshd_ports))"
    changed=1
  fi
elif ! alive /run/sshd.pid; then
  install -d -m 0755 /run/sshd
  ssh-keygen -A >/dev/null  # host keys, where the package's scripts did not make them
  if /usr/sbin/sshd; then
    for _ in $(seq 1 50); do alive /run/sshd.pid && break; sleep 0.1; done  # it forks first
    say "systemd is not PID 1 here: started sshd myself (/usr/sbin/sshd, pid $(cat /run/sshd.pid)," \
        "port $(sshd_ports)); it is not restarted at boot"
  else
    warn "sshd did not start (sshd -t shows why): operators cannot SSH in"
  fi
  changed=1
fi

# -- libvirt ------------------------------------------------------------------------------------
# Where libvirtd cannot run (some containers) the install still finishes: the daemon reports its
# compute component as failed in `monostack status` until libvirt answers.
# Both daemons are asked whether they answer: a pidfile or socket left in a /run that is not a
# tmpfs says nothing, and libvirtd answering says nothing of virtlogd (without which no guest
# starts: "Failed to connect socket to '/run/libvirt/virtlogd-sock'").
libvirt_up() { timeout 20 virsh -c qemu:///system version >/dev/null 2>&1; }
virtlogd_up() { python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' \
                  /run/libvirt/virtlogd-sock 2>/dev/null; }
if ! libvirt_up || ! virtlogd_up; then
  if systemd_running; then
    systemctl enable --now virtlogd.socket libvirtd.service >/dev/null 2>&1 || true
  else
    virtlogd_up || virtlogd -d || true
    libvirt_up || libvirtd -d || true
  fi
  for _ in $(seq 1 30); do libvirt_up && virtlogd_up && break; sleep 0.5; done
  virtlogd_up || warn "virtlogd does not answer: servers cannot boot until it does"
  libvirt_up || warn "libvirt (qemu:///system) does not answer: servers cannot boot until it does" \
                     "(see 'monostack doctor'); continuing"
fi

# -- the admin password: given, kept from an earlier run, or generated; root-only on disk --------
if [ -z "$ADMIN_PASSWORD" ] && [ -f "$ETC/admin-password" ]; then
  ADMIN_PASSWORD=$(cat "$ETC/admin-password")
fi
if [ -z "$ADMIN_PASSWORD" ]; then
  ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | cut -c1-20)
  say "generated an admin password, kept in $ETC/admin-password (root only)"
fi
if [ "$(cat "$ETC/admin-password" 2>/dev/null)" != "$ADMIN_PASSWORD" ]; then
  (umask 077; printf '%s\n' "$ADMIN_PASSWORD" > "$ETC/admin-password.new")
  mv "$ETC/admin-password.new" "$ETC/admin-password"
  changed=1
fi
# Host-side commands below (image-import) read it from the environment, never from argv.
export MONOSTACK_ADMIN_PASSWORD=$ADMIN_PASSWORD

# -- first-run bootstrap ------------------------------------------------------------------------
if [ ! -f "$STATE/state/snapshot.json" ]; then
  say "bootstrapping the admin user, default flavors and network"
  printf '%s\n' "$ADMIN_PASSWORD" | MONOSTACK_ADMIN_PASSWORD= ms init --quiet
  changed=1
fi

# -- the daemon ---------------------------------------------------------------------------------
daemon_up() { local rc=0; ms status --daemon >/dev/null 2>&1 || rc=$?; [ $rc = 0 ]; }
if systemd_running; then
  unit=/etc/systemd/system/monostack.service
  sed "s#/opt/monostack#$PREFIX#g" "$SRC/packaging/systemd/monostack.service" > "$unit.new"
  if ! cmp -s "$unit.new" "$unit"; then
    mv "$unit.new" "$unit"; systemctl daemon-reload; changed=1; restart=1
  else
    rm -f "$unit.new"
  fi
  if ! systemctl is-enabled --quiet monostack || ! systemctl is-active --quiet monostack; then
    systemctl enable --now monostack >/dev/null; changed=1
  elif [ $restart = 1 ]; then
    say "restarting the daemon"
    systemctl restart monostack
  fi
else
  pidfile=/run/monostack/daemon.pid
  if [ $restart = 1 ] && [ -f $pidfile ] && kill -0 "$(cat $pidfile)" 2>/dev/null; then
    say "restarting the daemon (pid $(cat $pidfile))"
    kill -TERM "$(cat $pidfile)"
    for _ in $(seq 1 300); do kill -0 "$(cat $pidfile)" 2>/dev/null || break; sleep 0.2; done
  fi
  if ! daemon_up; then
    say "systemd is not PID 1 here: starting the daemon directly (log: /var/log/monostack.log)"
    install -d -m 0755 /run/monostack
    setsid nohup "$PREFIX/venv/bin/monostack" --config "$ETC/monostack.toml" serve \
      >> /var/log/monostack.log 2>&1 < /dev/null &
    echo $! > $pidfile
    changed=1
  fi
fi
for _ in $(seq 1 150); do daemon_up && break; sleep 0.2; done
daemon_up || { echo "monostack install: the daemon did not come up; see 'monostack doctor'" \
                    "and $( systemd_running && echo 'journalctl -u monostack' || echo /var/log/monostack.log)" >&2
               exit 1; }

# -- what clients need: a public client config (operators' TUI), the admin's openrc (root) ----
if ! ms client-config --write "$ETC/client.toml" | grep -q "nothing changed"; then
  say "wrote $ETC/client.toml (socket, API URL, CA; readable by all, nothing secret)"; changed=1
fi
openrc=$(ms openrc --with-password)
if [ "$(cat "$ETC/admin-openrc" 2>/dev/null)" != "$openrc" ]; then
  (umask 077; printf '%s\n' "$openrc" > "$ETC/admin-openrc.new")
  mv "$ETC/admin-openrc.new" "$ETC/admin-openrc"
  say "wrote $ETC/admin-openrc: the admin's OpenStack client settings and password (root only)"
  changed=1
fi

# -- the operator console in a browser: only on request (--web); kept running once enabled -----
if [ -z "$WEB" ] && [ -n "$(web_recorded_listen)" ]; then WEB=1; fi
if [ "$WEB" = off ]; then
  disable_web_console
elif [ -n "$WEB" ]; then
  WEB_LISTEN=${WEB_LISTEN:-$(web_recorded_listen)}
  WEB_LISTEN=${WEB_LISTEN:-0.0.0.0:8443}
  enable_web_console
fi

# -- the ready-to-boot guest image --------------------------------------------------------------
if ! ms image-import --check tinyguest >/dev/null 2>&1; then
  say "building and importing the test guest image 'tinyguest'"
  out=$(bash "$SRC/packaging/guest-image/build.sh" "$STATE/guest-image" | tail -1)
  ms image-import --name tinyguest --disk-format qcow2 "$out" | sed 's/^/monostack install: /'
  changed=1
fi

if [ $changed = 0 ]; then
  say "already installed and running; nothing changed"
else
  say "done"
fi
ssh_line=$( (ms status 2>/dev/null || true) | sed -n 's/^ *ssh operators *//p')
cat <<MSG

  Operator console:   monostack tui          (user admin, project admin)
  Admin password:     in $ETC/admin-password (root only)
  OpenStack clients:  . $ETC/admin-openrc  (root only: it holds the admin password)
                      then: openstack server list; swift list
  SSH operators:      monostack operator add NAME --key KEY.pub; then ssh -t NAME@this-host
                      ${ssh_line:-(monostack status tells whether they can get in)}
  Web console:        $(web_console_summary)
  Health:             monostack status
MSG
