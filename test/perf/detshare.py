#!/usr/bin/env python3
"""detshare.py BIN DIR: for each per-run profile DIR/prof.proxy-*.<clients>.<script>
that `bench proxy --cpuprofile DIR/prof` wrote, the detectors' CPU (counted as
docs/PERFORMANCE.md says: anything under events/detect, the PostgreSQL
gateway's literal pass, the gateway core's recording rule), the process's
sampled CPU, and the CPU of the processes on the path over the profile's span
(DIR/path.txt, from pathcpu.py), with the share of each."""
import datetime, glob, os, re, subprocess, sys

BIN, D = sys.argv[1], sys.argv[2]
A = (r'events/detect\.|pgproxy\.redactSQL$|gateway\.(JudgeText|ScrubFound|Found|restClean|anyCandidate|'
     r'scrubValue|writerRule|replaceFound|writerFinds|valuesIn|\(\*Redaction\)\.digest|mergeRedactions|'
     r'scrubTarget|scrubName|JoinedRuns|\(\*Session\)\.Digest|Redactions|redigest|ScrubDecoded|ScrubQuery)$')


def pprof(args, f):
    return subprocess.run(['go', 'tool', 'pprof', '-top', '-nodefraction=0'] + args + [BIN, f],
                          capture_output=True, text=True, check=True).stdout


def seconds(pattern, out):
    m = re.search(pattern + r' ([\d.]+)(m?s)', out)
    if not m:
        return 0.0
    return float(m.group(1)) / (1000 if m.group(2) == 'ms' else 1)


ticks = os.sysconf('SC_CLK_TCK')
path = [tuple(map(float, l.split())) for l in open(os.path.join(D, 'path.txt'))]


def path_at(t):
    for (a, ca), (b, cb) in zip(path, path[1:]):
        if a <= t <= b:
            return ca + (cb - ca) * (t - a) / (b - a)
    return None


tps = {}
for line in open(os.path.join(D, 'bench.txt')):
    m = re.match(r'\s*(\d+)\s+(select-only|tpcb-like)\s+proxy,.*?\s([\d]+)\s+[\d.]+ ms', line)
    if m:
        tps[(m.group(1), m.group(2))] = int(m.group(3))

print('%-8s %-12s %6s %9s %9s %12s %9s %9s' % ('clients', 'script', 'TPS', 'det µs/tx', 'of proc', 'path µs/tx', 'of path', 'writer'))
for f in sorted(glob.glob(os.path.join(D, 'prof.proxy-*'))):
    if f.endswith('.after'):
        continue
    clients, script = f.rsplit('.', 2)[1:]
    base = pprof([], f)
    start = datetime.datetime.strptime(re.search(r'Time: (.*) UTC', base).group(1), '%Y-%m-%d %H:%M:%S')
    t0 = start.replace(tzinfo=datetime.timezone.utc).timestamp()
    span = float(re.search(r'Duration: ([\d.]+)s', base).group(1))
    total = seconds('Total samples =', base)
    det = seconds('Showing nodes accounting for', pprof(['-focus=' + A], f)) + seconds(
        'Showing nodes accounting for',
        pprof(['-focus=gateway\\.encodeScrubbed$', '-ignore=' + A + r'|gateway\.marshalPayload$'], f))
    writer = seconds('Showing nodes accounting for',
                     pprof(['-focus=' + A, '-show_from=ingest\\.\\(\\*Ingester\\)\\.checkMsg$'], f))
    a, b = path_at(t0), path_at(t0 + span)
    tx = tps.get((clients, script), 0) * span
    pc = (b - a) / ticks if a is not None and b is not None else None
    print('%-8s %-12s %6d %9s %8.1f%% %12s %9s %8.1f%%' % (
        clients, script, tps.get((clients, script), 0),
        '%.1f' % (det / tx * 1e6) if tx else '?', 100 * det / total,
        '%.0f' % (pc / tx * 1e6) if pc and tx else '?',
        '%.1f%%' % (100 * det / pc) if pc else '?', 100 * writer / det if det else 0))
