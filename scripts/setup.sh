#!/usr/bin/env bash
# Prepares a Debian 12 node (run as root; idempotent): installs what the QEMU driver needs and builds the
# default guest image into ${HYPERCORE_IMAGES:-/var/lib/hypercore/images}/default.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: run as root (apt-get install, tap devices)" >&2
    exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive

# curl: the README's HTTP examples are run as written by a test (tests/Hypercore.EndToEnd.Tests/Docs).
packages=(qemu-system-x86 busybox-static cpio iproute2 curl)
# OCI images (docs/images.md): mkfs.ext4 -d builds volume disks; the image tests run a real registry
# (docker-registry, distribution 2.8) with htpasswd basic auth (apache2-utils) and read disks with debugfs.
packages+=(e2fsprogs docker-registry apache2-utils)
# scripts/push-image.sh (docs/images.md, "Making an image") uploads with skopeo; its tests push to the real registry.
packages+=(skopeo)
# qemu-img (qemu-utils) makes the qcow2 overlay each QEMU VM writes over a cached image disk (docs/images.md).
packages+=(qemu-utils)
# qemu-user (docs/drivers.md) drops QEMU's privileges with setpriv; util-linux is essential on Debian, listed for clarity.
packages+=(util-linux)
# Guest bootstrap (docs/networking.md): the cloud-init seed disk is a FAT image made with mkfs.vfat (dosfstools)
# and filled with mcopy (mtools); the tests read it back with mdir/mtype.
packages+=(dosfstools mtools)
# The real cloud-init guest (scripts/build-cloudinit-image.sh, used by a QEMU test) is a Debian rootfs made by mmdebstrap.
packages+=(mmdebstrap)
# Node networking (docs/networking.md): the managed bridge's DHCP/DNS (dnsmasq-base) and NAT/port forwards (nftables).
packages+=(dnsmasq-base nftables)
# vis is published as Native AOT (scripts/publish-vis.sh): the native link needs clang and zlib1g-dev.
packages+=(clang zlib1g-dev)
# The API benchmark's native load generator (bench/Hypercore.Benchmarks/Api/NativeLoadGenerator) is C on libnghttp2.
packages+=(libnghttp2-dev)
# NativeAotDaemonTests reads the native daemon's symbols with nm (binutils) to check its start-up code layout.
packages+=(binutils)
# kubectl may come from another package (e.g. a kubernetes.io build); Debian's kubernetes-client conflicts with it.
if ! command -v kubectl >/dev/null 2>&1; then
    packages+=(kubernetes-client)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# One apt-get update per run: the image build needs current lists for `apt-get download` of the kernel.
apt-get update -q
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "setup: installing ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "setup: ${packages[*]} already installed"
fi

# The package also installs a service serving an open registry on :5000; the tests start their own, so a node
# must not keep that one running.
if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files docker-registry.service >/dev/null 2>&1; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi

"$here/build-image.sh" "${HYPERCORE_IMAGES:-/var/lib/hypercore/images}/default"
echo "setup: done"
