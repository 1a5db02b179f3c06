# hypercore.count: print "count N" on the console every second, in the background, so a test can tell a guest
# restored from a snapshot (the count goes on from where the snapshot was taken) from one booted afresh (count 1).
case " $(cat /proc/cmdline) " in
    *" hypercore.count "*)
        (
            n=0
            while true; do
                n=$((n + 1))
                say "count $n"
                sleep 1
            done
        ) &
        ;;
esac
