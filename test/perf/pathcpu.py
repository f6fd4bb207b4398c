#!/usr/bin/env python3
"""pathcpu.py BENCHPID OUT: every 0.5 s, the CPU (utime+stime, clock ticks) of the
processes on the bench's path, written as "unix-time ticks" lines to OUT until
BENCHPID exits: the bench process with its reaped children (pgbench runs),
the pgbench processes, and every postgres process with the postmaster's
reaped backends."""
import os
import sys
import time

bench, out = int(sys.argv[1]), sys.argv[2]
f = open(out, 'w')
while os.path.exists('/proc/%d' % bench):
    tot = 0
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            s = open('/proc/%s/stat' % p).read()
        except OSError:
            continue
        comm = s[s.index('(')+1:s.rindex(')')]
        rest = s[s.rindex(')')+2:].split()
        ut, st, cut, cst = int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14])
        ppid = int(rest[1])
        if int(p) == bench:
            tot += ut + st + cut + cst  # and its reaped pgbench runs
        elif comm == 'pgbench':
            tot += ut + st
        elif comm == 'postgres':
            tot += ut + st
            try:
                parent = open('/proc/%d/comm' % ppid).read().strip()
            except OSError:
                parent = ''
            if parent != 'postgres':
                tot += cut + cst  # the postmaster: its reaped backends
    f.write('%.3f %d\n' % (time.time(), tot))
    f.flush()
    time.sleep(0.5)
