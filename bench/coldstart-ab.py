#!/usr/bin/env python3
"""A/B cold start of vistarad binaries, interleaved (ABAB...): process start -> first answered gRPC List.

Usage: python3 bench/coldstart-ab.py [--rounds N] [--idle S] [--log-level L] NAME=BIN [NAME=BIN ...]

Each start: a fresh state directory, the daemon in a session of its own (setsid, as bench/run.sh starts it), a new
TCP connection per attempt every 5 ms carrying one hand-written HTTP/2 gRPC call (/vm.services.api.VMService/List,
empty request; answered = the reply's trailers with grpc-status 0). CPU = utime + stime of the daemon from
/proc/<pid>/stat read right after the answer (10 ms ticks), and the on-CPU nanoseconds of its threads
(/proc/<pid>/task/*/schedstat) at the same moment; with --idle S, VmRSS S seconds later. One unmeasured
warm-up start per binary first. Prints each start and the medians. Standard library only (no grpcio on the machine).
"""
import argparse, os, shutil, signal, socket, statistics, struct, subprocess, tempfile, time

PATH = b"/vm.services.api.VMService/List"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def lit(name, value):
    # HPACK literal header field without indexing, new name, no Huffman (lengths < 127)
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def grpc_list(port, timeout=5.0):
    """One gRPC List over a fresh connection; True when answered with grpc-status 0, False if refused."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except (ConnectionRefusedError, socket.timeout, OSError):
        return False
    try:
        s.settimeout(timeout)
        headers = (lit(b":method", b"POST") + lit(b":scheme", b"http") + lit(b":path", PATH)
                   + lit(b":authority", b"127.0.0.1:%d" % port) + lit(b"content-type", b"application/grpc")
                   + lit(b"te", b"trailers"))
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
                  + frame(1, 4, 1, headers) + frame(0, 1, 1, b"\x00\x00\x00\x00\x00"))
        buf = b""
        got_data = False
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return False
            buf += chunk
            while len(buf) >= 9:
                length = int.from_bytes(buf[0:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload = buf[9:9 + length]
                buf = buf[9 + length:]
                if kind == 4 and not flags & 1:
                    s.sendall(frame(4, 1, 0, b""))  # SETTINGS ack
                elif kind == 3 or kind == 7:  # RST_STREAM / GOAWAY
                    return False
                elif stream == 1 and kind == 0:
                    got_data = True
                elif stream == 1 and kind == 1 and flags & 1:
                    # trailers: a successful unary call has DATA before them; "grpc-status" 0 may be Huffman-coded,
                    # so success = data received (an error reply is trailers-only)
                    return got_data
    except (ConnectionResetError, BrokenPipeError, socket.timeout, OSError):
        return False
    finally:
        s.close()


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK


def sched_ms(pid):
    """On-CPU time of the daemon's live threads (/proc/<pid>/task/*/schedstat, nanoseconds): finer than the 10 ms ticks
    of cpu_ms; threads that already ended are not in it (a daemon's start ends none that matter)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e6


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child_of(pid):
    for _ in range(2000):
        try:
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.001)
    raise RuntimeError("perf started no child")


def start_once(binary, root, idle, log_level, extra, perf=None):
    state = tempfile.mkdtemp(prefix="cold.", dir=root)
    grpc, http = free_port(), free_port()
    args = ["setsid", binary, "run", "--state-dir", state, "--grpc-endpoint", f"127.0.0.1:{grpc}",
            "--http-endpoint", f"127.0.0.1:{http}", "--qemu-accel", "tcg", "--qemu-bin", "qemu-system-x86_64",
            "--log-level", log_level] + extra
    if perf:
        args = ["perf", "record", "-g", "-F", "4999", "-q", "-o", perf, "--"] + args
    err = open(os.path.join(root, "last.stderr"), "wb")
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    pid = child_of(p.pid) if perf else p.pid
    try:
        while not grpc_list(grpc):
            if p.poll() is not None:
                raise RuntimeError(f"{binary} exited {p.returncode}: " + open(err.name).read()[-2000:])
            if time.monotonic() - t0 > 60:
                raise RuntimeError("no answer in 60 s")
            time.sleep(0.005)
        wall = (time.monotonic() - t0) * 1000
        sched = sched_ms(pid)
        cpu = cpu_ms(pid)
        if perf:
            os.kill(pid, signal.SIGKILL)  # profile only the start: no shutdown in it
            p.wait(60)
            return wall, cpu, sched, None
        rss = None
        if idle:
            time.sleep(idle)
            rss = rss_mb(pid)
        return wall, cpu, sched, rss
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        err.close()
        shutil.rmtree(state, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--idle", type=float, default=0)
    ap.add_argument("--log-level", default="Warning")
    ap.add_argument("--extra", default="", help="more daemon arguments, space separated")
    ap.add_argument("--perf", help="perf record -g each measured start into PERF.<name>.<round>.data (daemon killed at the answer)")
    ap.add_argument("variants", nargs="+")
    a = ap.parse_args()
    variants = [v.split("=", 1) for v in a.variants]
    root = tempfile.mkdtemp(prefix="hc-startcpu.")
    extra = a.extra.split()
    results = {name: [] for name, _ in variants}
    try:
        for name, binary in variants:
            start_once(binary, root, 0, a.log_level, extra)  # warm-up: page cache
        for r in range(a.rounds):
            order = variants if r % 2 == 0 else list(reversed(variants))
            for name, binary in order:
                perf = f"{a.perf}.{name}.{r + 1}.data" if a.perf else None
                wall, cpu, sched, rss = start_once(binary, root, a.idle, a.log_level, extra, perf)
                results[name].append((wall, cpu, sched, rss))
                load = open("/proc/loadavg").read().split()[0]
                print(f"round {r + 1} {name}: wall {wall:.0f} ms, cpu {cpu:.0f} ms, on-CPU {sched:.1f} ms"
                      + (f", idle RSS {rss:.1f} MB" if rss is not None else "") + f" (load {load})", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for name, rows in results.items():
        walls = [w for w, _, _, _ in rows]
        cpus = [c for _, c, _, _ in rows]
        scheds = [s for _, _, s, _ in rows]
        rss = [m for _, _, _, m in rows if m is not None]
        print(f"{name}: n={len(rows)} wall median {statistics.median(walls):.0f} ms (min {min(walls):.0f}), "
              f"cpu median {statistics.median(cpus):.0f} ms (mean {statistics.mean(cpus):.1f}, min {min(cpus):.0f}), "
              f"on-CPU median {statistics.median(scheds):.1f} ms (min {min(scheds):.1f}, max {max(scheds):.1f})"
              + (f", idle RSS median {statistics.median(rss):.1f} MB" if rss else ""))


if __name__ == "__main__":
    main()
