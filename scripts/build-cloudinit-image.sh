#!/usr/bin/env bash
# Builds a Debian 12 guest with the real cloud-init, for the guest-bootstrap compatibility test
# (tests/Hypercore.Drivers.Qemu.Tests/CloudInitGuestTests.cs) and for trying metadata by hand:
#   <target>/rootfs.ext4   ext4 root disk (mmdebstrap: systemd, cloud-init, ifupdown, the cloud kernel and its modules)
#   <target>/vmlinuz       the cloud kernel installed in it
#   <target>/initrd.img    its initramfs (initramfs-tools; loads virtio_mmio/virtio_blk and mounts root=/dev/vda)
#
# Usage: build-cloudinit-image.sh TARGET_DIR
# Needs root, mmdebstrap and e2fsprogs (scripts/setup.sh installs them), and the Debian mirrors.
# Slow: it downloads and unpacks ~200 packages. Callers cache TARGET_DIR by this script's hash.
set -euo pipefail

target="${1:?usage: build-cloudinit-image.sh TARGET_DIR}"
log() { echo "build-cloudinit-image: $*" >&2; }
for tool in mmdebstrap mkfs.ext4; do
    command -v "$tool" >/dev/null || { echo "build-cloudinit-image.sh: $tool not found (run scripts/setup.sh)" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/hypercore-cloudinit.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"

# minbase + what a cloud image carries for cloud-init's NoCloud source and its ENI network renderer.
packages=(
    systemd-sysv udev cloud-init ifupdown iproute2 iputils-ping
    linux-image-cloud-amd64 initramfs-tools
)
log "mmdebstrap bookworm (${packages[*]})"
mmdebstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
    --dpkgopt='path-exclude=/usr/share/{doc,man,locale}/*' \
    --customize-hook='echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$1/etc/fstab"' \
    --customize-hook='echo cloudinit-guest >"$1/etc/hostname"' \
    --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true' \
    bookworm "$root" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2

vmlinuz="$(ls "$root"/boot/vmlinuz-* | head -n1)"
initrd="$(ls "$root"/boot/initrd.img-* | head -n1)"
[[ -s "$vmlinuz" && -s "$initrd" ]] || { echo "build-cloudinit-image.sh: no kernel/initramfs in the rootfs" >&2; exit 1; }

# Room for cloud-init's writes (logs, instance data) beside the tree.
kib=$(( $(du -sk "$root" | cut -f1) * 13 / 10 + 256 * 1024 ))
log "mkfs.ext4 -d ($kib KiB)"
mkfs.ext4 -q -F -L rootfs -d "$root" "$work/rootfs.ext4" "${kib}k" >&2

mkdir -p "$target"
cp "$vmlinuz" "$target/.vmlinuz.tmp" && mv -f "$target/.vmlinuz.tmp" "$target/vmlinuz"
cp "$initrd" "$target/.initrd.img.tmp" && mv -f "$target/.initrd.img.tmp" "$target/initrd.img"
mv -f "$work/rootfs.ext4" "$target/rootfs.ext4"
log "built $target ($(du -sh "$target/rootfs.ext4" | cut -f1) root disk, kernel ${vmlinuz##*/vmlinuz-})"
