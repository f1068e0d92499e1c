"""The report of a ``bench mimic`` run, in ``OUT``: the summary rows with their bootstrap intervals and ratios
(``summary.csv``), the CSV writer, the sample grids and training curves, and ``results.md``.

The summary and ``results.md`` come from the committed rows alone (``config.json``, ``units.jsonl``,
``results.csv``: :func:`report_from_rows`, ``glazeish bench mimic --report --out OUT``), so that anyone can
recompute them, byte for byte, from a checkout; the run writes those rows and then calls the same function."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from ...imageio import save_image
from ...metadata import MetadataOptions
from .config import METRIC_INFO, METRICS, NONE, Log, MimicConfig, _safe
from .units import UnitSet, read_units, resample_counts

__all__ = ["RESULTS_FIELDS", "SUMMARY_FIELDS", "UNITS", "grid_image", "report_from_rows", "summarise"]

UNITS = "units.jsonl"
RESULTS_FIELDS = ["protection", "stage", "seed", "metric", "value", "n"]
SUMMARY_FIELDS = ["protection", "metric", "units", "value", "lo", "hi", "ratio", "ratio_lo", "ratio_hi", "noise_ratio",
                  "noise_ratio_lo", "noise_ratio_hi"]
#: the block of a RESULTS.md beside the rows that holds a copy of results.md (rewritten by the report)
_BLOCK = re.compile(r"(<!-- generated: results\.md -->\n).*?(<!-- end generated -->)", re.DOTALL)


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



def _interval(draws: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile interval of the finite bootstrap draws (NaN, NaN when there are none)."""
    finite = draws[np.isfinite(draws)]
    return tuple(np.percentile(finite, [2.5, 97.5])) if len(finite) else (float("nan"),) * 2


def _ratio_columns(mine: UnitSet, theirs: UnitSet, ref: dict, resamples: int) -> list[dict]:
    """Per metric (style, colour, texture): distance(mine) / distance(theirs) and its bootstrap interval, unit
    ``i`` of ``theirs`` paired with unit ``i`` of ``mine`` (drawn together in every resample)."""
    times = resample_counts(len(mine), resamples, seed=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = mine.distances(times, ref) / theirs.distances(times, ref)
    point = mine.distances(np.ones((1, len(mine)), np.int64), ref)[0]
    their_point = theirs.distances(np.ones((1, len(theirs)), np.int64), ref)[0]
    out = []
    for j in range(3):
        lo, hi = _interval(ratios[:, j])  # a draw whose denominator is 0 has no ratio: left out
        out.append({"ratio": point[j] / their_point[j] if their_point[j] > 0 else float("nan"),
                    "ratio_lo": lo, "ratio_hi": hi})
    return out


def summarise(ref: dict, units: list[dict], resamples: int) -> list[dict]:
    """The summary rows (``summary.csv``) from the rows of ``units.jsonl`` alone, per arm in order of first
    appearance: each distance with its 95 % bootstrap interval over units (draw × training seed, drawn with
    replacement), the ratios to the clean model of the same seed and to the same-PSNR noise arm's unit of the
    same draw and seed with theirs (the same draws for numerator and denominator), and the C2ST accuracy
    (mean [min, max] over units)."""
    arms: dict[str, list[dict]] = {}
    for u in units:
        arms.setdefault(u["arm"], []).append(u)
    by_key = {arm: {(u["draw"], u["seed"]): u for u in rows} for arm, rows in arms.items()}
    summary: list[dict] = []
    for arm, rows in arms.items():
        mine = UnitSet.of(rows)
        point = mine.distances(np.ones((1, len(mine)), np.int64), ref)[0]
        draws = mine.distances(resample_counts(len(mine), resamples, seed=1), ref)
        metric_rows = [{"protection": arm, "units": len(rows), "metric": m, "value": point[j],
                        **dict(zip(("lo", "hi"), _interval(draws[:, j])))}
                       for j, m in enumerate(("style", "colour", "texture"))]
        # the clean model of the same seed (the clean arm has one draw), the noise of the same draw and seed
        for prefix, other, key in (("", NONE, lambda u: (0, u["seed"])),
                                   ("noise_", f"same-psnr:{arm}", lambda u: (u["draw"], u["seed"]))):
            theirs = by_key.get(other, {})
            if not theirs or not all(key(u) in theirs for u in rows):
                continue
            cols = _ratio_columns(mine, UnitSet.of([theirs[key(u)] for u in rows]), ref, resamples)
            for row, col in zip(metric_rows, cols):
                row.update({prefix + k: v for k, v in col.items()})
        acc = [u["c2st"] for u in rows]
        summary += metric_rows + [{"protection": arm, "units": len(rows), "metric": "c2st",
                                   "value": math.fsum(acc) / len(acc), "lo": min(acc), "hi": max(acc)}]
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
             "95% bootstrap intervals over units (protection draw × training seed, each unit drawn with all its "
             "samples; computed from `units.jsonl`). *vs clean* = "
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


def _config_from_json(path: Path) -> MimicConfig:
    """The run's settings as its ``config.json`` has them (what ``results.md``'s first paragraph says)."""
    data = json.loads(path.read_text())
    return MimicConfig(**{f.name: data[f.name] for f in dataclasses.fields(MimicConfig) if f.name in data})


def _read_results(path: Path) -> list[dict]:
    """The rows of ``results.csv`` with their values as floats."""
    with open(path, newline="") as fh:
        return [{**r, "value": float(r["value"])} for r in csv.DictReader(fh)]


def _refresh_results(path: Path, markdown: str) -> bool:
    """Rewrite the ``<!-- generated: results.md -->`` block of ``path`` (a RESULTS.md) with ``markdown``, its
    headings three levels down (it sits under the RESULTS.md's own); False when there is no such block."""
    text = path.read_text()
    body = re.sub(r"^#", "####", markdown.strip("\n"), flags=re.MULTILINE)
    new, found = _BLOCK.subn(lambda m: f"{m[1]}\n{body}\n\n{m[2]}", text)
    if found and new != text:
        path.write_text(new)
    return bool(found)


def report_from_rows(out: str | Path) -> dict[str, Path]:
    """Write ``summary.csv`` and ``results.md`` of ``out`` from its rows alone (``config.json``, ``units.jsonl``,
    ``results.csv``; no samples, no models), and the generated block of a ``RESULTS.md`` beside them.
    Deterministic: the same rows give the same bytes."""
    out = Path(out)
    cfg = _config_from_json(out / "config.json")
    ref, units = read_units(out / UNITS)
    summary = summarise(ref, units, cfg.bootstrap)
    files = {"summary": _write_csv(out / "summary.csv", summary, SUMMARY_FIELDS)}
    n_images = len(json.loads((out / "config.json").read_text()).get("images_used", []))
    files["markdown"] = _markdown(out, cfg, n_images, _read_results(out / "results.csv"), summary)
    if (out / "RESULTS.md").is_file() and _refresh_results(out / "RESULTS.md", files["markdown"].read_text()):
        files["RESULTS"] = out / "RESULTS.md"
    return files
