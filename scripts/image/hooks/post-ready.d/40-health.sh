# Guest health (issue 14): a heartbeat for liveness-probe tests, sourced by /init after the ready line.
#   hypercore.heartbeat=N   print "hypercore: heartbeat <i>" on the console every second for N seconds, then stop
#                           (a console liveness probe on /heartbeat/ fails once it stops)
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        hypercore.heartbeat=*)
            beats="${arg#hypercore.heartbeat=}"
            (
                i=1
                while [ "$i" -le "$beats" ]; do
                    say "hypercore: heartbeat $i"
                    i=$((i + 1))
                    sleep 1
                done
                say "hypercore: heartbeat stopped after $beats beats"
            ) &
            ;;
    esac
done
