"""Summarise `glazeish protect --json` lines into a Markdown table (per image and per folder)."""

import json
import platform
import statistics
import sys
from pathlib import Path

import torch

rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines() if line.strip()]
first = rows[0]
print(f"Preset `{first['intensity']}`: eps {first['eps_levels']}/255, {first['steps']} steps, objective `{first['objective']}`, "
      f"optimised through `{first.get('robust') or 'nothing'}`, encoder `{first['encoder']}`, seed {first['seed']}.  ")
print(f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
      f"Python {platform.python_version()}. `seconds` = the cloak only, on a machine shared with other jobs "
      "(speed: benchmarks/speed/).\n")
print("| image | size | PSNR cloak / noise (dB) | latent moved: cloak / noise | mimic-view PSNR cloak / noise (dB) | gap (dB) | seconds |")
print("|---|---|---|---|---|---|---|")
groups = {}
for r in rows:
    f = r["figures"]
    c, n, s = f["before"]["cloak"], f["before"]["noise"], f["summary"]
    d = (c["latent"]["taef2"], n["latent"]["taef2"])
    gap = s["view_gap"]
    group = Path(r["input"]).parent.name
    groups.setdefault(group, []).append((c["psnr"], d[0] / d[1], gap, r["seconds"]))
    name = Path(r["input"]).name
    name = name if len(name) < 40 else name[:37] + "..."
    print(f"| {name} | {r['width']}x{r['height']} | {c['psnr']:.1f} / {n['psnr']:.1f} | "
          f"{d[0]:.3f} / {d[1]:.3f} ({d[0] / d[1]:.1f}x) | {c['view_psnr']:.1f} / {n['view_psnr']:.1f} | "
          f"{gap:.1f} | {r['seconds']:.1f} |")
print("\n| folder | images | mean PSNR (min) | latent ratio mean (min) | mimic-view gap mean (min) | mean seconds |")
print("|---|---|---|---|---|---|")
for g, vals in groups.items():
    p, lr, gap, s = zip(*vals)
    print(f"| {g} | {len(vals)} | {statistics.mean(p):.1f} ({min(p):.1f}) | {statistics.mean(lr):.1f}x ({min(lr):.1f}x) | "
          f"{statistics.mean(gap):.1f} ({min(gap):.1f}) | {statistics.mean(s):.1f} |")
