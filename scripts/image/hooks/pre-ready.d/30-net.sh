# Node networking (docs/networking.md), sourced by /init before the ready line.
# Kernel command line switches:
#   hypercore.dhcp          busybox udhcpc on every NIC (the node's dnsmasq answers with the address its IPAM leased);
#                           prints "hypercore: net <nic> <address>/<prefix> ..." on the console for each lease
#   hypercore.httpd=PORT    serve "hypercore guest <hostname>" at http://<guest>:PORT/ with busybox httpd (port-forward tests)
hc_net_dhcp=""
hc_net_httpd=""
for hc_net_arg in $(cat /proc/cmdline); do
    case "$hc_net_arg" in
        hypercore.dhcp) hc_net_dhcp=1 ;;
        hypercore.httpd=*) hc_net_httpd="${hc_net_arg#hypercore.httpd=}" ;;
    esac
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
unset hc_net_dhcp hc_net_httpd hc_net_arg hc_net_nic
