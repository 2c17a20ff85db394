#!/bin/bash
# Build the monostack test guest: a small BIOS-bootable disk (raw + qcow2).
#
# Everything comes from Debian packages already on the host, nothing is
# downloaded: the linux-image-cloud-amd64 kernel in /boot and its modules,
# busybox-static for the initramfs, syslinux (+ mbr.bin) as bootloader, and
# sfdisk / mkfs.vfat / mtools / qemu-img to lay out the disk.  No loop
# devices and no mounts: the FAT partition is built in its own file, filled
# with mtools, then dd'd into the disk image behind an MBR.
#
# The output is cached and reproducible: a hash over this directory's files,
# the kernel and busybox binaries and the tool versions names the output
# directory, so a second run with the same inputs only prints the path.
#
# Usage: build.sh [OUTDIR]          build (if needed) into OUTDIR/<hash>/ and
#                                   print OUTDIR/<hash>/guest.qcow2 on stdout
#                                   (guest.raw sits beside it)
#        build.sh --print-hash      print the input hash only
# Env:   KERNEL_VERSION             default: newest /boot/vmlinuz-*-cloud-amd64
#        SOURCE_DATE_EPOCH          default: fixed (2024-01-01T00:00:00Z)
# Output: OUTDIR/<hash>/guest.raw, guest.qcow2, MANIFEST
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}
export LC_ALL=C TZ=UTC

DISK_MIB=64          # whole disk; raw is sparse, qcow2 holds only data
PART_START=2048      # sectors: first partition at 1 MiB
DISK_ID=0x6d6f6e6f   # fixed MBR disk identifier ("mono"); --invariant fixes the FAT serial
CMDLINE="console=ttyS0,115200 quiet panic=5"

# Top-level modules the guest loads; their dependencies are added in order.
# virtio bus + disk + NIC + console, virtio-scsi and IDE (ata_piix) cdroms
# with sr_mod/isofs for the config drive, evdev + button for ACPI poweroff.
WANT_MODULES=(virtio_pci virtio_blk virtio_net virtio_console
              scsi_mod virtio_scsi sd_mod sr_mod ata_piix isofs evdev button)
# Parameters for insmod (there is no modprobe.d in the guest). Synchronous
# SCSI scanning makes /dev/sr0 exist as soon as insmod returns.
declare -A MODULE_PARAMS=([scsi_mod]="scan=sync")

die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

# --- inputs ---------------------------------------------------------------
if [[ -z "${KERNEL_VERSION:-}" ]]; then
    KERNEL_VERSION=$(find /boot -maxdepth 1 -name 'vmlinuz-*-cloud-amd64' -printf '%f\n' \
                     | sed 's/^vmlinuz-//' | sort -V | tail -n1)
fi
[[ -n "$KERNEL_VERSION" ]] || die "no /boot/vmlinuz-*-cloud-amd64 (apt-get install linux-image-cloud-amd64)"
VMLINUZ=/boot/vmlinuz-$KERNEL_VERSION
MODDIR=/lib/modules/$KERNEL_VERSION
BUSYBOX=/bin/busybox
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
for f in "$VMLINUZ" "$MODDIR/modules.dep" "$BUSYBOX" "$MBR_BIN"; do
    [[ -e "$f" ]] || die "missing $f"
done
for tool in sfdisk mkfs.vfat syslinux mcopy qemu-img cpio gzip; do
    command -v "$tool" >/dev/null || die "missing tool $tool"
done
"$BUSYBOX" --list | grep -qx udhcpc || die "$BUSYBOX is not busybox-static"

pkg_version() { dpkg-query -W -f='${Package}=${Version}\n' "$@" 2>/dev/null || true; }

