#!/usr/bin/env bash
# Builds a Hypercore guest image: <target>/vmlinuz (Debian's cloud kernel) and <target>/initrd.img (busybox
# initramfs whose /init prints HYPERCORE-GUEST-READY on the serial console and powers off on the ACPI power button).
#
# Usage: build-image.sh [TARGET_DIR] [--force]
#   TARGET_DIR defaults to ${HYPERCORE_IMAGES:-/var/lib/hypercore/images}/default.
#   --force rebuilds even when both files exist.
# Environment:
#   HYPERCORE_KERNEL_DEB  use this linux-image-*-cloud-amd64 .deb instead of `apt-get download` (offline builds).
#
# The kernel package is downloaded, never installed: `dpkg-deb -x` into a temporary directory. The kernel and the
# modules in the initramfs always come from the same package, so both files are built together.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target=""
force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "build-image.sh: unknown option $arg" >&2; exit 2 ;;
        *) target="$arg" ;;
    esac
done
target="${target:-${HYPERCORE_IMAGES:-/var/lib/hypercore/images}/default}"

log() { echo "build-image: $*" >&2; }

# The image is rebuilt when the scripts that make it change (init, hooks, module lists, this file).
source_sha="$(cd "$here" && find build-image.sh image -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
if [[ $force -eq 0 && -s "$target/vmlinuz" && -s "$target/initrd.img" ]] &&
    [[ "$(cat "$target/image-source" 2>/dev/null)" == "$source_sha" ]]; then
    log "$target/vmlinuz and initrd.img already present and current; nothing to do (--force rebuilds)"
    exit 0
fi

for tool in busybox cpio gzip dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "build-image.sh: $tool not found (run scripts/setup.sh)" >&2; exit 1; }
done
busybox_bin="$(command -v busybox)"
if ! "$busybox_bin" --list >/dev/null 2>&1 || ldd "$busybox_bin" >/dev/null 2>&1; then
    echo "build-image.sh: $busybox_bin is not a static busybox (install busybox-static)" >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/hypercore-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work" # apt downloads as _apt, which must be able to reach $work/deb

# --- kernel package ------------------------------------------------------------------------------------------
deb="${HYPERCORE_KERNEL_DEB:-}"
if [[ -z "$deb" ]]; then
    pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | grep -o 'linux-image-6\.[0-9.]*-[0-9]*-cloud-amd64' | head -n1 || true)"
    if [[ -z "$pkg" ]]; then
        echo "build-image.sh: apt knows no linux-image-cloud-amd64 dependency (run apt-get update first)" >&2
        exit 1
    fi
    mkdir -p "$work/deb"
    # apt drops privileges to _apt for downloads; let it write here so it does not warn about an unsandboxed download.
    chown _apt "$work/deb" 2>/dev/null || true
    log "downloading $pkg (not installing it)"
    (cd "$work/deb" && apt-get download -q "$pkg" >&2)
    deb="$(ls "$work"/deb/*.deb)"
fi
log "extracting $deb"
dpkg-deb -x "$deb" "$work/kernel"
vmlinuz="$(ls "$work"/kernel/boot/vmlinuz-* | head -n1)"
release="${vmlinuz##*/vmlinuz-}"
moddir="$work/kernel/lib/modules/$release/kernel"

# --- initramfs -----------------------------------------------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,lib/modules}
install -m 0755 "$busybox_bin" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$here/image/init" "$root/init"
# Feature hooks (scripts/image/hooks/{pre-ready.d,post-ready.d}/*.sh), sourced by /init before and after the ready line.
mkdir -p "$root/etc/hypercore/pre-ready.d" "$root/etc/hypercore/post-ready.d"
for phase in pre-ready.d post-ready.d; do
    for f in "$here/image/hooks/$phase"/*.sh; do
        [[ -f "$f" ]] && install -m 0644 "$f" "$root/etc/hypercore/$phase/"
    done
done
echo "hypercore-guest" >"$root/etc/hostname"
# The kernel gives /init a console only if /dev/console exists in the archive (mknod needs root; /init copes without).
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || log "not root: /dev/console node left out (init reopens it)"

# Power button (ACPI button + evdev), pvpanic (the guest tells QEMU it panicked; QEMU0001 in microvm's ACPI table)
# and virtio-mmio block/net drivers, in dependency order.
modules=(
    input/evdev acpi/button
    misc/pvpanic/pvpanic misc/pvpanic/pvpanic-mmio
    virtio/virtio_ring virtio/virtio virtio/virtio_mmio block/virtio_blk
    core/failover net/net_failover net/virtio_net
)
# Feature module lists (scripts/image/modules.d/*.list: one module path per line, dependencies first).
for list in "$here"/image/modules.d/*.list; do
    [[ -f "$list" ]] || continue
    while read -r m; do
        [[ -n "$m" && "$m" != \#* ]] && modules+=("$m")
    done <"$list"
done
: >"$root/lib/modules/load-order"
for m in "${modules[@]}"; do
    src="$(find "$moddir" -path "*/$m.ko*" | head -n1)"
    if [[ -z "$src" ]]; then
        log "module $m not in $release (built in?); skipped"
        continue
    fi
    name="${m##*/}"
    case "$src" in
        *.ko) cp "$src" "$root/lib/modules/$name.ko" ;;
        *.ko.xz) xz -dc "$src" >"$root/lib/modules/$name.ko" ;;
        *.ko.zst) zstd -qdc "$src" >"$root/lib/modules/$name.ko" ;;
        *.ko.gz) gzip -dc "$src" >"$root/lib/modules/$name.ko" ;;
    esac
    echo "$name" >>"$root/lib/modules/load-order"
done
echo "$release" >"$root/etc/hypercore-kernel-release"

(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --owner=0:0 --quiet) \
    | gzip -9 -n >"$work/initrd.img"

# --- install (atomically, each file) ------------------------------------------------------------------------
mkdir -p "$target"
cp "$vmlinuz" "$target/.vmlinuz.tmp" && mv -f "$target/.vmlinuz.tmp" "$target/vmlinuz"
cp "$work/initrd.img" "$target/.initrd.img.tmp" && mv -f "$target/.initrd.img.tmp" "$target/initrd.img"
echo "$release" >"$target/kernel-release"
echo "$source_sha" >"$target/image-source"
log "built $target/vmlinuz ($release) and $target/initrd.img ($(stat -c %s "$target/initrd.img") bytes)"
