"""How far are the figures of a large image from the truth when what the model sees is measured on 4 tiles
instead of all of them (``glazeish protect --figure-tiles 4``, the default)? (issue 19)

The shared images are at most 768 px, so the large images are **mosaics**: 2048×2048, a 4×4 grid of 512×512
cells, each cell the centre of a different shared image (the 17 that are at least 512 px both ways: 12
paintings, flat_01/03/06, line_02/03), in a seeded order per mosaic, so the sampled tiles (the grid's diagonal)
see different pictures in every mosaic. Mixed content across tiles is the hard case for sampling: a real
2048² painting varies less from tile to tile. Each cell is cloaked on its own at 512² with the ``fast`` preset
(what the tiled cloak of a 2048² image does, up to its overlaps; cached under ``benchmarks/_scratch``), the
cloaked cells make the cloaked mosaic, and :func:`glazeish.evaluation.assess` (JPEG q75 survival, as
``protect`` reports it) runs on the pair with an fp32 :class:`~glazeish.evaluation.Evaluator` measuring every
tile and one sampling ``--tiles`` of them.

    OMP_NUM_THREADS=1 python benchmarks/figures_sampled.py --models ../shared/models
    python benchmarks/figures_sampled.py --report   # RESULTS.md's tables from the committed rows (no model)

Writes ``results.jsonl`` (one row per mosaic: the headline figures each way, the seconds, the cells on the
sampled tiles) and ``RESULTS.md`` (the largest and median absolute difference per figure, the machine and the
command) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent / "figures_sampled"
sys.path.insert(0, str(HERE.parent))
from common import MODELS, ROOT, regenerate, report_from_rows, shared_images  # noqa: E402

SCRATCH = ROOT / "benchmarks" / "_scratch" / "figures_sampled"  # git-ignored: the cloaked cells
CELL, GRID = 512, 4
#: the headline figures a user reads (dB), and the JPEG retention (a fraction) apart
FIGURES = {
    "view_psnr": "mimic's view of the cloak vs the original's (dB)",
    "noise_view_psnr": "same for same-PSNR noise (dB)",
    "view_gap": "view gap vs same-PSNR noise (dB)",
    "view_gap_uniform": "view gap vs same-L∞ noise (dB)",
    "copy_change": "the model's copy of the artwork, change (dB)",
    "jpeg_view_gap": "after JPEG q75: view gap vs noise (dB)",
}


def cells() -> list[Path]:
    out = []
    for folder in ("paintings", "flat", "line"):
        for p in shared_images(folder):
            with Image.open(p) as im:
                if min(im.size) >= CELL:
                    out.append(p)
    return out


def centre(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"))
    h, w = a.shape[:2]
    top, left = (h - CELL) // 2, (w - CELL) // 2
    return np.ascontiguousarray(a[top : top + CELL, left : left + CELL])


def cloaked_cell(path: Path, protector) -> np.ndarray:
    """The cell cloaked with ``fast`` at 512², cached as a PNG (same input, same bytes)."""
    from glazeish.imageio import Artwork

    dest = SCRATCH / f"{path.stem}.fast.png"
    if dest.exists():
        return np.asarray(Image.open(dest).convert("RGB"))
    rgb = protector.protect(Artwork(rgb=centre(path))).rgb
    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(dest)
    return rgb


def mosaic(parts: list[np.ndarray]) -> np.ndarray:
    rows = [np.concatenate(parts[r * GRID : (r + 1) * GRID], axis=1) for r in range(GRID)]
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def headline(f) -> dict:
    s, jp = f.summary, f.purified["jpeg75"]
    return {"view_psnr": s.view_psnr, "noise_view_psnr": f.before.noise.view_psnr, "view_gap": s.view_gap,
            "view_gap_uniform": s.view_gap_uniform, "copy_change": s.copy_change,
            "jpeg_view_gap": jp.comparison.view_gap("noise"), "jpeg_retained": jp.retained,
            "latent_ratio": s.latent_ratio["taef2"], "measured": f.measured}


def run(args) -> list[dict]:
    import torch

    from glazeish.config import ProtectConfig
    from glazeish.encoders import load_encoders
    from glazeish.evaluation import Evaluator, assess
    from glazeish.protect import Protector

    torch.set_num_threads(args.threads)
    ensemble = load_encoders("taef2", args.models, torch.device("cpu"))
    protector = Protector(ProtectConfig(intensity="fast", models_dir=args.models, precision="bf16", device="cpu"),
                          ensemble=ensemble)
    files = cells()
    originals = {p: centre(p) for p in files}
    cloaks = {p: cloaked_cell(p, protector) for p in files}
    evaluators = {"all": Evaluator(ensemble, precision="fp32"), "sampled": Evaluator(ensemble, precision="fp32",
                                                                                     sample=args.tiles)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "results.jsonl"
    done = {r["mosaic"]: r for r in map(json.loads, rows_path.read_text().splitlines())} if rows_path.exists() else {}
    rows = []
    for m in range(args.mosaics):
        if m in done:
            rows.append(done[m])
            continue
        order = np.random.default_rng(m).permutation(len(files))[: GRID * GRID]
        picked = [files[i] for i in order]
        x, xc = mosaic([originals[p] for p in picked]), mosaic([cloaks[p] for p in picked])
        _, sampled = evaluators["sampled"].tiles(*x.shape[:2])
        on_sampled = [picked[(t.top // CELL) * GRID + t.left // CELL].name for t in sampled]
        row = {"mosaic": m, "cells": [p.name for p in picked], "sampled_cells": on_sampled, "tiles": args.tiles}
        for name in (("all", "sampled") if m % 2 == 0 else ("sampled", "all")):  # alternate: load drift hits both
            t0 = time.perf_counter()
            f = assess(x, xc, evaluators[name], seed=m, purifications=("jpeg75",))
            row[name] = {**headline(f), "seconds": round(time.perf_counter() - t0, 2)}
        rows.append(row)
        with open(rows_path, "a") as log:
            log.write(json.dumps(row) + "\n")
        print(f"mosaic {m}: gap {row['all']['view_gap']:.2f} vs {row['sampled']['view_gap']:.2f} dB, "
              f"{row['all']['seconds']:.0f} s vs {row['sampled']['seconds']:.0f} s", file=sys.stderr, flush=True)
    return rows


def figures_table(rows: list[dict]) -> str:
    """What was measured, then per figure: its mean over all tiles and the sampled − all differences."""
    lines = [f"{len(rows)} mosaics of 2048×2048 (16 tiles of 512², {rows[0]['tiles']} measured: "
             f"{rows[0]['sampled']['measured'] * 100:.0f}% of the pixels). Δ = sampled − all.", "",
             "| figure | all tiles (mean) | max \\|Δ\\| | median \\|Δ\\| | mean Δ |", "|---|---:|---:|---:|---:|"]
    for k, label in {**FIGURES, "jpeg_retained": "after JPEG q75: share of the advantage kept",
                     "latent_ratio": "taef2 latent move ÷ same-PSNR noise's"}.items():
        a = [r["all"][k] for r in rows]
        d = [r["sampled"][k] - r["all"][k] for r in rows]
        lines.append(f"| {label} | {statistics.mean(a):.2f} | {max(map(abs, d)):.2f} | "
                     f"{statistics.median(map(abs, d)):.2f} | {statistics.mean(d):+.2f} |")
    return "\n".join(lines)


def time_line(rows: list[dict]) -> str:
    ratio = statistics.median(r["all"]["seconds"] / r["sampled"]["seconds"] for r in rows)
    return (f"Time of one `assess` (figures with JPEG q75): median {statistics.median(r['all']['seconds'] for r in rows):.0f} s "
            f"all tiles, {statistics.median(r['sampled']['seconds'] for r in rows):.0f} s sampled; all ÷ sampled = "
            f"{ratio:.2f}× (median over mosaics).")


def mosaics_table(rows: list[dict]) -> str:
    lines = ["Per mosaic:", "", "| mosaic | cells on the sampled tiles | gap all / sampled dB | JPEG kept all / sampled |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mosaic']} | {', '.join(c[:12] for c in r['sampled_cells'])} | "
                     f"{r['all']['view_gap']:.2f} / {r['sampled']['view_gap']:.2f} | "
                     f"{r['all']['jpeg_retained']:.2f} / {r['sampled']['jpeg_retained']:.2f} |")
    return "\n".join(lines)


def tables(rows: list[dict]) -> dict:
    """The generated blocks of RESULTS.md by name, from the rows."""
    return {"figures": lambda: figures_table(rows), "time": lambda: time_line(rows),
            "mosaics": lambda: mosaics_table(rows)}


def report(folder: Path = HERE) -> str:
    """RESULTS.md of ``folder`` with every generated block rebuilt from the rows beside it."""
    return report_from_rows(folder, tables)


def fresh_report(rows: list[dict], args) -> str:
    """A fresh RESULTS.md: the set-up, the machine and the command (written here once), then the generated
    blocks (``--report`` rebuilds them from ``results.jsonl``)."""
    import torch

    from glazeish.device import cpu_name

    lines = ["# Figures of a large image from 4 of its tiles vs from all of them", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, {cpu_name()}, torch {torch.__version__} with "
             f"{args.threads} thread(s); other jobs shared the CPU, so the seconds are noisy (their ratio less so).",
             "", f"Command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`", "",
             "The blocks below: `python benchmarks/figures_sampled.py --report` rebuilds them from `results.jsonl`.",
             ""]
    for name in ("figures", "time", "mosaics"):
        lines += [f"<!-- generated: {name} -->", "<!-- end generated -->", ""]
    return regenerate("\n".join(lines), tables(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(MODELS))
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--mosaics", type=int, default=4)
    ap.add_argument("--tiles", type=int, default=4, help="tiles the sampled evaluator measures")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true",
                    help="rewrite the generated blocks of --out's RESULTS.md from its results.jsonl instead of running")
    args = ap.parse_args()
    if args.report:
        (Path(args.out) / "RESULTS.md").write_text(report(Path(args.out)))
        return
    rows = run(args)
    (Path(args.out) / "RESULTS.md").write_text(fresh_report(rows, args))
    print((Path(args.out) / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
