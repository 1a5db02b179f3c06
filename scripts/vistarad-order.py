#!/usr/bin/env python3
"""Writes src/Hypercore.Daemon/vistarad.order: the managed methods the Native AOT vistarad runs from process start to
its first answered gRPC call and through the 5 idle seconds after it, for the ILC's --order (IlcOrderFile in
Hypercore.Daemon.csproj), which lays them out first and together in the binary's code section.

Usage: python3 scripts/vistarad-order.py DIR [OUT]
  DIR: a Native AOT publish (scripts/publish-vistarad.sh DIR), with vistarad.dbg beside vistarad.
  OUT: default src/Hypercore.Daemon/vistarad.order.

Why (bench/NOTES.md, "rss5"): the start runs ~6,600 managed methods (~1.7 MB of code) spread over the 12 MB code
section; each first call faults its page in, and the kernel maps the page-cached pages around it too (fault-around,
64 KB), so nearly the whole code section ended up resident in every daemon. Laid out together they fill ~2 MB.

How: each configuration below is run under valgrind's callgrind (exact: every executed instruction, not samples) on a
copy of the binary without its .dbg (valgrind cannot read the NativeAOT DWARF), the first gRPC List is sent as
bench/coldstart-ab.py does, callgrind dumps 5 s after the answer, and every executed address in the binary is mapped
to its symbol with nm on vistarad.dbg. The first configuration's methods are written in address order (the old
layout's locality among them stays), then what each further configuration adds.
Needs valgrind (apt-get install -y valgrind), binutils' nm, python3.
A stale file is harmless: names that no longer exist are ignored by the ILC, new methods land in the cold part.
"""
import bisect, importlib.util, os, re, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("coldstart", os.path.join(ROOT, "bench", "coldstart-ab.py"))
coldstart = importlib.util.module_from_spec(spec)
spec.loader.exec_module(coldstart)

# The coldstart benchmark's arguments, and the same at the default log level (Information: the start's log lines).
VALGRIND_PIE_BASE = 0x108000
CONFIGS = [["--log-level", "Warning"], []]


