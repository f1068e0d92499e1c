"""Summarise `glazeish protect --json` lines into a Markdown table (per image and per folder).

    python benchmarks/protect_default/summarize.py benchmarks/protect_default/results.jsonl   # a fresh RESULTS.md
    python benchmarks/protect_default/summarize.py --report   # RESULTS.md's blocks from the committed rows

Reads the rows `glazeish protect --json` writes now (``figures``: the cloak against same-PSNR noise) and the
older ones committed here (``psnr`` / ``encoders``: against uniform noise of the same L∞, ``random``). The first
form prints a whole RESULTS.md (what ``run.sh`` writes); ``--report`` rewrites only the generated blocks of the
committed RESULTS.md from the ``results.jsonl`` beside it, keeping the prose written by hand.
"""

from __future__ import annotations

import platform
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import read_rows, regenerate, report_from_rows  # noqa: E402


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


def preset_line(rows: list[dict]) -> str:
    """The preset's settings, from the first row."""
    first = rows[0]
    eps = first.get("eps_levels", first.get("eps"))
    return (f"Preset `{first['intensity']}`: eps {eps}/255, {first['steps']} steps, objective `{first['objective']}`, "
            f"optimised through `{first.get('robust') or 'nothing'}`, encoder `{first['encoder']}`, seed {first['seed']}.")


def images_table(rows: list[dict]) -> str:
    lines = ["| image | size | PSNR cloak / noise (dB) | latent moved: cloak / noise | mimic-view PSNR cloak / noise (dB) "
             "| gap (dB) | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        f = figures(r)
        (pc, pn), (dc, dn), (vc, vn) = f["psnr"], f["latent"], f["view"]
        name = Path(r["input"]).name
        name = name if len(name) < 40 else name[:37] + "..."
        lines.append(f"| {name} | {r['width']}x{r['height']} | {pc:.1f} / {pn:.1f} | {dc:.3f} / {dn:.3f} ({dc / dn:.1f}x) "
                     f"| {vc:.1f} / {vn:.1f} | {f['gap']:.1f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def folders_table(rows: list[dict]) -> str:
    groups: dict[str, list[tuple]] = {}
    for r in rows:
        f = figures(r)
        (pc, _), (dc, dn) = f["psnr"], f["latent"]
        groups.setdefault(Path(r["input"]).parent.name, []).append((pc, dc / dn, f["gap"], r["seconds"]))
    lines = ["| folder | images | mean PSNR (min) | latent ratio mean (min) | mimic-view gap mean (min) | mean seconds |",
             "|---|---|---|---|---|---|"]
    for g, vals in groups.items():
        p, lr, gap, s = zip(*vals)
        lines.append(f"| {g} | {len(vals)} | {statistics.mean(p):.1f} ({min(p):.1f}) | {statistics.mean(lr):.1f}x "
                     f"({min(lr):.1f}x) | {statistics.mean(gap):.1f} ({min(gap):.1f}) | {statistics.mean(s):.1f} |")
    return "\n".join(lines)


def tables(rows: list[dict]) -> dict:
    """The generated blocks of RESULTS.md by name, from the rows."""
    return {"preset": lambda: preset_line(rows), "images": lambda: images_table(rows),
            "folders": lambda: folders_table(rows)}


def report(folder: Path = HERE) -> str:
    """RESULTS.md of ``folder`` with every generated block rebuilt from the rows beside it."""
    return report_from_rows(folder, tables)


def summary(rows: list[dict]) -> str:
    """A fresh RESULTS.md: the machine written here once, the rest generated from the rows."""
    import torch

    text = "\n".join([
        "<!-- generated: preset -->", "<!-- end generated -->", "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}. `seconds` = the cloak only, on a machine shared with other jobs "
        "(speed: benchmarks/speed/).", "",
        "The blocks: `python benchmarks/protect_default/summarize.py --report` rebuilds them from `results.jsonl`.", "",
        "<!-- generated: images -->", "<!-- end generated -->", "",
        "<!-- generated: folders -->", "<!-- end generated -->", ""])
    return regenerate(text, tables(rows))


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        (HERE / "RESULTS.md").write_text(report())
    elif len(sys.argv) == 2:
        print(summary(read_rows(sys.argv[1])), end="")
    else:
        sys.exit(__doc__)
