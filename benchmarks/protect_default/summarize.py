"""Summarise `glazeish protect --json` lines into a Markdown table (per image and per folder).

    python benchmarks/protect_default/summarize.py benchmarks/protect_default/results.jsonl

Reads the rows `glazeish protect --json` writes now (``figures``: the cloak against same-PSNR noise) and the
older ones committed here (``psnr`` / ``encoders``: against uniform noise of the same L∞, ``random``).
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
from pathlib import Path


def figures(r: dict) -> dict:
    """One row's figures, whichever form it has: PSNR, taef2 latent change and mimic-view PSNR of the cloak
    and of its noise baseline, and the view gap."""
    if "figures" in r:
        f = r["figures"]
        c, n = f["before"]["cloak"], f["before"]["noise"]
        return {"psnr": (c["psnr"], n["psnr"]), "latent": (c["latent"]["taef2"], n["latent"]["taef2"]),
                "view": (c["view_psnr"], n["view_psnr"]), "gap": f["summary"]["view_gap"]}
    e = r["encoders"]["taef2"]
    view = (e["mimic_psnr"]["cloak"], e["mimic_psnr"]["random"])
    return {"psnr": (r["psnr"]["cloak"], r["psnr"]["random"]),
            "latent": (e["latent_displacement"]["cloak"], e["latent_displacement"]["random"]),
            "view": view, "gap": view[1] - view[0]}


def summary(rows: list[dict]) -> str:
    import torch

    first = rows[0]
    eps = first.get("eps_levels", first.get("eps"))
    lines = [f"Preset `{first['intensity']}`: eps {eps}/255, {first['steps']} steps, objective `{first['objective']}`, "
             f"optimised through `{first.get('robust') or 'nothing'}`, encoder `{first['encoder']}`, seed {first['seed']}.  ",
             f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
             f"Python {platform.python_version()}. `seconds` = the cloak only, on a machine shared with other jobs "
             "(speed: benchmarks/speed/).\n",
             "| image | size | PSNR cloak / noise (dB) | latent moved: cloak / noise | mimic-view PSNR cloak / noise (dB) "
             "| gap (dB) | seconds |",
             "|---|---|---|---|---|---|---|"]
    groups: dict[str, list[tuple]] = {}
    for r in rows:
        f = figures(r)
        (pc, pn), (dc, dn), (vc, vn) = f["psnr"], f["latent"], f["view"]
        groups.setdefault(Path(r["input"]).parent.name, []).append((pc, dc / dn, f["gap"], r["seconds"]))
        name = Path(r["input"]).name
        name = name if len(name) < 40 else name[:37] + "..."
        lines.append(f"| {name} | {r['width']}x{r['height']} | {pc:.1f} / {pn:.1f} | {dc:.3f} / {dn:.3f} ({dc / dn:.1f}x) "
                     f"| {vc:.1f} / {vn:.1f} | {f['gap']:.1f} | {r['seconds']:.1f} |")
    lines += ["\n| folder | images | mean PSNR (min) | latent ratio mean (min) | mimic-view gap mean (min) | mean seconds |",
              "|---|---|---|---|---|---|"]
    for g, vals in groups.items():
        p, lr, gap, s = zip(*vals)
        lines.append(f"| {g} | {len(vals)} | {statistics.mean(p):.1f} ({min(p):.1f}) | {statistics.mean(lr):.1f}x "
                     f"({min(lr):.1f}x) | {statistics.mean(gap):.1f} ({min(gap):.1f}) | {statistics.mean(s):.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary([json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines() if line.strip()]))
