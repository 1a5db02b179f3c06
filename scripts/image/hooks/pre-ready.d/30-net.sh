# Node networking (docs/networking.md), sourced by /init before the ready line.
# Kernel command line switches:
#   hypercore.dhcp          busybox udhcpc on every NIC (the node's dnsmasq answers with the address its IPAM leased);
#                           prints "hypercore: net <nic> <address>/<prefix> ..." on the console for each lease
#   hypercore.httpd=PORT    serve "hypercore guest <hostname>" at http://<guest>:PORT/ with busybox httpd (port-forward tests)
#   hypercore.fetch=URL[,URL...]  after the network is up, fetch each URL with busybox wget (in the background) and
#                           print "hypercore: fetched <url>: <first line>" (or FAILED) on the console
#   ip=CLIENT::GW:MASK::DEV:off[:DNS0[:DNS1]]  (kernel.add_network_config) is applied here too: the cloud kernel's
#                           virtio_net is a module /init loads, so the kernel's own ip= autoconfig never sees the NIC
hc_net_dhcp=""
hc_net_httpd=""
hc_net_static=""
hc_net_fetch=""
for hc_net_arg in $(cat /proc/cmdline); do
    case "$hc_net_arg" in
        hypercore.dhcp) hc_net_dhcp=1 ;;
        hypercore.httpd=*) hc_net_httpd="${hc_net_arg#hypercore.httpd=}" ;;
        ip=*:*) hc_net_static="$hc_net_static ${hc_net_arg#ip=}" ;;
        hypercore.fetch=*) hc_net_fetch="${hc_net_arg#hypercore.fetch=}" ;;
    esac
done

# 255.255.255.0 -> 24
hc_net_prefix() {
    hc_net_bits=0
    for hc_net_octet in $(echo "$1" | tr . ' '); do
        case "$hc_net_octet" in
            255) hc_net_bits=$((hc_net_bits + 8)) ;; 254) hc_net_bits=$((hc_net_bits + 7)) ;;
            252) hc_net_bits=$((hc_net_bits + 6)) ;; 248) hc_net_bits=$((hc_net_bits + 5)) ;;
            240) hc_net_bits=$((hc_net_bits + 4)) ;; 224) hc_net_bits=$((hc_net_bits + 3)) ;;
            192) hc_net_bits=$((hc_net_bits + 2)) ;; 128) hc_net_bits=$((hc_net_bits + 1)) ;;
        esac
    done
    echo "$hc_net_bits"
}

for hc_net_conf in $hc_net_static; do
    hc_net_old_ifs="$IFS"
    IFS=:
    set -- $hc_net_conf
    IFS="$hc_net_old_ifs"
    hc_net_ip="$1" hc_net_gw="$3" hc_net_mask="${4:-255.255.255.0}" hc_net_dev="$6" hc_net_dns="$8 $9"
    [ -n "$hc_net_ip" ] && [ -n "$hc_net_dev" ] || continue
    hc_net_cidr="$hc_net_ip/$(hc_net_prefix "$hc_net_mask")"
    if ! ip -4 addr show dev "$hc_net_dev" 2>/dev/null | grep -q inet; then
        ip link set dev "$hc_net_dev" up
        ip addr add "$hc_net_cidr" dev "$hc_net_dev"
        [ -n "$hc_net_gw" ] && ip route replace default via "$hc_net_gw" dev "$hc_net_dev"
        for hc_net_d in $hc_net_dns; do echo "nameserver $hc_net_d" >>/etc/resolv.conf; done
    fi
    say "hypercore: net $hc_net_dev $hc_net_cidr router ${hc_net_gw:-none} (static)"
done

if [ -n "$hc_net_dhcp" ]; then
    mkdir -p /etc/hypercore /run
    # udhcpc runs this on every lease event with the lease in the environment (ip, mask = prefix length, router, dns).
    cat >/etc/hypercore/udhcpc.script <<'SCRIPT'
#!/bin/sh
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set dev "$interface" up
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
        : >/etc/resolv.conf
        [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
        [ -n "$hostname" ] && hostname "$hostname"
        line="hypercore: net $interface $ip/${mask:-24} router ${router:-none} dns ${dns:-none}"
        echo "$line" >/dev/console
        case " $(cat /sys/class/tty/console/active 2>/dev/null) " in
            *" ttyS0 "*) ;;
            *) [ -c /dev/ttyS0 ] && echo "$line" >/dev/ttyS0 ;;
        esac
        ;;
esac
exit 0
SCRIPT
    chmod 0755 /etc/hypercore/udhcpc.script
    for hc_net_nic in $(ls /sys/class/net 2>/dev/null | grep -v '^lo$'); do
        ip link set dev "$hc_net_nic" up
        # Waits for the first lease (5 tries, 2 s apart), then stays in the background renewing it.
        udhcpc -i "$hc_net_nic" -s /etc/hypercore/udhcpc.script -t 5 -T 2 -A 5 -b -p "/run/udhcpc.$hc_net_nic.pid" >/dev/null 2>&1 ||
            say "hypercore: net $hc_net_nic: no DHCP answer"
    done
fi

if [ -n "$hc_net_httpd" ]; then
    mkdir -p /srv/www
    echo "hypercore guest $(hostname)" >/srv/www/index.html
    httpd -p "$hc_net_httpd" -h /srv/www && say "hypercore: httpd on port $hc_net_httpd"
fi
if [ -n "$hc_net_fetch" ]; then
    (
        for url in $(echo "$hc_net_fetch" | tr , ' '); do
            body=""
            for try in 1 2 3 4 5 6 7 8 9 10; do
                # No -T: busybox 1.35's wget crashes with it; the server is on the node network and answers or refuses.
                body=$(wget -q -O - "$url" 2>/dev/null | head -n 1) && [ -n "$body" ] && break
                sleep 1
            done
            say "hypercore: fetched $url: ${body:-FAILED}"
        done
    ) &
fi
unset hc_net_fetch
unset hc_net_dhcp hc_net_httpd hc_net_arg hc_net_nic hc_net_static hc_net_conf hc_net_ip hc_net_gw hc_net_mask hc_net_dev hc_net_dns hc_net_d hc_net_cidr hc_net_old_ifs hc_net_bits hc_net_octet
