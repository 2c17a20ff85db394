#!/bin/bash
# Build a small Debian 12 guest with cloud-init: the client every real cloud image uses.
#
# The root filesystem comes from Debian packages (debootstrap from the mirror the host's apt
# sources name, minbase plus the cloud kernel, cloud-init, ifupdown + isc-dhcp-client for its
# network renderer and openssh-server for its key handling). Like build.sh, no loop devices
# and no mounts of the image: the ext4 root is made from the directory by `mkfs.ext4 -d`, the
# boot partition is a FAT file filled with mtools and booted by syslinux, and both are dd'd
# behind an MBR. (debootstrap itself mounts /proc inside its target while packages configure;
# that is the chroot, not the image.)
#
# Cached like build.sh: a hash over this script and the suite names the output directory,
# and a second run only prints the path. A build downloads a few hundred MiB of packages
# and takes minutes; the cache keeps it to once per machine.
#
# Usage: build-cloudinit.sh [OUTDIR]     build (if needed) into OUTDIR/<hash>/, print
#                                         OUTDIR/<hash>/cloud.qcow2 on stdout
#        build-cloudinit.sh --print-hash
# Output: OUTDIR/<hash>/cloud.qcow2, MANIFEST
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LC_ALL=C TZ=UTC DEBIAN_FRONTEND=noninteractive

SUITE=bookworm
DISK_MIB=2048
BOOT_MIB=96
PART_START=2048                # sectors: the boot partition at 1 MiB
DISK_ID=0x636c6f75             # fixed MBR disk identifier ("clou")
# quiet: every kernel line costs serial-port time under TCG; the serial port is the only console
CMDLINE="root=/dev/vda2 ro console=ttyS0,115200 quiet panic=10"
PACKAGES=linux-image-cloud-amd64,python3-cffi-backend,initramfs-tools,systemd-sysv,udev,cloud-init,ifupdown,isc-dhcp-client,openssh-server,sudo,iproute2,netbase,ca-certificates

die() { echo "build-cloudinit.sh: $*" >&2; exit 1; }
log() { echo "build-cloudinit.sh: $*" >&2; }

for tool in debootstrap sfdisk mkfs.vfat mkfs.ext4 syslinux mcopy qemu-img; do
    command -v "$tool" >/dev/null || die "missing tool $tool"
done
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
[[ -e "$MBR_BIN" ]] || die "missing $MBR_BIN (apt-get install syslinux)"

HASH=$( { echo "format 1"; echo "suite $SUITE"; echo "packages $PACKAGES";
          sha256sum "$HERE/build-cloudinit.sh" | cut -d' ' -f1; } | sha256sum | cut -c1-16)
if [[ "${1:-}" == "--print-hash" ]]; then
    echo "$HASH"
    exit 0
fi

OUTROOT=${1:-$HERE/out-cloudinit}
mkdir -p "$OUTROOT"
OUTROOT=$(cd "$OUTROOT" && pwd)
DEST=$OUTROOT/$HASH
if [[ -f "$DEST/MANIFEST" && -f "$DEST/cloud.qcow2" ]]; then
    log "cached: $DEST"
    echo "$DEST/cloud.qcow2"
    exit 0
fi
[[ $(id -u) == 0 ]] || die "debootstrap needs root"

. "$HERE/debian-mirror.sh"
MIRROR=$(debian_mirror)
[[ -n "$MIRROR" ]] || die "this host's apt sources name no Debian mirror to debootstrap from"

