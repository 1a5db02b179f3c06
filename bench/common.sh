# Shared by bench/run.sh and bench/ab.sh. Source it, then:
#
#   bench_reap DIR          SIGKILL every process whose command line contains DIR/ (a run's scratch directory: everything
#                           a run starts has it in its command line), except this shell
#   bench_runner_publish_args   sets runner_r2r: the dotnet publish arguments of the benchmark runner (ReadyToRun for
#                           this machine's architecture, like vistarad: the in-process benchmarks measure the code as
#                           it ships, not the JIT's compilation of it in a fresh process)

bench_reap() {
    local dir pid
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        [[ "$pid" == "$$" ]] && continue
        if tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | grep -qF -- "$1/"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

bench_runner_publish_args() {
    case "$(uname -m)" in
        x86_64) runner_r2r=(-r linux-x64 --self-contained false -p:PublishReadyToRun=true) ;;
        aarch64) runner_r2r=(-r linux-arm64 --self-contained false -p:PublishReadyToRun=true) ;;
        *) runner_r2r=() ;;
    esac
}
