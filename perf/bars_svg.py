#!/usr/bin/python3
"""Grouped bars on a log scale, as an SVG: one group per size, one bar per
contender. Reads the JSON a perf/ script wrote: top-level objects keyed by
size, each holding the KEYS named on the command line.

    bars_svg.py RESULTS.json OUT.svg TITLE KEY=LABEL...
"""
import json
import math
import sys

src, out, title, *pairs = sys.argv[1:]
series = [p.split("=", 1) for p in pairs]
data = json.load(open(src))
sizes = sorted((k for k, v in data.items() if isinstance(v, dict)), key=int)
colours = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#8c613c", "#dd8452"]
vals = [data[s][k] for s in sizes for k, _ in series if data[s].get(k)]
lo = 10 ** math.floor(math.log10(min(vals)))
hi = 10 ** math.ceil(math.log10(max(vals)))
W, H, L, B, T = 760, 420, 70, 70, 50
bar = 18
group = bar * len(series) + 30
W = max(W, L + 30 + group * len(sizes))
y = lambda v: T + (H - T - B) * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))
o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
     f'<rect width="{W}" height="{H}" fill="white"/>',
     f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="14">{title}</text>']
d = lo
while d <= hi * 1.0001:
    o.append(f'<line x1="{L}" x2="{W - 10}" y1="{y(d):.1f}" y2="{y(d):.1f}" stroke="#ddd"/>')
    o.append(f'<text x="{L - 6}" y="{y(d) + 4:.1f}" text-anchor="end">{d:g}</text>')
    d *= 10
o.append(f'<text x="16" y="{(H - B + T) / 2}" transform="rotate(-90 16 {(H - B + T) / 2})" text-anchor="middle">Mpps (log)</text>')
for g, s in enumerate(sizes):
    x0 = L + 20 + g * group
    for i, (k, _) in enumerate(series):
        v = data[s].get(k)
        if not v:
            continue
        x = x0 + i * bar
        o.append(f'<rect x="{x}" y="{y(v):.1f}" width="{bar - 2}" height="{H - B - y(v):.1f}" fill="{colours[i % len(colours)]}"><title>{v}</title></rect>')
        o.append(f'<text x="{x + bar / 2 - 1}" y="{y(v) - 3:.1f}" text-anchor="middle" font-size="9">{v:.3g}</text>')
    o.append(f'<text x="{x0 + bar * len(series) / 2}" y="{H - B + 16}" text-anchor="middle">{int(s):,} MAC pairs</text>')
# Four legend entries a row: more would run past the plot's width.
for i, (_, label) in enumerate(series):
    x = L + 10 + (i % 4) * 170
    ly = H - 40 + (i // 4) * 18
    o.append(f'<rect x="{x}" y="{ly}" width="12" height="12" fill="{colours[i % len(colours)]}"/>')
    o.append(f'<text x="{x + 16}" y="{ly + 10}">{label}</text>')
o.append("</svg>")
open(out, "w").write("\n".join(o) + "\n")
