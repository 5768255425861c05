#!/usr/bin/env bash
# Builds ferrovirt's tiny test guest into guest/build/:
#   guest/build/vmlinuz          kernel copied from Debian's linux-image package
#   guest/build/initramfs.cpio.gz busybox-static userland + the few modules it needs
#
# Why a kernel + initramfs and no disk image: direct kernel boot needs no
# bootloader, no partitioning tools and no root privileges, boots in about a
# second under KVM, and exercises the same ACPI/serial paths a real guest does.
#
# Idempotent: re-running rebuilds only when an input (kernel, busybox, this
# script, the rootfs files) is newer than the output.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/build"
busybox="${BUSYBOX:-/bin/busybox}"

# The packaged kernel: prefer the one matching the running kernel (its modules
# are surely installed), else the newest /boot/vmlinuz-*.
kver="${GUEST_KVER:-}"
if [[ -z "$kver" ]]; then
    if [[ -e "/boot/vmlinuz-$(uname -r)" && -d "/lib/modules/$(uname -r)" ]]; then
        kver="$(uname -r)"
    else
        kver="$(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n1)"
    fi
fi
kernel="/boot/vmlinuz-$kver"
moddir="/lib/modules/$kver"

die() { echo "guest/build.sh: $*" >&2; exit 1; }
[[ -n "$kver" && -r "$kernel" ]] || die "no readable kernel in /boot (install linux-image-amd64)"
[[ -d "$moddir" ]] || die "no modules in $moddir (install the linux-image package matching $kernel)"
[[ -x "$busybox" ]] || die "no $busybox (install busybox-static)"
# A dynamically linked busybox would need its libc inside the initramfs.
if command -v readelf >/dev/null && readelf -l "$busybox" | grep -q 'Requesting program interpreter'; then
    die "$busybox is dynamically linked (install busybox-static)"
fi
for tool in cpio gzip; do command -v "$tool" >/dev/null || die "missing $tool"; done

initramfs="$out/initramfs.cpio.gz"
vmlinuz="$out/vmlinuz"
stamp="$out/.inputs"
inputs="$(sha256sum "$0" "$busybox" "$kernel" "$here"/rootfs/* 2>/dev/null | sha256sum | cut -d' ' -f1) $kver"
if [[ -f "$initramfs" && -f "$vmlinuz" && -f "$stamp" && "$(cat "$stamp")" == "$inputs" ]]; then
    echo "guest/build.sh: up to date ($out)"
    exit 0
fi

mkdir -p "$out"
work="$(mktemp -d "$out/.root.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Modules the guest may need, if they are modules in this kernel (built-in
# drivers need nothing). button+evdev: ACPI power button as an input device,
# which busybox acpid watches. The rest: disks and NICs ferrovirt emits.
wanted=(button evdev virtio_pci virtio_blk virtio_net e1000 e1000e virtio_scsi ahci ata_piix sd_mod sr_mod virtio_balloon i6300esb)
declare -A seen=()
order=()
# Resolve dependencies from modules.dep, depth first, so that the list is in
# load order and /init can insmod it without modprobe's index files.
resolve() {
    local rel="$1" line deps d
    [[ -n "${seen[$rel]:-}" ]] && return 0
    seen[$rel]=1
    line="$(grep -E "^${rel//./\\.}:" "$moddir/modules.dep" || true)"
    deps="${line#*:}"
    for d in $deps; do resolve "$d"; done
    order+=("$rel")
}
for m in "${wanted[@]}"; do
    rel="$(grep -E "/${m}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1 | cut -d: -f1 || true)"
    [[ -n "$rel" ]] && resolve "$rel"
done

mkdir -p "$work"/{bin,sbin,etc/acpi/PWRF,proc,sys,dev,tmp,run,var/log,lib/modules}
cp "$busybox" "$work/bin/busybox"
for applet in $("$busybox" --list); do
    [[ "$applet" == busybox ]] && continue
    ln -sf busybox "$work/bin/$applet"
done
for applet in init poweroff reboot halt acpid; do ln -sf ../bin/busybox "$work/sbin/$applet"; done
ln -sf bin/busybox "$work/init"

: > "$work/etc/modules.load"
for rel in "${order[@]}"; do
    name="$(basename "$rel")"
    case "$rel" in
        *.ko.xz) xz -dc "$moddir/$rel" > "$work/lib/modules/${name%.xz}"; name="${name%.xz}" ;;
        *.ko.zst) zstd -qdc "$moddir/$rel" > "$work/lib/modules/${name%.zst}"; name="${name%.zst}" ;;
        *.ko.gz) gzip -dc "$moddir/$rel" > "$work/lib/modules/${name%.gz}"; name="${name%.gz}" ;;
        *) cp "$moddir/$rel" "$work/lib/modules/$name" ;;
    esac
    echo "$name" >> "$work/etc/modules.load"
done

cp "$here/rootfs/inittab" "$work/etc/inittab"
cp "$here/rootfs/rcS" "$work/etc/rcS"
cp "$here/rootfs/power-button" "$work/etc/acpi/PWRF/00000080"
cp "$here/rootfs/udhcpc.script" "$work/etc/udhcpc.script"
chmod 755 "$work/etc/rcS" "$work/etc/acpi/PWRF/00000080" "$work/etc/udhcpc.script"

(cd "$work" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --owner=0:0 --reproducible) \
    | gzip -9n > "$initramfs.tmp"
mv "$initramfs.tmp" "$initramfs"
cp "$kernel" "$vmlinuz.tmp"
mv "$vmlinuz.tmp" "$vmlinuz"
echo "$inputs" > "$stamp"
echo "guest/build.sh: built $vmlinuz and $initramfs (kernel $kver, ${#order[@]} modules)"
