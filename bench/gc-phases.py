#!/usr/bin/env python3
"""bench/gc-phases.sh's reading (issue 15, heap11): the node's GC pauses inside the Create window, by generation.

Per generation ("0", "1", "bgc" = the young collection that starts a background GC, "bgc-end" = its final stop): count,
pause mean/p90/max, the trigger reasons (gc_reason: 0 = small-object allocation) and the mean milliseconds in each phase:
roots (stacks and handles), mark (the whole mark phase: roots, card scans, marking), cards / cardsLOH (the card scans of
gen2 and of the large-object heap, in mark and relocate together), plan (the whole plan phase: it contains reloc and
compact), reloc, compact, freelist (a sweeping collection instead of compaction). -v: every GC, with the card-efficiency
ratio before -> after it (generation_skip_ratio; below 30 the next young collection is raised to gen1).
Writes RUN/phases.json.
"""
import collections, json, os, re, statistics as st, sys

RX = re.compile(r"^\s*(.+?)-(\d+)\s+\(\s*(\S+)\)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+(\S+):(.*)$")
PHASES = [("roots", "roots"), ("mark", "mark_phase"), ("cards", "mark_through_cards_for_segments"),
          ("cardsLOH", "mark_through_cards_for_uoh_objects"), ("plan", "plan_phase"), ("reloc", "relocate_phase"),
          ("compact", "compact_phase"), ("freelist", "make_free_lists")]


def read(run):
    pid = int(open(os.path.join(run, "pid")).read())
    calls = [tuple(map(int, line.split())) for line in open(os.path.join(run, "lat.create"))]
    t0, t1 = min(end - lat for _, end, lat in calls), max(end for _, end, _ in calls)
    gcs, cur, opened = [], None, {}
    for line in open(os.path.join(run, "trace")):
        m = RX.match(line)
        if not m or not m.group(3).isdigit() or int(m.group(3)) != pid:
            continue
        _, tid, _, ts, ev, rest = m.groups()
        ts, tid, f = float(ts) * 1e3, int(tid), dict(re.findall(r"(\w+)=(-?\d+)", rest))
        if ev == "susp_in":
            cur = {"start": ts, "ph": collections.defaultdict(float)}
        elif cur is None:
            continue
        elif ev == "rest_out":
            cur["pause"] = ts - cur["start"]
            if ts * 1e6 >= t0 and cur["start"] * 1e6 <= t1:
                gcs.append(cur)
            cur = None
        elif ev == "gc1_in" and "gen" not in cur:
            cur.update(gen=int(f.get("gen", f.get("s8"))), reason=int(f.get("reason", f.get("s60"))), skip_before=int(f["skip"]))
        elif ev == "gc1_out":
            cur["skip_after"] = int(f["skip"])
        elif ev == "background_mark_phase_in":
            cur["bgc"] = True
        elif ev.endswith("_in"):
            opened[(tid, ev[:-3])] = ts
        elif ev.endswith("_out") and (tid, ev[:-4]) in opened:
            cur["ph"][ev[:-4]] += ts - opened.pop((tid, ev[:-4]))
    return gcs


def main():
    run = sys.argv[1]
    gcs = read(run)
    by = collections.defaultdict(list)
    for g in gcs:
        by["bgc" if g.get("bgc") else str(g["gen"]) if "gen" in g else "bgc-end"].append(g)
        if "-v" in sys.argv:
            print(f"{g['start']:.1f} gen={g.get('gen')} bgc={g.get('bgc', False)} reason={g.get('reason')} "
                  f"pause={g['pause']:.2f} skip={g.get('skip_before')}->{g.get('skip_after')} "
                  + " ".join(f"{s}={g['ph'].get(n, 0):.2f}" for s, n in PHASES))
    out = {}
    for k in sorted(by):
        v, ps = by[k], sorted(x["pause"] for x in by[k])
        out[k] = {"n": len(v), "mean": round(st.mean(ps), 2), "p90": round(ps[min(len(ps) - 1, int(0.9 * len(ps)))], 2),
                  "max": round(ps[-1], 2), "reasons": dict(collections.Counter(x.get("reason") for x in v)),
                  **{s: round(st.mean(x["ph"].get(n, 0) for x in v), 2) for s, n in PHASES}}
        print(k, json.dumps(out[k]))
    json.dump(out, open(os.path.join(run, "phases.json"), "w"))


if __name__ == "__main__":
    main()