input_hash() {
    {
        echo "format 1"
        (cd "$HERE" && sha256sum build.sh init udhcpc.script)
        echo "kernel $KERNEL_VERSION"
        sha256sum "$VMLINUZ" "$BUSYBOX" "$MBR_BIN"
        pkg_version "linux-image-$KERNEL_VERSION" busybox-static syslinux syslinux-common \
            mtools dosfstools fdisk qemu-utils cpio gzip
        echo "epoch $SOURCE_DATE_EPOCH"
    } | sha256sum | cut -c1-16
}

HASH=$(input_hash)
if [[ "${1:-}" == "--print-hash" ]]; then
    echo "$HASH"
    exit 0
fi

OUTROOT=${1:-$HERE/out}
mkdir -p "$OUTROOT"
OUTROOT=$(cd "$OUTROOT" && pwd)
DEST=$OUTROOT/$HASH
if [[ -f "$DEST/MANIFEST" && -f "$DEST/guest.raw" && -f "$DEST/guest.qcow2" ]]; then
    log "cached: $DEST"
    echo "$DEST/guest.qcow2"
    exit 0
fi

WORK=$(mktemp -d "$OUTROOT/.build-$HASH.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "building $HASH (kernel $KERNEL_VERSION) in $WORK"

# --- modules: dependency order from modules.dep ----------------------------
declare -A MOD_PATH MOD_DEPS BUILTIN LOADED
while IFS= read -r line; do
    path=${line%%:*}
    name=${path##*/}; name=${name%%.ko*}; name=${name//-/_}
    MOD_PATH[$name]=$path
    # modules.dep lists the deepest dependency last; load that one first.
    deps=""
    for d in ${line#*:}; do
        dn=${d##*/}; dn=${dn%%.ko*}; deps="${dn//-/_} $deps"
    done
    MOD_DEPS[$name]=$deps
done <"$MODDIR/modules.dep"
while IFS= read -r path; do
    name=${path##*/}; name=${name%%.ko*}; BUILTIN[${name//-/_}]=1
done <"$MODDIR/modules.builtin"

ORDER=()
SKIPPED=()
visit() {
    local m=$1 d
    [[ -n "${LOADED[$m]:-}" ]] && return 0
    LOADED[$m]=1
    if [[ -n "${BUILTIN[$m]:-}" ]]; then SKIPPED+=("$m(builtin)"); return 0; fi
    if [[ -z "${MOD_PATH[$m]:-}" ]]; then SKIPPED+=("$m(absent)"); return 0; fi
    for d in ${MOD_DEPS[$m]}; do visit "$d"; done
    ORDER+=("$m")
}
for m in "${WANT_MODULES[@]}"; do visit "$m"; done

# --- initramfs tree ----------------------------------------------------------
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,mnt/config,var/log,var/run}
mkdir -p "$ROOT/etc/acpi/PWRF" "$ROOT/lib/modules/$KERNEL_VERSION"
install -m 0755 "$BUSYBOX" "$ROOT/bin/busybox"
while IFS= read -r applet; do
    [[ "$applet" == bin/busybox ]] && continue
    mkdir -p "$ROOT/$(dirname "$applet")"
    [[ -e "$ROOT/$applet" ]] || ln -s /bin/busybox "$ROOT/$applet"
done < <("$BUSYBOX" --list-full | sort)
install -m 0755 "$HERE/init" "$ROOT/init"
install -m 0755 "$HERE/udhcpc.script" "$ROOT/etc/udhcpc.script"

KMODS=$ROOT/lib/modules/$KERNEL_VERSION
: >"$KMODS/load-order"
for m in "${ORDER[@]}"; do
    src=$MODDIR/${MOD_PATH[$m]}
    case "$src" in
        *.ko.xz)  xz -dc "$src" >"$KMODS/$m.ko" ;;
        *.ko.zst) zstd -qdc "$src" >"$KMODS/$m.ko" ;;
        *.ko.gz)  gzip -dc "$src" >"$KMODS/$m.ko" ;;
        *.ko)     cp "$src" "$KMODS/$m.ko" ;;
        *) die "unknown module file $src" ;;
    esac
    echo "$m ${MODULE_PARAMS[$m]:-}" | sed 's/ *$//' >>"$KMODS/load-order"
