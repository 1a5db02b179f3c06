# Guest bootstrap: a small cloud-init NoCloud reader (sourced by /init; see ../README.md).
# Finds the disk labelled cidata (the seed disk Hypercore attaches when a VM has spec.metadata or
# kernel.add_network_config), mounts it read-only, sets the hostname from meta-data's local-hostname, starts a
# shell user-data (one that begins with "#!"), and prints one line saying what it found:
#   hypercore-nocloud: instance-id=<uid> hostname=<name> user-data=<script|cloud-config|empty> network-config=<yes|no>
# Inert without such a disk; hypercore.nocloud=off on the kernel command line turns it off.

hc_nocloud_value() {
    # A top-level "key: value" (or JSON "key": "value") of a meta-data file, unquoted.
    sed -n "s/^[\"']\{0,1\}$1[\"']\{0,1\}[[:space:]]*:[[:space:]]*//p" "$2" | head -n 1 |
        sed "s/[[:space:]]*,\{0,1\}[[:space:]]*\$//; s/^[\"']//; s/[\"']\$//"
}

hc_nocloud() {
    case " $(cat /proc/cmdline) " in
        *" hypercore.nocloud=off "*) return 0 ;;
    esac
    # Debian's busybox has findfs (volume_id) rather than blkid; cloud-localds writes the label in either case.
    hc_dev=$(findfs LABEL=cidata 2>/dev/null || findfs LABEL=CIDATA 2>/dev/null)
    [ -n "$hc_dev" ] || return 0
    hc_mnt=/run/nocloud
    mkdir -p "$hc_mnt"
    if ! mount -o ro "$hc_dev" "$hc_mnt" 2>/dev/null; then
        say "hypercore-nocloud: found $hc_dev labelled cidata but could not mount it"
        return 0
    fi

    hc_iid=""
    hc_host=""
    if [ -f "$hc_mnt/meta-data" ]; then
        hc_iid=$(hc_nocloud_value instance-id "$hc_mnt/meta-data")
        hc_host=$(hc_nocloud_value local-hostname "$hc_mnt/meta-data")
    fi
    if [ -n "$hc_host" ]; then
        hostname "$hc_host"
        echo "$hc_host" >/etc/hostname
    fi

    hc_ud=empty
    if [ -s "$hc_mnt/user-data" ]; then
        case "$(head -n 1 "$hc_mnt/user-data")" in
            '#!'*)
                hc_ud=script
                # Copied out: the seed is mounted read-only and FAT has no exec bit.
                cp "$hc_mnt/user-data" /run/nocloud-user-data
                chmod 0755 /run/nocloud-user-data
                ;;
            '#cloud-config'*) hc_ud=cloud-config ;;
            *) hc_ud=other ;;
        esac
    fi
    hc_net=no
    [ -f "$hc_mnt/network-config" ] && hc_net=yes
    mkdir -p /run/nocloud-seed
    for f in "$hc_mnt"/*; do
        [ -f "$f" ] && cp "$f" /run/nocloud-seed/
    done
    umount "$hc_mnt" 2>/dev/null

    say "hypercore-nocloud: instance-id=${hc_iid:-none} hostname=${hc_host:-none} user-data=$hc_ud network-config=$hc_net (from $hc_dev)"
    if [ "$hc_ud" = script ]; then
        # In the background, as cloud-init runs user scripts late: a long script must not hold up the ready line.
        (
            /run/nocloud-user-data
            say "hypercore-nocloud: user-data exited with status $?"
        ) &
    fi
}

hc_nocloud
unset -f hc_nocloud hc_nocloud_value
unset hc_dev hc_mnt hc_iid hc_host hc_ud hc_net
