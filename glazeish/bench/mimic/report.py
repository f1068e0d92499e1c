"""The report of a ``bench mimic`` run, in ``OUT``: the summary rows with their bootstrap intervals and ratios
(``summary.csv``), the CSV writer, the sample grids and training curves, and ``results.md``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from ...imageio import save_image
from ...metadata import MetadataOptions
from .config import METRIC_INFO, METRICS, NONE, Log, MimicConfig, _safe
from .stats import ImageStats, bootstrap_distance, set_distances

__all__ = ["grid_image"]


def _run_dir(out: Path, prot, seed: int) -> Path:
    """Where one (protection, seed) keeps its ``losses.csv`` and ``metrics.json``."""
    return out / "runs" / _safe(prot.name) / f"seed{seed}"


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def grid_image(images: torch.Tensor, cols: int, pad: int = 2) -> np.ndarray:
    """``N×3×H×W`` in [0, 1] -> one ``H'×W'×3`` uint8 grid, ``cols`` per row, white gaps."""
    n, _, h, w = images.shape
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    arr = _to_u8(images).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = arr[i]
    return out



def _summaries(per: dict[str, list[tuple[tuple[int, int], ImageStats]]], rows: list[dict], ref: ImageStats,
               bootstrap: int) -> list[dict]:
    """The summary rows (``summary.csv``) per protection family: each distance with its bootstrap CI, the ratios
    to the clean model and to the same-PSNR noise arm with theirs, and the C2ST accuracy over the sample rows."""
    summary: list[dict] = []
    # bootstrap summaries and the headline ratios: units = (protection draw, training seed); CIs over units
    # and samples. Ratios pair each unit with the clean model of the same seed, and with the same-PSNR noise
    # arm's unit of the same draw and seed.
    for family, units in per.items():
        stats = [st for _, st in units]
        point = set_distances(ImageStats.cat(stats), ref)
        draws = bootstrap_distance(stats, ref, bootstrap, seed=1)
        acc = [r["value"] for r in rows if r["protection"].split("#", 1)[0] == family
               and r["stage"] == "samples" and r["metric"] == "c2st"]
        row0 = {"protection": family, "units": len(units)}
        pairs = {"": (NONE, lambda u: (0, u[1])), "noise_": (f"same-psnr:{family}", lambda u: u)}
        for j, m in enumerate(("style", "colour", "texture")):
            lo, hi = np.percentile(draws[:, j], [2.5, 97.5])
            summary.append({**row0, "metric": m, "value": point[m], "lo": lo, "hi": hi})
        for prefix, (other, key) in pairs.items():
            theirs = dict(per.get(other, []))
            if not theirs or not all(key(u) in theirs for u, _ in units):
                continue
            mine_keys = [u for u, _ in units]
            paired = [theirs[key(u)] for u in mine_keys]
            ratios = bootstrap_distance(stats, ref, bootstrap, seed=2, paired_with=paired)
            their_point = set_distances(ImageStats.cat(paired), ref)
            for j, m in enumerate(("style", "colour", "texture")):
                rr = ratios[:, j][np.isfinite(ratios[:, j])]
                row = next(r for r in summary if r["protection"] == family and r["metric"] == m)
                row[f"{prefix}ratio"] = point[m] / their_point[m] if their_point[m] > 0 else float("nan")
                row[f"{prefix}ratio_lo"], row[f"{prefix}ratio_hi"] = (
                    np.percentile(rr, [2.5, 97.5]) if len(rr) else (np.nan,) * 2)
        summary.append({**row0, "metric": "c2st", "value": float(np.mean(acc)), "lo": float(np.min(acc)),
                        "hi": float(np.max(acc))})
    return summary


def _figures(out: Path, cfg: MimicConfig, versions: list, samples: dict[str, torch.Tensor],
             data_view: dict[str, torch.Tensor], real: torch.Tensor, log: Log) -> dict[str, Path]:
    """The sample grids (one per protection, and the overview) and the training curves."""
    files: dict[str, Path] = {}
    opts = MetadataOptions(enabled=False)
    cols = min(8, cfg.samples)
    for name, imgs in samples.items():
        files[f"samples_{name}"] = save_image(out / f"samples_{_safe(name)}.png",
                                              grid_image(imgs[:16], cols), metadata=opts)
    # one overview: real crops, the clean data through TAEF2, then each version's samples (first seed)
    rows = [real[:cols], data_view[NONE][:cols]] + [samples[n][:cols] for n in samples]
    labels = ["real crops", "real via TAEF2"] + [f"samples: {n}" for n in samples]
    rows = [r for r in rows if len(r) == cols]
    files["samples_grid"] = save_image(out / "samples_grid.png", grid_image(torch.cat(rows), cols),
                                       metadata=opts)
    (out / "samples_grid.txt").write_text("rows, top to bottom:\n" + "\n".join(labels[:len(rows)]) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for i, prot in enumerate(versions):
            for s in cfg.seeds:
                p = _run_dir(out, prot, s) / "losses.csv"
                if not p.is_file():
                    continue
                loss = np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2)[:, 1]
                k = max(1, len(loss) // 25)  # moving average: the per-step loss is very noisy
                smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
                ax.plot(np.arange(len(smooth)) + k, smooth, color=f"C{i}", alpha=0.9 if s == cfg.seeds[0]
                        else 0.5, label=prot.name if s == cfg.seeds[0] else None)
        ax.set_xlabel("step")
        ax.set_ylabel("flow-matching loss (moving average)")
        ax.set_title("training curves (one line per protection and seed)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "training_curves.png", dpi=110)
        plt.close(fig)
        files["training_curves"] = out / "training_curves.png"
    except ImportError:
        log("matplotlib missing: no training_curves.png")
    return files


def _markdown(out: Path, c: MimicConfig, n_images: int, rows: list[dict], summary: list[dict]) -> Path:
    """``results.md``: the summary with its intervals and ratios, the C2ST, the floors and proxies."""
    lines = ["# Mimicry by training: a small flow-matching model trained on each version", "",
             f"{n_images} images, crop {c.crop} px, {c.steps} steps × batch {c.batch}, U-Net width "
             f"{c.width} mults {list(c.mults)}, seeds {c.seeds}, {c.draws} draw(s) of every seeded protection "
             f"(protect seeds from {c.protect_seed}), {c.samples} samples per seed ({c.sample_steps} Euler steps), "
             f"{c.n_ref} real reference crops, {c.bootstrap} bootstrap draws.",
             "", "Distances to real crops of the clean paintings (lower = closer to the artist's style); "
             "95% bootstrap intervals over units (protection draw × training seed) and samples. *vs clean* = "
             "distance / distance of the clean-trained model of the same seed (> 1: the protection degraded "
             "what the model learned); *vs same-PSNR noise* = distance / distance of the model trained on "
             "noise with the protection's own MSE, same draw and seed (> 1: more than any change of that size).",
             "", "| arm | metric | units | value [95% CI] | vs clean [95% CI] | vs same-PSNR noise [95% CI] |",
             "|---|---|---|---|---|---|"]

    def ratio(r: dict, prefix: str) -> str:
        key = f"{prefix}ratio"
        return f"{r[key]:.2f} [{r[key + '_lo']:.2f}, {r[key + '_hi']:.2f}]" if key in r else ""

    for r in summary:
        if r["metric"] == "c2st":
            continue
        lines.append(f"| {r['protection']} | {r['metric']} | {r['units']} | {_g(r['value'])} [{_g(r['lo'])}, "
                     f"{_g(r['hi'])}] | {ratio(r, '')} | {ratio(r, 'noise_')} |")
    lines += ["", "Classifier two-sample test (accuracy telling samples from real crops; 0.5 = cannot; "
              "mean [min, max] over units):", "", "| arm | accuracy |", "|---|---|"]
    for r in summary:
        if r["metric"] == "c2st":
            lines.append(f"| {r['protection']} | {r['value']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] |")
    lines += ["", "Floors and proxies (no training): `real` = other real crops (the metrics' noise floor); "
              "`data` = the version's training data through TAEF2 (decoded latent crops: the mimic's-view "
              "proxy).", "", "| set | stage | " + " | ".join(METRICS) + " |",
              "|---|---|" + "---|" * len(METRICS)]
    for (p, st) in dict.fromkeys((r["protection"], r["stage"]) for r in rows if r["stage"] != "samples"):
        vals = {r["metric"]: r["value"] for r in rows if r["protection"] == p and r["stage"] == st}
        lines.append(f"| {p} | {st} | " + " | ".join(_g(vals[m]) for m in METRICS) + " |")
    lines += ["", "Metrics: " + "; ".join(f"`{k}`: {v}" for k, v in METRIC_INFO.items()) + "."]
    path = out / "results.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _g(v: float) -> str:
    return "nan" if v is None or not np.isfinite(v) else f"{v:.4g}"


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, (float, np.floating)) else v) for k, v in r.items()})
    return path