done

cat >"$ROOT/etc/inittab" <<'EOF'
# busybox init takes over from /init: a respawning root shell on ttyS0.
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/echo "monostack-guest shutting down"
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r 2>/dev/null
EOF
cat >"$ROOT/etc/profile" <<'EOF'
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
export PS1='\w \$ '
cd /
EOF
cat >"$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# ACPI power button (libvirt shutdown / os-stop): clean poweroff via init.
echo "monostack-guest: ACPI power button, powering off" >/dev/console
exec /sbin/poweroff
EOF
chmod 0755 "$ROOT/etc/acpi/PWRF/00000080"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\n' >"$ROOT/etc/group"
printf '127.0.0.1 localhost\n' >"$ROOT/etc/hosts"
chmod 0700 "$ROOT/root"

# Reproducible cpio: fixed mtimes, sorted names, owner root, no inode numbers.
find "$ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$ROOT" && find . -mindepth 1 | sort \
    | cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -6 >"$WORK/initrd.img"

# --- FAT boot partition, built in its own file -------------------------------
PART_SECTORS=$(( DISK_MIB * 2048 - PART_START ))
STAGE=$WORK/stage
mkdir -p "$STAGE"
cp "$VMLINUZ" "$STAGE/vmlinuz"
cp "$WORK/initrd.img" "$STAGE/initrd.img"
cat >"$STAGE/syslinux.cfg" <<EOF
SERIAL 0 115200
PROMPT 0
TIMEOUT 0
DEFAULT monostack
LABEL monostack
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND $CMDLINE
EOF
touch -d "@$SOURCE_DATE_EPOCH" "$STAGE"/*

PART=$WORK/part.img
mkfs.vfat -F 16 -n MONOSTACK -h "$PART_START" --invariant \
    -C "$PART" $(( PART_SECTORS / 2 )) >/dev/null
syslinux --install "$PART"
MTOOLS_SKIP_CHECK=1 mcopy -m -i "$PART" "$STAGE/vmlinuz" "$STAGE/initrd.img" "$STAGE/syslinux.cfg" ::/

# --- disk: MBR partition table + partition + syslinux MBR code ----------------
RAW=$WORK/guest.raw
truncate -s "${DISK_MIB}M" "$RAW"
sfdisk --quiet "$RAW" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors

start=$PART_START, size=$PART_SECTORS, type=6, bootable
EOF
dd if="$PART" of="$RAW" bs=512 seek="$PART_START" conv=notrunc,sparse status=none
dd if="$MBR_BIN" of="$RAW" bs=440 count=1 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$RAW" "$WORK/guest.qcow2"

{
    echo "hash: $HASH"
    echo "kernel: $KERNEL_VERSION"
    echo "cmdline: $CMDLINE"
    echo "modules: ${ORDER[*]}"
    echo "skipped-modules: ${SKIPPED[*]:-}"
    pkg_version "linux-image-$KERNEL_VERSION" busybox-static syslinux mtools dosfstools qemu-utils \
        | sed 's/^/package: /'
    (cd "$WORK" && sha256sum guest.qcow2 initrd.img | sed 's/^/sha256: /')
} >"$WORK/MANIFEST"

# Publish atomically; a concurrent build of the same hash may have won.
OUT=$WORK/out
mkdir -m 0755 "$OUT"
mv "$RAW" "$WORK/guest.qcow2" "$WORK/MANIFEST" "$OUT/"
chmod 0644 "$OUT"/*
if ! mv -T "$OUT" "$DEST" 2>/dev/null; then
    [[ -f "$DEST/MANIFEST" ]] || die "could not publish $DEST"
    log "another build published $DEST first"
fi
log "built $DEST"
echo "$DEST/guest.qcow2"
