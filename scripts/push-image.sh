#!/usr/bin/env bash
# Push a folder to an OCI registry as a one-layer image the node can pull (docs/images.md, "Making an image").
#
#   bash scripts/push-image.sh [--insecure] [--creds USER:PASS | --authfile FILE] [--arch ARCH] DIR REF
#
# DIR's tree becomes the image's one layer, as it is: for a kernel image put the kernel at DIR/boot/vmlinuz (or
# boot/vmlinux) and an initrd at DIR/boot/initrd.img; for a volume image (container_source) DIR is the file system.
# The layer is reproducible (names sorted, owner root, mtime 0, gzip without a name or time), so the same DIR pushed
# twice is the same digest. Prints the pushed manifest's digest. Needs skopeo (Debian: apt-get install skopeo), which
# does the upload: plain HTTP with --insecure, TLS, basic auth and registry tokens as `skopeo copy` does them.
set -euo pipefail

usage() {
    echo "usage: $0 [--insecure] [--creds USER:PASS | --authfile FILE] [--arch ARCH] DIR REF" >&2
    echo "  e.g. $0 --insecure /tmp/img localhost:5000/hypercore/default:1" >&2
    exit 2
}

insecure=0 arch=amd64 auth=()
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --insecure) insecure=1; shift ;;
        --creds) [[ $# -ge 2 ]] || usage; auth=(--dest-creds "$2"); shift 2 ;;
        --authfile) [[ $# -ge 2 ]] || usage; auth=(--dest-authfile "$2"); shift 2 ;;
        --arch) [[ $# -ge 2 ]] || usage; arch=$2; shift 2 ;;
        --help|-h) usage ;;
        *) echo "push-image.sh: unknown option $1" >&2; usage ;;
    esac
done
[[ $# -eq 2 ]] || usage
dir=$1 ref=$2

if [[ ! -d $dir ]]; then
    echo "push-image.sh: $dir is not a directory" >&2
    exit 2
fi
if [[ -z $(find "$dir" -mindepth 1 -print -quit) ]]; then
    echo "push-image.sh: $dir is empty; an image needs at least one file" >&2
    exit 2
fi
case $ref in
    */*) ;;
    *) echo "push-image.sh: $ref is not a registry reference; write HOST[:PORT]/REPOSITORY:TAG, e.g. localhost:5000/hypercore/default:1" >&2; exit 2 ;;
esac
if ! command -v skopeo >/dev/null 2>&1; then
    echo "push-image.sh: skopeo is not installed (apt-get install skopeo)" >&2
    exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$work/layout
mkdir -p "$layout/blobs/sha256"

# put FILE MEDIATYPE: stores FILE as a blob of the layout, prints its descriptor's digest and size.
put() {
    local hex size
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    mv "$1" "$layout/blobs/sha256/$hex"
    echo "sha256:$hex $size"
}

tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$dir" -cf "$work/layer.tar" .
diff_id=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -c "$work/layer.tar" > "$work/layer.tar.gz"
rm "$work/layer.tar"
read -r layer_digest layer_size < <(put "$work/layer.tar.gz")

printf '{"architecture":"%s","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$arch" "$diff_id" > "$work/config.json"
read -r config_digest config_size < <(put "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" > "$work/manifest.json"
read -r manifest_digest manifest_size < <(put "$work/manifest.json")

printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"push"}}]}' \
    "$manifest_digest" "$manifest_size" > "$layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"

tls=()
[[ $insecure -eq 1 ]] && tls=(--dest-tls-verify=false)
skopeo copy --quiet --preserve-digests "${tls[@]}" "${auth[@]}" --digestfile "$work/digest" "oci:$layout:push" "docker://$ref" >&2
echo "pushed $ref ($(cat "$work/digest"), layer $layer_size bytes)" >&2
cat "$work/digest"
echo
