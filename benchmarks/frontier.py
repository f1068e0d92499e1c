"""Visibility–damage frontier for re-tuning the presets (issue: robust + invisible cloaks).

For each candidate setting (eps, steps, budget, robust) it cloaks a sample of `../shared/images/` at full
size and measures, with `glazeish.report.assess` (every figure next to same-budget uniform noise):
PSNR, the mimic-view gap (dB) and the latent ratio on taef2 (attacked), the latent ratio on taesana
(not attacked: transfer), and the retained advantage after a real JPEG q75 re-save and a 0.75 down-up
resize.

    python benchmarks/frontier.py --out benchmarks/frontier            # all 18 images, every candidate
    python benchmarks/frontier.py --quick --out /tmp/frontier          # smoke run
    python benchmarks/frontier.py --report     # RESULTS.md's table and frontier.png from the committed rows

Writes `results.jsonl`, `RESULTS.md` and `frontier.png`; resumable (finished rows are skipped). `--report`
loads no model: it rewrites the generated table of `--out`'s RESULTS.md and redraws its `frontier.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "frontier"
sys.path.insert(0, str(HERE.parent))
from common import MODELS, read_rows, regenerate, shared_images  # noqa: E402


CANDIDATES = [
    # name, eps, steps, budget, robust
    ("e4", 4, 6, "flat", ""),
    ("e4-jpeg", 4, 6, "flat", "identity,jpeg"),
    ("e6-perc", 6, 6, "perceptual", ""),
    ("e8-perc-jpeg", 8, 6, "perceptual", "identity,jpeg"),
    ("e3", 3, 6, "flat", ""),
    ("e6", 6, 6, "flat", ""),
    ("e4-jpeg-resize", 4, 6, "flat", "identity,jpeg,resize"),
    ("e5-jpeg", 5, 6, "flat", "identity,jpeg"),
    ("e6-jpeg-s12", 6, 12, "flat", "identity,jpeg"),
]


def images(quick: bool, sample: bool) -> list[Path]:
    paintings = shared_images("paintings")
    flat = shared_images("flat")
    if quick:
        return paintings[:1] + flat[:1]
    return (paintings[::6] + flat[::3]) if sample else (paintings + flat)  # sample: 2 paintings, 2 flat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--candidates", default="", help="comma-separated subset of the candidates to run")
    ap.add_argument("--sample", action="store_true", help="2 paintings + 2 flat images instead of all 18")
    ap.add_argument("--models", default=str(MODELS))
    ap.add_argument("--report", action="store_true",
                    help="rewrite --out's RESULTS.md table and frontier.png from its results.jsonl instead of running")
    args = ap.parse_args()
    if args.report:
        (args.out / "RESULTS.md").write_text(report(args.out))
        plot(read_rows(args.out / "results.jsonl"), args.out / "frontier.png")
        return

    import torch

    from glazeish.config import ProtectConfig
    from glazeish.encoders import Ensemble
    from glazeish.evaluation import assess
    from glazeish.imageio import read_image
    from glazeish.protect import Protector

    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "results.jsonl"
    done = set()
    if log_path.exists():
        done = {(r["candidate"], r["image"]) for r in map(json.loads, log_path.read_text().splitlines())}
    cands = CANDIDATES[:2] if args.quick else CANDIDATES
    if args.candidates:
        wanted = args.candidates.split(",")
        unknown = set(wanted) - {c[0] for c in CANDIDATES}
        if unknown:
            ap.error(f"unknown candidates: {', '.join(sorted(unknown))}")
        cands = [c for c in cands if c[0] in wanted]
    files = images(args.quick, args.sample)
    measure = None
    with open(log_path, "a") as log:
        for name, eps, steps, budget, robust in cands:
            cfg = ProtectConfig(eps_levels=eps, steps=steps, budget=budget, robust=robust, models_dir=args.models,
                                encoder="taef2")
            p = Protector(cfg)
            if measure is None:
                from glazeish.encoders import load_encoder

                measure = Ensemble([p.ensemble.models[0], load_encoder("taesana", args.models)])
            for f in files:
                if (name, f.name) in done:
                    continue
                art = read_image(f)
                t0 = time.perf_counter()
                res = p.protect(art)
                secs = time.perf_counter() - t0
                fig = assess(art.rgb, res.rgb, measure, eps_levels=eps, seed=0, purifications=("jpeg75", "resize0.75"))
                b, s = fig.before, fig.summary
                row = {
                    "candidate": name, "eps": eps, "steps": steps, "budget": budget, "robust": robust,
                    "image": f.name, "kind": f.parent.name, "seconds": round(secs, 2),
                    "psnr": b.cloak.psnr, "psnr_noise": b.noise.psnr, "psnr_uniform": b.uniform.psnr,
                    "mimic_gap": s.view_gap, "mimic_gap_uniform": s.view_gap_uniform,
                    "mimic_psnr": b.cloak.view_psnr, "mimic_psnr_noise": b.noise.view_psnr,
                    "latent_ratio": s.latent_ratio["taef2"], "transfer_ratio": s.latent_ratio["taesana"],
                }
                for pur in ("jpeg75", "resize0.75"):
                    row[f"retained_mimic_{pur}"] = fig.purified[pur].retained
                    c = fig.purified[pur].comparison
                    row[f"retained_latent_{pur}"] = c.latent_gain("taef2") / max(b.latent_gain("taef2"), 1e-9)
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(f"{name} {f.name[:30]}: psnr {row['psnr']:.1f} gap {row['mimic_gap']:.1f} "
                      f"jpeg {row['retained_mimic_jpeg75']} ({secs:.0f}s)", file=sys.stderr, flush=True)
            del p
            torch.set_num_threads(torch.get_num_threads())
    summarise([json.loads(l) for l in log_path.read_text().splitlines()], args.out)


#: which candidate each preset is (glazeish/protect.py PRESETS), chosen from this frontier
PRESET_OF = {"e3": "low", "e4-jpeg": "default", "e6-jpeg-s12": "high"}


def _mean(vals) -> float:
    vals = [v for v in vals if v is not None]
    return statistics.mean(vals) if vals else float("nan")


def frontier_table(rows: list[dict]) -> str:
    """Mean (min) per candidate and kind."""
    lines = [
        "| candidate | kind | n | PSNR mean (min) | gap dB mean (min) | latent × | transfer × | kept JPEG75 mimic / latent | kept resize0.75 mimic / latent | s/img |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in [c[0] for c in CANDIDATES]:
        for kind in ("paintings", "flat"):
            rs = [r for r in rows if r["candidate"] == name and r["kind"] == kind]
            if not rs:
                continue
            m = lambda k: _mean(r[k] for r in rs)  # noqa: E731
            lo = lambda k: min(r[k] for r in rs)  # noqa: E731
            lines.append(
                f"| {name}{' (**' + PRESET_OF[name] + '**)' if name in PRESET_OF else ''} | {kind} | {len(rs)} | {m('psnr'):.1f} ({lo('psnr'):.1f}) | {m('mimic_gap'):.1f} "
                f"({lo('mimic_gap'):.1f}) | {m('latent_ratio'):.1f} | "
                f"{m('transfer_ratio'):.2f} | {m('retained_mimic_jpeg75'):.0%} / {m('retained_latent_jpeg75'):.0%} | "
                f"{m('retained_mimic_resize0.75'):.0%} / {m('retained_latent_resize0.75'):.0%} | {m('seconds'):.0f} |"
            )
    return "\n".join(lines)


def plot(rows: list[dict], dest: Path) -> None:
    """``frontier.png``: PSNR against the gap, before and after JPEG q75, one point per candidate and kind."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        after_jpeg = lambda r: r["mimic_gap"] * r["retained_mimic_jpeg75"]  # noqa: E731  (advantage left, dB)
        panels = [("mimic-view gap vs noise (dB) → stronger", lambda r: r["mimic_gap"]),
                  ("gap left after a JPEG q75 re-save (dB) → stronger", after_jpeg)]
        for row, (ylabel, fy) in enumerate(panels):
            for ax, kind in zip(axes[row], ("paintings", "flat")):
                for i, name in enumerate(c[0] for c in CANDIDATES):
                    rs = [r for r in rows if r["candidate"] == name and r["kind"] == kind]
                    if not rs:
                        continue
                    x, y = _mean(r["psnr"] for r in rs), _mean(fy(r) for r in rs)
                    preset = PRESET_OF.get(name)
                    ax.scatter(x, y, color=f"C{i}", marker="*" if preset else "o", s=120 if preset else 30)
                    ax.annotate(f"{name} = {preset}" if preset else name, (x, y), fontsize=7, xytext=(3, 3),
                                textcoords="offset points", fontweight="bold" if preset else "normal")
                ax.set(xlabel="PSNR cloak vs original (dB) → less visible", ylabel=ylabel,
                       title=f"{kind} (★ = preset; n per point in RESULTS.md)")
                ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(dest, dpi=90)
    except Exception as e:
        print(f"plot skipped: {e}", file=sys.stderr)


