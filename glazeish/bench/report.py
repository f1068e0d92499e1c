"""Tables, plain-words summary and plots from a bench CSV (``glazeish bench report DIR``).

Everything here is rebuilt from ``results.csv`` alone (plus the protected-image cache for the image grid):
means over images with 95% confidence intervals (Student t), and the retained effect after a purification
as a ratio of mean effects with a bootstrap 95% interval over images.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..evaluation import verdicts
from .results import CSV_NAME, ENV_NAME, NONE, metric_info, read_rows, to_float

REPORT_NAME = "results.md"
HEADLINE_METRICS = ["view_psnr", "copy_psnr", "latent:taef2", "style", "latent:taesana", "decoy_corr", "psnr", "flip"]
SUMMARY_METRICS = ["psnr", "ssim", "flip", "linf", "latent:taef2", "latent:taesana", "view_psnr", "copy_psnr",
                   "style", "copy_style", "decoy_corr"]
RETAINED_METRICS = ["view_psnr", "latent:taef2", "style", "latent:taesana"]
# two-sided 95% Student t quantiles, df 1..30 (beyond: 1.96 + 2.4/df is within 0.003 of the exact value)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def t975(df: int) -> float:
    """Two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return float("nan")
    return _T975[df - 1] if df <= 30 else 1.96 + 2.4 / df


@dataclass(frozen=True)
class Stat:
    """Mean over images, 95% CI half-width and count (inf/nan handled: inf stays inf, nan is dropped)."""

    mean: float
    ci: float
    n: int

    @classmethod
    def of(cls, values) -> "Stat":
        a = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
        if a.size == 0:
            return cls(float("nan"), float("nan"), 0)
        if not np.all(np.isfinite(a)):
            return cls(float(np.mean(a)) if np.all(a == a[0]) else float("inf") * np.sign(np.mean(a)), 0.0, a.size)
        ci = t975(a.size - 1) * float(np.std(a, ddof=1)) / math.sqrt(a.size) if a.size > 1 else float("nan")
        return cls(float(np.mean(a)), ci, int(a.size))


def ratio_of_means(num: np.ndarray, den: np.ndarray, seed: int = 0, resamples: int = 2000) -> Stat:
    """``mean(num)/mean(den)`` with a percentile-bootstrap 95% half-width (resampling images)."""
    ok = np.isfinite(num) & np.isfinite(den)
    num, den = num[ok], den[ok]
    if num.size == 0 or np.mean(den) == 0:
        return Stat(float("nan"), float("nan"), 0)
    r = float(np.mean(num) / np.mean(den))
    if num.size < 2:
        return Stat(r, float("nan"), int(num.size))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num.size, size=(resamples, num.size))
    d = den[idx].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = num[idx].mean(1) / d
    boot = boot[np.isfinite(boot)]
    lo, hi = np.percentile(boot, [2.5, 97.5]) if boot.size else (np.nan, np.nan)
    return Stat(r, float(max(r - lo, hi - r)), int(num.size))


# ---------------------------------------------------------------------------------------------
# aggregation


