# OCI images (docs/images.md; tests/Hypercore.EndToEnd.Tests/Images): shows what a volume built from an image holds.
#   hypercore.images.dev=vdX     mount /dev/vdX (ext4) at /mnt/image and print its marker file and top-level entries
#   hypercore.images.write=TEXT  then append TEXT to /mnt/image/writes, sync, and print that file (each VM must see
#                                only its own writes: it writes to its own copy-on-write view of the cached disk)
images_dev=""
images_write=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        hypercore.images.dev=*) images_dev="${arg#hypercore.images.dev=}" ;;
        hypercore.images.write=*) images_write="${arg#hypercore.images.write=}" ;;
    esac
done
if [ -n "$images_dev" ]; then
    mkdir -p /mnt/image
    if mount -t ext4 "/dev/$images_dev" /mnt/image 2>/tmp/images-mount.err; then
        say "HYPERCORE-IMAGES-MARKER $(cat /mnt/image/marker 2>/dev/null || echo none)"
        say "HYPERCORE-IMAGES-ENTRIES $(ls -A /mnt/image | grep -v '^lost+found$' | tr '\n' ' ')"
        if [ -n "$images_write" ]; then
            echo "$images_write" >>/mnt/image/writes
            sync
            say "HYPERCORE-IMAGES-WRITES $(tr '\n' ' ' </mnt/image/writes)"
        fi
    else
        say "HYPERCORE-IMAGES-MOUNT-FAILED $(cat /tmp/images-mount.err)"
    fi
fi