WORK=$(mktemp -d "$OUTROOT/.build-$HASH.XXXXXX")
ROOT=$WORK/root
cleanup() {
    # debootstrap mounts these while it configures; never leave one behind
    for m in proc sys dev/pts dev; do
        mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
log "building $HASH ($SUITE) in $WORK"

# Packages: no recommends (keeps it small), the kernel's initramfs built in the chroot.
# debootstrap does not resolve virtual packages: python3-cffi-backend is named for
# python3-cryptography (cloud-init's dependency), which only asks for its virtual API name.
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { cp "$ROOT/debootstrap/debootstrap.log" "$OUTROOT/last-failure.log" 2>/dev/null || true
         tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $OUTROOT/last-failure.log)"; }

# --- configure the guest -------------------------------------------------------------
cat >"$ROOT/etc/fstab" <<'EOF'
/dev/vda2  /      ext4  defaults,errors=remount-ro  0 1
/dev/vda1  /boot/efi-unused  vfat  noauto  0 0
EOF
echo localhost >"$ROOT/etc/hostname"
: >"$ROOT/etc/machine-id"                      # systemd makes one at first boot
rm -f "$ROOT/var/lib/dbus/machine-id"
cat >"$ROOT/etc/network/interfaces" <<'EOF'
# cloud-init writes /etc/network/interfaces.d/50-cloud-init from the metadata
auto lo
iface lo inet loopback
source /etc/network/interfaces.d/*
EOF
# Datasources the way Debian's cloud images list them (ds-identify narrows them by DMI and
# the config drive's label); no EC2-style guessing at other addresses.
cat >"$ROOT/etc/cloud/cloud.cfg.d/90-monostack.cfg" <<'EOF'
datasource_list: [ ConfigDrive, OpenStack, None ]
datasource:
  OpenStack:
    max_wait: 120
    timeout: 10
    retries: 5
EOF
# Boot time under TCG (minutes otherwise): cloud-init makes only an ed25519 host key (RSA
# key generation alone takes a minute there), and timers that would start package work at
# boot are masked.
cat >>"$ROOT/etc/cloud/cloud.cfg.d/90-monostack.cfg" <<'EOF'
ssh_genkeytypes: [ ed25519 ]
EOF
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
            fstrim.timer; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
# A small initramfs: only what a KVM/TCG guest needs, not every driver. The cdrom drivers are
# in it too: ds-identify runs as a systemd generator, before udev loads anything from the
# root, and must already see the config drive (else it takes the metadata service instead).
sed -i 's/^MODULES=.*/MODULES=list/' "$ROOT/etc/initramfs-tools/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk virtio_net virtio_scsi ext4 ata_piix sr_mod cdrom isofs \
    >>"$ROOT/etc/initramfs-tools/modules"
chroot "$ROOT" update-initramfs -u -k all >"$WORK/initramfs.log" 2>&1 \
    || { cat "$WORK/initramfs.log" >&2; die "update-initramfs failed"; }
rm -f "$ROOT/etc/ssh/ssh_host_"*                # cloud-init makes the guest's own host keys
chroot "$ROOT" apt-get clean
rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/var/log/"*.log "$ROOT/usr/share/doc" \
       "$ROOT/usr/share/man" "$ROOT/usr/share/locale"
VMLINUZ=$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -n1)
INITRD=$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -n1)
[[ -f "$VMLINUZ" && -f "$INITRD" ]] || die "no kernel or initrd in the root filesystem"
for m in proc sys dev/pts dev; do
    mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m"
done

# --- partitions, each in its own file ------------------------------------------------
ROOT_START=$(( PART_START + BOOT_MIB * 2048 ))
ROOT_SECTORS=$(( DISK_MIB * 2048 - ROOT_START ))
BOOT=$WORK/boot.img
mkfs.vfat -F 16 -n CLOUDBOOT -h "$PART_START" --invariant -C "$BOOT" $(( BOOT_MIB * 1024 )) >/dev/null
syslinux --install "$BOOT"
STAGE=$WORK/stage
mkdir -p "$STAGE"
cp "$VMLINUZ" "$STAGE/vmlinuz"
cp "$INITRD" "$STAGE/initrd.img"
cat >"$STAGE/syslinux.cfg" <<EOF
SERIAL 0 115200
PROMPT 0
TIMEOUT 0
DEFAULT debian
LABEL debian
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND $CMDLINE
EOF
MTOOLS_SKIP_CHECK=1 mcopy -m -i "$BOOT" "$STAGE/vmlinuz" "$STAGE/initrd.img" "$STAGE/syslinux.cfg" ::/
ROOTFS=$WORK/root.img
mkfs.ext4 -q -L cloudroot -d "$ROOT" "$ROOTFS" $(( ROOT_SECTORS / 2 ))k

RAW=$WORK/cloud.raw
truncate -s "${DISK_MIB}M" "$RAW"
sfdisk --quiet "$RAW" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors

start=$PART_START, size=$(( BOOT_MIB * 2048 )), type=6, bootable
start=$ROOT_START, size=$ROOT_SECTORS, type=83
EOF
dd if="$BOOT" of="$RAW" bs=512 seek="$PART_START" conv=notrunc,sparse status=none
dd if="$ROOTFS" of="$RAW" bs=1M seek=$(( ROOT_START / 2048 )) conv=notrunc,sparse status=none
dd if="$MBR_BIN" of="$RAW" bs=440 count=1 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$RAW" "$WORK/cloud.qcow2"

{
    echo "hash: $HASH"
    echo "suite: $SUITE"
    echo "kernel: $(basename "$VMLINUZ")"
    echo "cmdline: $CMDLINE"
    chroot "$ROOT" dpkg-query -W -f='package: ${Package}=${Version}\n' \
        linux-image-cloud-amd64 cloud-init systemd ifupdown isc-dhcp-client openssh-server
    (cd "$WORK" && sha256sum cloud.qcow2 | sed 's/^/sha256: /')
} >"$WORK/MANIFEST"

OUT=$WORK/out
mkdir -m 0755 "$OUT"
mv "$WORK/cloud.qcow2" "$WORK/MANIFEST" "$OUT/"
chmod 0644 "$OUT"/*
if ! mv -T "$OUT" "$DEST" 2>/dev/null; then
    [[ -f "$DEST/MANIFEST" ]] || die "could not publish $DEST"
    log "another build published $DEST first"
fi
log "built $DEST"
echo "$DEST/cloud.qcow2"