class Results:
    """The CSV as arrays, with the lookups the tables and plots need."""

    def __init__(self, rows: list[dict[str, str]]):
        self.rows = rows
        self.protections = list(dict.fromkeys(r["protection"] for r in rows))
        self.purifications = list(dict.fromkeys(r["purification"] for r in rows))
        self.metrics = list(dict.fromkeys(r["metric"] for r in rows))
        self.folders = sorted(dict.fromkeys(r["folder"] for r in rows))
        # set-level LoRA rows ("lora:<folder>/<k>") are samples, not images of the set
        self.images = list(dict.fromkeys(r["image"] for r in rows if not r["image"].startswith("lora:")))
        self._index: dict[tuple[str, str, str], dict[str, dict[str, float]]] = {}
        for r in rows:
            cell = {k: to_float(r.get(k)) for k in ("value", "clean", "noise", "uniform", "effect", "eps")}
            cell["folder"] = r["folder"]  # type: ignore[assignment]
            self._index.setdefault((r["protection"], r["purification"], r["metric"]), {})[r["image"]] = cell

    @classmethod
    def load(cls, out: str | Path) -> "Results":
        return cls(read_rows(Path(out) / CSV_NAME))

    def cells(self, prot: str, pur: str, metric: str, folder: str | None = None,
              images: set[str] | None = None) -> dict[str, dict]:
        d = self._index.get((prot, pur, metric), {})
        return {k: v for k, v in d.items()
                if (folder is None or v["folder"] == folder) and (images is None or k in images)}

    def stat(self, prot: str, pur: str, metric: str, column: str = "value", folder: str | None = None,
             images: set[str] | None = None) -> Stat:
        return Stat.of([c[column] for c in self.cells(prot, pur, metric, folder, images).values()])

    def common_images(self, prots: list[str], purs: list[str]) -> set[str]:
        """Images measured for every one of ``prots`` after every one of ``purs`` (a paired comparison)."""
        sets = [set(self.cells(p, q, self.metrics[0])) for p in prots for q in purs]
        return set.intersection(*sets) if sets else set()

    def eps(self, prot: str) -> str:
        vals = sorted({c["eps"] for c in self.cells(prot, NONE, self.metrics[0]).values() if not math.isnan(c["eps"])})
        if not vals:
            return "?"
        return f"{vals[0]:g}" if len(vals) == 1 else f"{vals[0]:g}-{vals[-1]:g}"

    def mean_retained(self, prot: str, pur: str, metric: str, folder: str | None = None,
                 images: set[str] | None = None) -> Stat:
        """Ratio of mean effects after ``pur`` and without purification, over images having both (the
        aggregate of the per-image ``retained`` column)."""
        after = self.cells(prot, pur, metric, folder, images)
        before = self.cells(prot, NONE, metric, folder, images)
        keys = [k for k in after if k in before]
        num = np.array([after[k]["effect"] for k in keys], dtype=np.float64)
        den = np.array([before[k]["effect"] for k in keys], dtype=np.float64)
        return ratio_of_means(num, den)


# ---------------------------------------------------------------------------------------------
# formatting


def fmt_num(v: float, metric: str = "") -> str:
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    a = abs(v)
    if metric.endswith("psnr") or metric in ("linf", "rms"):
        return f"{v:.2f}"
    if a != 0 and (a < 0.01 or a >= 1e4):
        return f"{v:.2e}"
    return f"{v:.3f}"


def fmt_stat(s: Stat, metric: str = "") -> str:
    if s.n == 0:
        return "–"
    if math.isnan(s.ci) or s.ci == 0 or math.isinf(s.mean):
        return fmt_num(s.mean, metric)
    return f"{fmt_num(s.mean, metric)} ± {fmt_num(s.ci, metric)}"


def fmt_ratio(s: Stat) -> str:
    if s.n == 0 or math.isnan(s.mean):
        return "–"
    if math.isnan(s.ci):
        return f"{s.mean:.0%}"
    return f"{s.mean:.0%} ± {s.ci:.0%}"