def profile(binary, work, extra, out):
    state = tempfile.mkdtemp(prefix="state.", dir=work)
    grpc, http = coldstart.free_port(), coldstart.free_port()
    args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=yes", binary, "run",
            "--state-dir", state, "--grpc-endpoint", f"127.0.0.1:{grpc}", "--http-endpoint", f"127.0.0.1:{http}",
            "--qemu-accel", "tcg", "--qemu-bin", "qemu-system-x86_64"] + extra
    err = open(os.path.join(work, "valgrind.stderr"), "wb")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 600
        while not coldstart.grpc_list(grpc, timeout=30):
            if p.poll() is not None:
                raise RuntimeError("vistarad under valgrind exited: " + open(err.name).read()[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError("no answer under valgrind in 600 s")
            time.sleep(0.2)
        time.sleep(5)
        subprocess.run(["callgrind_control", "--dump", str(p.pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        for _ in range(600):
            dumps = [f for f in os.listdir(work) if f.startswith(os.path.basename(out) + ".")]
            if dumps and os.path.getsize(os.path.join(work, dumps[0])) > 0:
                time.sleep(1)
                return os.path.join(work, dumps[0])
            time.sleep(0.5)
        raise RuntimeError("callgrind wrote no dump")
    finally:
        p.terminate()
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        err.close()


def executed(dump):
    objects, cur, last = {}, None, 0
    addrs, fns = {}, {}
    for line in open(dump):
        if line.startswith("ob="):
            m = re.match(r"ob=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if m.group(2):
                objects[m.group(1)] = m.group(2)
            cur = m.group(1)
            continue
        if line.startswith("fn="):
            m = re.match(r"fn=\(\d+\) 0x([0-9a-f]+)", line)
            if m:
                fns.setdefault(cur, set()).add(int(m.group(1), 16))
            continue
        if not line.strip() or line[0] == "#" or re.match(r"^[a-z]+=", line) or ":" in line.split(" ")[0]:
            continue
        tok = line.split(" ")[0]
        if tok.startswith("0x"):
            last = int(tok, 16)
        elif tok.startswith("+"):
            last += int(tok[1:])
        elif tok.startswith("-"):
            last -= int(tok[1:])
        elif tok != "*":
            continue
        addrs.setdefault(cur, set()).add(last)
    return objects, addrs, fns


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    pub = os.path.abspath(sys.argv[1])
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "src", "Hypercore.Daemon", "vistarad.order")
    dbg = os.path.join(pub, "vistarad.dbg")
    for tool in ("valgrind", "callgrind_control", "nm"):
        if not shutil.which(tool):
            sys.exit(f"vistarad-order: {tool} not found (apt-get install -y valgrind binutils)")
    if not os.path.exists(dbg):
        sys.exit(f"vistarad-order: {dbg} missing: a Native AOT publish keeps it beside vistarad")

    syms = []
    for line in subprocess.run(["nm", "-n", "--defined-only", dbg], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tT":
            syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    starts = [a for a, _ in syms]
    managed = [a for a, n in syms if n == "__start___managedcode"]
    if not managed:
        sys.exit("vistarad-order: no __start___managedcode symbol in vistarad.dbg")
    code_start = managed[0]
    code_end = next(a for a, n in syms if n == "__stop___managedcode") if any(
        n == "__stop___managedcode" for _, n in syms) else syms[-1][0]

    work = tempfile.mkdtemp(prefix="vistarad-order.")
    hot, tier = {}, {}
    try:
        for f in ("vistarad", "libe_sqlite3.so"):
            shutil.copy2(os.path.join(pub, f), work)
        for i, extra in enumerate(CONFIGS):
            dump = profile(os.path.join(work, "vistarad"), work, extra, os.path.join(work, f"cg{i}"))
            objects, addrs, fns = executed(dump)
            # Callgrind names the binary for its native runtime code (addresses relative to the load address) but
            # reports the managed code section as an unknown object with absolute addresses; valgrind loads a PIE
            # at 0x108000, checked here: most of its function entries must then be symbol starts.
            own = [k for k, v in objects.items() if v.endswith("/vistarad")]
            unknown = [k for k in addrs if k not in own and objects.get(k, "???") == "???"]
            entries = {f - VALGRIND_PIE_BASE for k in unknown for f in fns.get(k, ())}
            matched = len(entries & set(starts))
            if matched < len(entries) / 2:
                sys.exit(f"vistarad-order: only {matched} of {len(entries)} function entries match symbols at "
                         f"load address {VALGRIND_PIE_BASE:#x}: this valgrind loads the binary elsewhere")
            candidates = set()
            for k, a in addrs.items():
                if k in own:
                    candidates |= a
                elif k in unknown:
                    candidates |= {x - VALGRIND_PIE_BASE for x in a}
            n0 = len(hot)
            for a in candidates:
                if not code_start <= a < code_end:
                    continue
                j = bisect.bisect_right(starts, a) - 1
                if j >= 0 and syms[j][1] != "__start___managedcode" and syms[j][1] not in hot:
                    hot[syms[j][1]] = syms[j][0]
                    tier[syms[j][1]] = i
            print(f"vistarad-order: configuration {extra or ['(defaults)']}: {len(hot) - n0} more methods "
                  f"({len(hot)} in all)", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(hot) < 1000:
        sys.exit(f"vistarad-order: only {len(hot)} methods found: the profile did not see the managed code")
    with open(out, "w") as f:
        # the first configuration's methods first (the benchmark's start), then what each further one adds
        for name, _ in sorted(hot.items(), key=lambda kv: (tier[kv[0]], kv[1])):
            f.write(name + "\n")
    print(f"vistarad-order: {len(hot)} methods -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