def report(folder: Path = HERE) -> str:
    """RESULTS.md of ``folder`` with its generated table rebuilt from the rows beside it."""
    rows = read_rows(folder / "results.jsonl")
    return regenerate((folder / "RESULTS.md").read_text(), {"frontier": lambda: frontier_table(rows)})


def summarise(rows: list[dict], out: Path) -> None:
    """A fresh RESULTS.md (the machine written here once, the table generated) and ``frontier.png``."""
    lines = [
        "# Preset frontier",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Mean over images per kind; `gap` = mimic-view PSNR of noise minus that of the cloak (dB, taef2); "
        "`latent`/`transfer` = latent displacement ÷ noise's on taef2 (attacked) / taesana (not attacked); "
        "`kept` = share of the cloak's advantage over noise left after the purification (mimic view / latent), "
        "each measured against the equally purified original (see `glazeish.evaluation.assess`). `n` = images. "
        "Rows with n = 2 (paintings) / 2 (flat) are the earlier 4-image sample. `s/img` = the cloak only, on a "
        "machine shared with other jobs (not a speed result; see `benchmarks/speed/`).",
        "",
        "Commands: `python benchmarks/frontier.py --out benchmarks/frontier --candidates NAMES` "
        "(resumable; `--sample` = the 4-image sample); `python benchmarks/frontier.py --report` rebuilds the table "
        "and `frontier.png` from the committed rows.",
        "",
        "<!-- generated: frontier -->",
        "<!-- end generated -->",
        "",
    ]
    (out / "RESULTS.md").write_text(regenerate("\n".join(lines), {"frontier": lambda: frontier_table(rows)}))
    plot(rows, out / "frontier.png")
    print((out / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