def pur_label(name: str, attacked: list[str]) -> str:
    """Purification name for tables; an autoencoder purification through an attacked model is flagged."""
    model = name.split(":", 1)[1] if ":" in name else None
    if name.startswith("ae") and (model is None or model in attacked):
        return f"{name} (attacked AE†)"
    if name.startswith("impress") and (model is None or model in attacked):
        return f"{name}‡"
    return name


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _env(out: Path) -> dict:
    try:
        return json.loads((out / ENV_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


# ---------------------------------------------------------------------------------------------
# markdown


def headline(res: Results, prot: str = "glazeish-default", folder: str | None = None,
             purifications: tuple[str, ...] = ("jpeg75", "resize0.75")) -> str:
    """The quality-bar table: ``prot`` next to its own same-PSNR and same-L∞ noise on the key metrics, with
    the share of its advantage retained after the purifications shown."""
    purs = [p for p in purifications if p in res.purifications]
    imgs = res.common_images([prot], [NONE] + purs)
    header = ["metric", "clean image", "same-PSNR noise", "same-L∞ noise", f"{prot} (eps {res.eps(prot)})",
              f"{prot} − same-PSNR noise"] + [f"retained after {p}" for p in purs]
    rows = []
    for m in HEADLINE_METRICS:
        if m not in res.metrics:
            continue
        info = metric_info(m)
        label = info.label + (f" ({info.unit})" if info.unit else "")
        if m == "latent:taesana" or (m.startswith("latent:") and m not in ("latent:taef2",)):
            label += " — transfer, not attacked"
        rows.append([
            label,
            fmt_stat(res.stat(prot, NONE, m, "clean", folder, imgs), m),
            fmt_stat(res.stat(prot, NONE, m, "noise", folder, imgs), m),
            fmt_stat(res.stat(prot, NONE, m, "uniform", folder, imgs), m),
            fmt_stat(res.stat(prot, NONE, m, "value", folder, imgs), m),
            fmt_stat(res.stat(prot, NONE, m, "effect", folder, imgs), m),
        ] + ([fmt_ratio(res.mean_retained(prot, p, m, folder, imgs)) for p in purs] if info.group != "visibility" else
             ["" for _ in purs]))
    n = len([i for i in imgs if folder is None or res.cells(prot, NONE, res.metrics[0], folder, {i})])
    return f"n = {n} images\n\n" + table(header, rows)


def summary_table(res: Results, pur: str = NONE, folder: str | None = None, images: set[str] | None = None) -> str:
    """Every protection × the main metrics (mean ± 95% CI) after ``pur`` (optionally on ``images`` only)."""
    ms = [m for m in SUMMARY_METRICS if m in res.metrics]
    header = ["protection", "eps", "n"] + [metric_info(m).label.replace("latent displacement", "latent") for m in ms]
    rows = [[p, res.eps(p), str(res.stat(p, pur, ms[0], "value", folder, images).n)]
            + [fmt_stat(res.stat(p, pur, m, "value", folder, images), m) for m in ms] for p in res.protections]
    return table(header, rows)


def detail_table(res: Results, metric: str, pur: str = NONE) -> str:
    """One metric: each protection next to its same-budget noise, the clean image and the effect."""
    header = ["protection", "eps", "n", "protected", "same-PSNR noise", "same-L∞ noise", "clean",
              "effect (protected − same-PSNR noise)"]
    rows = [[p, res.eps(p), str(res.stat(p, pur, metric).n)] + [fmt_stat(res.stat(p, pur, metric, col), metric)
                               for col in ("value", "noise", "uniform", "clean", "effect")] for p in res.protections]
    return table(header, rows)


def retained_table(res: Results, metric: str, attacked: list[str]) -> str:
    purs = [p for p in res.purifications if p != NONE]
    header = ["protection"] + [pur_label(p, attacked) for p in purs]
    # "random" is the noise floor: its effect is ≈ 0, so a ratio of it says nothing
    rows = [[p] + [fmt_ratio(res.mean_retained(p, q, metric)) for q in purs]
            for p in res.protections if p not in (NONE, "random")]
    return table(header, rows)


def pipeline_table(res: Results, ms: list[str]) -> str:
    """img2img / LoRA metrics without purification: protected, noise and effect per protection."""
    header = ["metric", "protection", "protected", "same-PSNR noise", "effect"]
    rows = []
    for m in ms:
        for p in res.protections:
            s = res.stat(p, NONE, m)
            if s.n == 0 or p == NONE:
                continue
            rows.append([m, p, fmt_stat(s, m), fmt_stat(res.stat(p, NONE, m, "noise"), m),
                         fmt_stat(res.stat(p, NONE, m, "effect"), m)])
    return table(header, rows)


def purification_cost_table(res: Results, attacked: list[str]) -> str:
    """What each purification does to the clean image by itself (the price a mimic pays)."""
    header = ["purification", "images", "PSNR of purified clean image", "clean mimic view moved (dB)"]
    prot = res.protections[0]
    rows = []
    for q in res.purifications:
        s = res.stat(prot, q, "psnr", "clean")
        rows.append([pur_label(q, attacked), str(s.n), fmt_stat(s, "psnr"),
                     fmt_stat(res.stat(prot, q, "view_psnr", "clean"), "view_psnr")])
    return table(header, rows)


def plain_words(res: Results, prot: str = "glazeish-default") -> str:
    """A few sentences for artists, generated from the numbers with the words of
    :mod:`glazeish.evaluation.verdicts` (the same thresholds as ``glazeish check``)."""
    if prot not in res.protections or "view_psnr" not in res.metrics:
        return ""
    lines = []
    vis = res.stat(prot, NONE, "psnr")
    mv, mn = res.stat(prot, NONE, "view_psnr"), res.stat(prot, NONE, "view_psnr", "noise")
    lines.append(f"* **How visible:** {prot} changes pixels by at most {res.eps(prot)}/255; on average the cloaked "
                 f"image is {vis.mean:.1f} dB PSNR from the original — {verdicts.visibility(vis.mean).words}.")
    level = verdicts.protection(mv.mean, mn.mean - mv.mean)
    said = level.words if level else "reproduces nothing that noise of the same PSNR would not"
    lines.append(f"* **Does it work:** what an AI model reproduces from the cloaked image (its mimic view) is "
                 f"{mv.mean:.1f} dB from what it reproduces from the original, against {mn.mean:.1f} dB for noise of "
                 f"the same PSNR — on average a model trained on it {said}.")
    for q in [p for p in res.purifications if p != NONE]:
        r = res.mean_retained(prot, q, "view_psnr")
        if r.n == 0 or math.isnan(r.mean):
            continue
        lines.append(f"* **After {q}:** about {r.mean:.0%} of the advantage on the mimic view is left — "
                     f"{verdicts.survival(r.mean).words}.")
    if "latent:taesana" in res.metrics:
        a, n = res.stat(prot, NONE, "latent:taesana"), res.stat(prot, NONE, "latent:taesana", "noise")
        ratio = a.mean / n.mean if n.mean else float("nan")
        lines.append(f"* **Other models:** on an encoder the cloak did not target (taesana) the latent moves "
                     f"{ratio:.1f}× as far as with same-PSNR noise.")
    return "\n".join(lines)


def render(res: Results, out: Path, headline_protection: str = "glazeish-default") -> str:
    env = _env(out)
    latest = env.get("latest", {})
    attacked = latest.get("attacked") or ["taef2"]
    prot = headline_protection if headline_protection in res.protections else next(
        (p for p in res.protections if p not in (NONE, "random")), res.protections[-1])
    counts = ", ".join(f"{f}: {sum(1 for i in res.images if i.startswith(f + '/'))}" for f in res.folders)
    parts = ["# Protection benchmark results\n",
             f"{len(res.images)} images ({counts}), "
             f"protections {', '.join(res.protections)}; purifications {', '.join(res.purifications)}. "
             "Means over images ± 95% confidence interval (Student t); retained effect = mean effect after the "
             "purification ÷ mean effect before (bootstrap 95% interval). *Effect* = the protection's figure minus "
             "the figure of Gaussian noise with the protection's own MSE (same PSNR), both measured after the same "
             "purification against the equally purified original.\n"]
    if any(p.startswith("ae") for p in res.purifications):
        parts.append("† `ae` is a round trip through the autoencoder the cloaks attacked (taef2: the only one with "
                     "a decoder here): close to a best case for the cloak, whose damaged mimic view the round trip "
                     "reproduces; an un-attacked autoencoder (`ae:<encoder>`) is the real test.\n")
    if any(p.startswith("impress") for p in res.purifications):
        parts.append("‡ `impress` optimises consistency through the attacked autoencoder — IMPRESS's own threat "
                     "model (the mimic purifies with the autoencoder of the model it will fine-tune).\n")
    parts.append(f"## Headline: {prot} vs noise of the same PSNR (and of the same L∞)\n")
    parts.append(headline(res, prot))
    for folder in res.folders:
        parts.append(f"\n**{folder} only**\n")
        parts.append(headline(res, prot, folder=folder))
    words = plain_words(res, prot)
    if words:
        parts.append("\n## In plain words\n")
        parts.append(words)
    parts.append("\n## All protections, no purification\n")
    parts.append(summary_table(res))
    common = res.common_images(res.protections, [NONE])
    if 0 < len(common) < len(res.images):
        parts.append(f"\n**Paired: the {len(common)} images that every protection was run on**\n")
        parts.append(summary_table(res, images=common))
    for folder in res.folders:
        parts.append(f"\n**{folder} only**\n")
        parts.append(summary_table(res, folder=folder))
    parts.append("\n## Retained effect after each purification\n")
    for m in RETAINED_METRICS:
        if m in res.metrics:
            parts.append(f"\n**{metric_info(m).label}**\n")
            parts.append(retained_table(res, m, attacked))
    pipe_metrics = [m for m in res.metrics if m.startswith(("img2img@", "lora:"))]
    if pipe_metrics:
        parts.append("\n## Full pipelines (generated images; effect = protected − same-budget noise)\n")
        parts.append(pipeline_table(res, pipe_metrics))
    parts.append("\n## What each purification costs the clean image\n")
    parts.append(purification_cost_table(res, attacked))
    parts.append("\n## Every metric next to clean and same-budget noise (no purification)\n")
    for m in res.metrics:
        info = metric_info(m)
        parts.append(f"\n**{m}** — {info.label}{' (' + info.unit + ')' if info.unit else ''}; "
                     f"{'higher' if info.damage_up else 'lower'} = more {'visible' if info.group == 'visibility' else 'damage'}\n")
        parts.append(detail_table(res, m))
    if latest:
        parts.append("\n## Run\n")
        parts.append(f"`{' '.join(latest.get('argv', []))}` — {latest.get('cpu', '?')}, {latest.get('cpu_count', '?')} "
                     f"CPUs, device {latest.get('device', '?')}, torch {latest.get('versions', {}).get('torch', '?')}; "
                     f"seed {latest.get('config', {}).get('seed', '?')}. See environment.json.")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(res: Results, path: Path) -> Path | None:
    """Visibility (PSNR vs original) against damage, one point per protection, noise baselines in grey."""
    ys = [m for m in ("view_psnr", "latent:taef2", "style") if m in res.metrics]
    if "psnr" not in res.metrics or not ys:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(ys), figsize=(4.6 * len(ys), 4.0), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, m in zip(axes[0], ys):
        info = metric_info(m)
        for i, p in enumerate(res.protections):
            if p == NONE:
                continue
            x, y = res.stat(p, NONE, "psnr"), res.stat(p, NONE, m)
            if x.n == 0 or not math.isfinite(x.mean) or not math.isfinite(y.mean):
                continue
            ax.errorbar(x.mean, y.mean, xerr=x.ci if math.isfinite(x.ci) else None,
                        yerr=y.ci if math.isfinite(y.ci) else None, fmt="o", color=cmap(i % 10), label=p, capsize=3)
            xn, yn = res.stat(p, NONE, "psnr", "noise"), res.stat(p, NONE, m, "noise")
            if p != "random" and math.isfinite(xn.mean) and math.isfinite(yn.mean):
                ax.plot(xn.mean, yn.mean, "x", color=cmap(i % 10), ms=8, alpha=0.6)  # its same-PSNR noise
        ax.set_xlabel("PSNR vs original (dB) — higher is less visible")
        ax.set_ylabel(f"{info.label}" + (f" ({info.unit})" if info.unit else ""))
        if not info.damage_up:
            ax.invert_yaxis()  # up = more damage in every panel
        ax.set_title(f"{m}: up = more damage", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle("Visibility–damage frontier (means ± 95% CI; x: each protection's same-PSNR noise)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_retained(res: Results, path: Path, attacked: list[str]) -> Path | None:
    """Retained effect (ratio of mean effects) per purification, one bar per protection."""
    purs = [p for p in res.purifications if p != NONE]
    prots = [p for p in res.protections if p not in (NONE, "random")]
    ms = [m for m in ("view_psnr", "latent:taef2") if m in res.metrics]
    if not purs or not prots or not ms:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(ms), 1, figsize=(max(8, 0.5 * len(purs) * len(prots) + 3), 3.3 * len(ms)),
                             squeeze=False)
    cmap = plt.get_cmap("tab10")
    width = 0.8 / len(prots)
    for ax, m in zip(axes[:, 0], ms):
        for j, p in enumerate(prots):
            stats = [res.mean_retained(p, q, m) for q in purs]
            xs = np.arange(len(purs)) + (j - (len(prots) - 1) / 2) * width
            vals = [s.mean if s.n else np.nan for s in stats]
            errs = [s.ci if s.n and math.isfinite(s.ci) else 0 for s in stats]
            ax.bar(xs, vals, width, yerr=errs, capsize=2, label=p, color=cmap((res.protections.index(p)) % 10))
        ax.axhline(1, color="0.3", lw=0.8, ls="--")
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(np.arange(len(purs)))
        ax.set_xticklabels([pur_label(q, attacked) for q in purs], fontsize=8, rotation=15)
        ax.set_ylabel("retained effect")
        ax.set_title(f"{metric_info(m).label}: retained effect = effect after ÷ before (1 survives, 0 removed)",
                     fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=min(4, len(prots)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_grid(items: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]], original: np.ndarray,
              clean_view: np.ndarray, path: Path, title: str = "", tile: int = 200) -> Path:
    """Rows: the original, then one per protection: protected / mimic view / δ amplified to ±eps.

    ``items``: ``(name, protected H×W×3 uint8, mimic view H×W×3 uint8, original H×W×3 uint8, eps)``.
    """
    from ..report import amplified_delta

    plt = _plt()
    rows = 1 + len(items)
    h, w = original.shape[:2]
    fig, axes = plt.subplots(rows, 3, figsize=(3 * 2.4, rows * 2.4 * h / w + 0.3), squeeze=False)
    # show pixels 1:1-ish: crop a centre square of `tile` px at full resolution so that δ is visible
    cy, cx = h // 2, w // 2
    half = min(tile, h, w) // 2

    def crop(a):
        return a[cy - half: cy + half, cx - half: cx + half]

    panels = [[("original", original), ("clean mimic view D(E(x))", clean_view), ("", None)]]
    for name, prot, view, orig, eps in items:
        amp = amplified_delta(orig, prot, eps)
        panels.append([(f"{name}", prot), ("its mimic view", view), (f"δ ×{127.5 / max(eps, 1.0):.0f}", amp)])
    for r, row in enumerate(panels):
        for c, (label, img) in enumerate(row):
            ax = axes[r][c]
            ax.axis("off")
            if img is None:
                continue
            ax.imshow(crop(img), interpolation="nearest")
            ax.set_title(label, fontsize=7)
    fig.suptitle(title + f" (centre {2 * half}×{2 * half} px crop at full resolution)", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / fig.get_figheight()))  # keep the suptitle clear of row 1
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return shrink_png(path)


def shrink_png(path: Path, limit: int = 900_000) -> Path:
    """Re-save a PNG over ``limit`` bytes with a 256-colour palette (noise panels compress badly otherwise)."""
    if Path(path).stat().st_size <= limit:
        return Path(path)
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(256)
    small.save(path, optimize=True)
    return Path(path)


def build(out: str | Path, headline_protection: str = "glazeish-default") -> dict[str, Path]:
    """Rewrite ``results.md`` and the plots in ``out`` from its CSV; returns the written paths."""
    out = Path(out)
    res = Results.load(out)
    if not res.rows:
        raise ValueError(f"{out / CSV_NAME}: no results to report")
    attacked = (_env(out).get("latest", {}) or {}).get("attacked") or ["taef2"]
    written = {}
    md = render(res, out, headline_protection)
    (out / REPORT_NAME).write_text(md)
    written["markdown"] = out / REPORT_NAME
    for name, fn in (("frontier", lambda p: plot_frontier(res, p)), ("retained", lambda p: plot_retained(res, p, attacked))):
        p = fn(out / f"{name}.png")
        if p:
            written[name] = p
    return written
