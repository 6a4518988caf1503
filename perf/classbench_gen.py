#!/usr/bin/python3
"""Writes a ClassBench-format IPv4 rule file and a matching trace.

ClassBench's own generator (db_generator, with the acl1/fw1/ipc1 seed
files) is not packaged for Debian; this script follows the shape of its
acl1 seed instead: source and destination prefixes cut from a few hundred
networks (mostly /24 to /32, so rules nest and overlap), source ports
mostly wildcard, destination ports exact well-known ports, the
1024-65535 range or wildcard, TCP/UDP/any. Each trace header is drawn
inside a random rule (as ClassBench's trace_generator does), with 10 %
random headers that mostly match nothing.

Output is what `dpdk-test-acl --rulesf/--tracef` and
`pollgate acl bench --rules/--trace` both read. Stdlib only; run with
/usr/bin/python3. Usage: classbench_gen.py RULES N_RULES TRACE N_TRACE SEED
"""
import random
import sys


def main():
    rules_path, n_rules, trace_path, n_trace, seed = sys.argv[1:6]
    n_rules, n_trace = int(n_rules), int(n_trace)
    rng = random.Random(int(seed))
    # Networks inside 198.18.0.0/15 and a few other blocks.
    nets = [(0xC6120000 | rng.randrange(1 << 17)) & 0xFFFFFF00 for _ in range(200)]
    nets += [rng.randrange(1 << 32) & 0xFFFF0000 for _ in range(50)]

    def prefix():
        r = rng.random()
        if r < 0.05:
            return 0, 0
        length = rng.choice([16, 20, 23, 24, 24, 24, 26, 28, 30, 32, 32, 32, 32])
        net = rng.choice(nets)
        host = rng.randrange(1 << 16) if length > 16 else 0
        addr = (net | host) & ((0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF)
        return addr, length

    def dport():
        r = rng.random()
        if r < 0.45:
            p = rng.choice([21, 22, 23, 25, 53, 80, 110, 123, 143, 161, 443, 993, 1521, 3306, 8080])
            return p, p
        if r < 0.60:
            return 1024, 65535
        if r < 0.70:
            lo = rng.randrange(1024, 60000)
            return lo, lo + rng.randrange(1, 2000)
        return 0, 65535

    def sport():
        if rng.random() < 0.85:
            return 0, 65535
        if rng.random() < 0.5:
            return 1024, 65535
        p = rng.randrange(1, 65535)
        return p, p

    rules = []
    for _ in range(n_rules):
        s, sl = prefix()
        d, dl = prefix()
        sp = sport()
        dp = dport()
        proto = rng.choices([6, 17, None], [70, 20, 10])[0]
        rules.append((s, sl, d, dl, sp, dp, proto))

    def ip(a):
        return ".".join(str((a >> sh) & 255) for sh in (24, 16, 8, 0))

    with open(rules_path, "w") as f:
        for s, sl, d, dl, sp, dp, proto in rules:
            pr = "0x00/0x00" if proto is None else "0x%02x/0xff" % proto
            f.write("@%s/%d\t%s/%d\t%d : %d\t%d : %d\t%s\n" % (
                ip(s), sl, ip(d), dl, sp[0], sp[1], dp[0], dp[1], pr))

    def inside(a, length):
        host_bits = 32 - length
        return a | (rng.randrange(1 << host_bits) if host_bits else 0)

    with open(trace_path, "w") as f:
        for _ in range(n_trace):
            if rng.random() < 0.10:
                h = (rng.randrange(1 << 32), rng.randrange(1 << 32),
                     rng.randrange(65536), rng.randrange(65536), rng.choice([6, 17, 1]))
            else:
                s, sl, d, dl, sp, dp, proto = rng.choice(rules)
                h = (inside(s, sl), inside(d, dl), rng.randint(*sp), rng.randint(*dp),
                     proto if proto is not None else rng.choice([6, 17, 1]))
            f.write("%d\t%d\t%d\t%d\t%d\n" % h)


if __name__ == "__main__":
    main()
