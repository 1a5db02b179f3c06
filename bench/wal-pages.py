#!/usr/bin/env python3
"""WAL pages per Create (issue 15, pages8): python3 bench/wal-pages.py DIR

DIR holds store.db and store.db-wal copied from a running daemon (bench/wal-capture.sh). Decodes the WAL's frame headers
(the current generation only: frames whose salts match the header's, up to the last commit frame), maps each frame's
page number to its b-tree with SQLite's dbstat (on a copy of the database and its WAL; needs the sqlite3 module built
with SQLITE_ENABLE_DBSTAT_VTAB, as Debian's is), and reads the store-wide resource_version from each commit's frame of
the meta table's page, so the writes in each commit are exact. Prints the b-trees' sizes, frames per commit and per
write by b-tree, and commits binned by their number of writes (frames per commit depend on the group-commit size, which
follows the load: compare runs bin by bin). Each Create is two writes at goal 2's Stopped load (the Create, then the
reconciler's claim + Stopped status)."""
import sys, struct, sqlite3, shutil, os, collections, tempfile, statistics, atexit
d = sys.argv[1]
wal = open(os.path.join(d, 'store.db-wal'), 'rb').read()
magic, ver, psz, ckseq, s1, s2, c1, c2 = struct.unpack('>IIIIIIII', wal[:32])
off = 32; frames = []
while off + 24 + psz <= len(wal):
    pg, commit, fs1, fs2 = struct.unpack('>IIII', wal[off:off+16])
    if (fs1, fs2) != (s1, s2): break
    frames.append((pg, commit, off + 24)); off += 24 + psz
# drop frames after the last commit frame
last = max(i for i, f in enumerate(frames) if f[1])
frames = frames[:last+1]
tmp = tempfile.mkdtemp(prefix='wal-pages.')
atexit.register(shutil.rmtree, tmp, True)
shutil.copy(os.path.join(d, 'store.db'), tmp + '/s.db'); shutil.copy(os.path.join(d, 'store.db-wal'), tmp + '/s.db-wal')
con = sqlite3.connect(tmp + '/s.db')
pmap = {}
try:
    for name, pageno, ptype in con.execute("SELECT name, pageno, pagetype FROM dbstat"):
        pmap[pageno] = (name, ptype)
except Exception as e:
    print('dbstat failed', e)
nrows = con.execute("select count(*) from microvms").fetchone()[0]
rv = con.execute("select value from meta where key='resource_version'").fetchone()[0]
meta_root = con.execute("select rootpage from sqlite_master where name='meta'").fetchone()[0]
# sizes
print('records', nrows, 'rv', rv, 'page_size', psz)
for name, n, payload, unused in con.execute("select name, count(*), sum(payload), sum(unused) from dbstat group by name order by 2 desc"):
    print(f'  btree {name}: {n} pages, payload {payload} B, unused {unused} B')
print('  avg row:', con.execute("select avg(length(spec)), avg(length(status)), avg(length(uid)), avg(length(id)), avg(length(created_at)) from microvms").fetchone())
con.close()
# decode meta page per commit to get rv: meta root page is a leaf table page holding 2 rows; find the value of the resource_version row
def meta_rv(page):
    # table leaf page: header at 0 (page 1 has 100-byte db header; meta root is not page 1)
    h = 0
    ncells = struct.unpack('>H', page[h+3:h+5])[0]
    ptrs = [struct.unpack('>H', page[h+8+2*i:h+10+2*i])[0] for i in range(ncells)]
    def varint(b, i):
        v = 0
        for k in range(9):
            c = b[i+k]
            if k == 8: return (v << 8) | c, i+9
            v = (v << 7) | (c & 0x7f)
            if c < 0x80: return v, i+k+1
    for p in ptrs:
        plen, i = varint(page, p); rowid, i = varint(page, i)
        hlen, j = varint(page, i); hend = i + hlen; types = []
        while j < hend:
            t, j = varint(page, j); types.append(t)
        body = hend; vals = []
        for t in types:
            if t >= 13 and t % 2: n = (t-13)//2; vals.append(page[body:body+n].decode()); body += n
            elif t in (1,2,3,4,6): n = {1:1,2:2,3:3,4:4,6:8}[t]; vals.append(int.from_bytes(page[body:body+n],'big',signed=True)); body += n
            elif t == 8: vals.append(0)
            elif t == 9: vals.append(1)
            elif t == 0: vals.append(None)
            else: vals.append(('?', t))
        if vals and vals[0] == 'resource_version': return vals[1]
    return None
commits = []; cur = collections.Counter(); curn = 0; rvs = []; meta_in = 0; crv = None; percommit = []
for pg, commit, po in frames:
    name = pmap.get(pg, ('?free/new', ''))[0]
    cur[name] += 1; curn += 1
    if pg == meta_root:
        r = meta_rv(wal[po:po+psz]); rvs.append(r); crv = r
    if commit:
        commits.append((curn, cur)); percommit.append((crv, curn, cur)); cur = collections.Counter(); curn = 0; crv = None
tot = collections.Counter()
for n, c in commits: tot.update(c)
nf = sum(n for n, _ in commits)
rvs = [r for r in rvs if r is not None]
writes = rvs[-1] - rvs[0] if len(rvs) > 1 else 0
print(f'frames {nf}, commits {len(commits)}, frames/commit mean {nf/len(commits):.2f} median {statistics.median(n for n,_ in commits)}')
print(f'resource_version {rvs[0]}..{rvs[-1]}: {writes} writes in the WAL after its first commit; frames after first commit {nf - commits[0][0]}')
fw = (nf - commits[0][0]) / writes if writes else 0
print(f'frames per write {fw:.3f}; per Create (2 writes) {2*fw:.3f}; writes per commit {writes/(len(commits)-1):.1f}')
print('by b-tree (frames, per commit, per write):')
for name, n in tot.most_common():
    print(f'  {name:40s} {n:7d} {n/len(commits):7.2f} {n/writes if writes else 0:7.3f}')

# commits binned by writes (rv delta from the commit before): frames per commit and per b-tree, comparable across runs
bins = collections.defaultdict(list)
for (r0, _, _), (r1, n, c) in zip(percommit, percommit[1:]):
    if r0 is None or r1 is None: continue
    w = r1 - r0
    b = '1-8' if w <= 8 else '9-16' if w <= 16 else '17-32' if w <= 32 else '33-64' if w <= 64 else '65+'
    bins[b].append((w, n, c))
# sqlite_autoindex_microvms_1 is the uid column's UNIQUE index, _2 the (namespace, id) primary key's
print('by writes per commit: commits, mean writes, frames/commit, frames/write; per commit uid-idx / key-idx / table / other')
for b in ['1-8', '9-16', '17-32', '33-64', '65+']:
    L = bins.get(b)
    if not L: continue
    W = sum(x[0] for x in L); N = sum(x[1] for x in L); k = len(L)
    t = collections.Counter()
    for _, _, c in L: t.update(c)
    other = N - t['sqlite_autoindex_microvms_1'] - t['sqlite_autoindex_microvms_2'] - t['microvms']
    print(f'  {b:6s} {k:4d} {W/k:6.1f} {N/k:7.2f} {N/W:6.3f}   {t["sqlite_autoindex_microvms_1"]/k:5.2f} / {t["sqlite_autoindex_microvms_2"]/k:5.2f} / {t["microvms"]/k:5.2f} / {other/k:4.2f}')
