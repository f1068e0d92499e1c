"""Where the time of the figures after a cloak goes, which passes are saved without changing a bit, and what the
quick figures (``assess(..., figures="quick")``) save and say (issue 31, item 2).

Two parts, each with its own rows:

* ``--part breakdown`` (``breakdown.jsonl``): one painting and one drawing at 512² (``--breakdown-images``), each
  cloaked with the default preset; :func:`glazeish.evaluation.assess` (JPEG q75 survival, as ``protect`` reports
  it) timed part by part (the noise baselines, the JPEG re-saves, each image's encoder and decoder pass by what
  the image is, the ꟻLIP of the pixels and of the views, SSIM, the rest of the sums) in five settings: the full
  figures; the mimic's views of the original and the cloak after them (what the HTML report and the web page
  show), from a fresh evaluator and from the one that made the figures (its view memo); a second cloak of the
  same original (the ``fast`` preset's) measured with the cache of the first (the benchmark's protections); and
  the quick figures.
* ``--part quick`` (``quick.jsonl``): every shared image (the longer side at most 512 px, Lanczos), cloaked with
  the default preset; the full and the quick figures of the same pair, in alternating order, timed; their verdict
  words (visibility, protection, survival of JPEG q75) and headline figures compared. Beside them a reading that
  is not in glazeish, "lean": the quick figures with the same-PSNR noise's views measured on the central quarter
  of the image (against the original's centre, before and after the JPEG re-save), to see whether a smaller
  noise baseline would keep the words (5 passes' worth instead of 6).

    OMP_NUM_THREADS=2 python benchmarks/figures_cost/cost.py --part breakdown --threads 2
    OMP_NUM_THREADS=1 python benchmarks/figures_cost/cost.py --part quick
    python benchmarks/figures_cost/cost.py --part quick --images paintings:0:1 --out /tmp/fc   # a smoke run
    python benchmarks/figures_cost/cost.py --report   # RESULTS.md's tables from the committed rows (no model)

The cloaks are cached under ``benchmarks/_scratch/figures_cost`` (``--scratch``). Rows are appended as they are
measured; RESULTS.md is written from all of them at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import MODELS, SCRATCH, pick_images, read_rows, regenerate  # noqa: E402

MAX_SIDE = 512
ROLES = ("original", "cloak", "noise", "uniform")
SETTINGS = {
    "full": "full figures",
    "views_fresh": "views of original + cloak, fresh evaluator",
    "views_memo": "the same views, from the figures' evaluator",
    "cached_second": "a 2nd cloak of the same original, with the 1st's cache",
    "quick": "quick figures",
}
#: the headline figures compared between the readings (dB unless said), by their key in a row
FIGURES = {
    "view_psnr": "cloak's view vs the original's",
    "noise_view_psnr": "same-PSNR noise's view vs the original's",
    "view_gap": "view gap vs same-PSNR noise",
    "view_psnr_detinted": "cloak's view, de-tinted",
    "copy_change": "the model's copy of the artwork, change",
    "jpeg_view_psnr": "after JPEG q75: cloak's view",
    "jpeg_noise_view_psnr": "after JPEG q75: noise's view",
    "jpeg_view_gap": "after JPEG q75: view gap vs noise",
}
TOLERANCE_DB = 0.3  # the bar for a cheaper reading of a figure


# -- images and cloaks ---------------------------------------------------------------------------------


def load(path: Path) -> np.ndarray:
    """``H×W×3`` uint8, the longer side brought to at most :data:`MAX_SIDE` as ``protect --max-side`` does."""
    from glazeish.imageio import read_image, resized
    from glazeish.platforms import posting_size

    art = read_image(path)
    return resized(art, posting_size(*art.size, (), MAX_SIDE)).rgb


def cloak_of(protector, kind: str, path: Path, rgb: np.ndarray, scratch: Path, preset: str) -> tuple[np.ndarray, float]:
    """The cloak of ``rgb`` with ``protector`` (a ``preset`` Protector), cached as a PNG: (pixels, seconds or 0)."""
    from glazeish.imageio import Artwork

    dest = scratch / "cloaks" / preset / f"{kind}_{path.stem}.png"
    if dest.exists():
        return np.asarray(Image.open(dest).convert("RGB")), 0.0
    t0 = time.perf_counter()
    rgb_c = protector.protect(Artwork(rgb=rgb)).rgb
    seconds = time.perf_counter() - t0
    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb_c).save(dest)
    return rgb_c, seconds


# -- timing the parts of one assess ------------------------------------------------------------------


class Parts:
    """Seconds and counts of the parts of :func:`assess`, measured by wrapping what it calls: the encoder and the
    decoder of the evaluator's models (each pass named by the image it passes, from :meth:`roles`), ꟻLIP, SSIM,
    the noise baselines and the purification. Wrapping adds a call's overhead (microseconds) per part."""

    def __init__(self, evaluator, purification):
        from glazeish import metrics

        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.names: dict[bytes, str] = {}
        self.last = "other image"
        assess_module = importlib.import_module("glazeish.evaluation.assess")
        for model in evaluator.models:
            self._wrap(model, "encode", self._pass_name("encoder"))
            self._wrap(model, "decode", lambda *a: f"decoder: {self.last}")
        self._wrap(metrics, "flip", lambda *a: "ꟻLIP of the pixels" if len(a) == 3 else "ꟻLIP of the views")
        self._wrap(metrics, "ssim_map", lambda *a: "SSIM maps")
        self._wrap(assess_module, "baselines", lambda *a: "noise baselines (drawn, PSNR matched)")
        self._wrap(purification, "apply", lambda *a: "JPEG q75 re-saves")

    def _wrap(self, owner, attr: str, name_of) -> None:
        inner = getattr(owner, attr)

        def timed(*args, **kwargs):
            name = name_of(*args)
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0
                self.counts[name] += 1

        setattr(owner, attr, timed)

    def _pass_name(self, which: str):
        """Names an encoder pass by the image it passes (the padded tile cropped back), remembered for the decoder
        pass that follows it."""
        from glazeish.evaluation.measure import fingerprint

        def name(x, *rest) -> str:
            for (h, w), names in self._by_size().items():
                key = fingerprint(x[..., :h, :w]) if x.shape[-2] >= h and x.shape[-1] >= w else None
                if key in names:
                    self.last = names[key]
                    break
            else:
                self.last = "other image"
            return f"{which}: {self.last}"

        return name

    def _by_size(self) -> dict[tuple[int, int], dict[bytes, str]]:
        out: dict[tuple[int, int], dict[bytes, str]] = defaultdict(dict)
        for key, (size, name) in self.names.items():
            out[size][key] = name
        return out

    def roles(self, images: dict[str, torch.Tensor]) -> None:
        """Name the images (``1×3×H×W`` in [0, 1], as :func:`assess` passes them) whose passes are told apart."""
        from glazeish.evaluation.measure import fingerprint

        for name, t in images.items():
            self.names[fingerprint(t)] = (tuple(t.shape[-2:]), name)

    def take(self) -> dict[str, dict[str, float]]:
        """The parts measured since the last call, ``{name: {"n": count, "s": seconds}}``, and reset."""
        out = {k: {"n": self.counts[k], "s": round(v, 3)} for k, v in sorted(self.seconds.items())}
        self.seconds.clear()
        self.counts.clear()
        return out


def role_images(rgb: np.ndarray, cloak: np.ndarray, config, jpeg) -> dict[str, torch.Tensor]:
    """The images one :func:`assess` of ``cloak`` passes, by name: the original, the cloak, its two baselines
    (made as assess makes them, with the job's budget and seed) and their JPEG copies (``jpeg``: a purification)."""
    import torch

    from glazeish.evaluation import baselines
    from glazeish.imageio import to_tensor

    noise, uniform = baselines(rgb, cloak, config.eps_levels, config.seed)
    named = {k: to_tensor(a) for k, a in zip(ROLES, (rgb, cloak, noise, uniform))}
    resaved = jpeg(torch.cat(list(named.values()))).split(1)
    return {**named, **{f"JPEG {k}": t for k, t in zip(ROLES, resaved)}}


def settings_runs(ev, jpeg, rgb: np.ndarray, cloaks: tuple[np.ndarray, np.ndarray], config) -> dict:
    """The timed call of each setting of :data:`SETTINGS` (``views_memo`` must follow ``full``)."""
    from glazeish.evaluation import Evaluator, assess

    kw = {"eps_levels": config.eps_levels, "seed": config.seed, "purifications": [jpeg]}
    first, second = cloaks

    def cached_second() -> None:
        cache: dict = {}
        assess(rgb, first, ev, cache=cache, **kw)  # what the first protection leaves in the cache (not timed)
        return lambda: assess(rgb, second, ev, cache=cache, **kw)

    return {"full": lambda: assess(rgb, first, ev, **kw), "views_fresh": lambda: Evaluator(ev.models).views(rgb, first),
            "views_memo": lambda: ev.views(rgb, first), "cached_second": cached_second,
            "quick": lambda: assess(rgb, first, ev, figures="quick", **kw)}


def breakdown(args) -> None:
    """``--part breakdown``: rows of the parts of each setting, per image and repeat, appended to ``--out``."""
    import torch

    from glazeish.config import ProtectConfig
    from glazeish.evaluation import Evaluator, build_purifications
    from glazeish.protect import Protector

    torch.set_num_threads(args.threads)
    config = ProtectConfig(models_dir=args.models)
    protector = Protector(config)
    second = Protector(ProtectConfig(intensity="fast", models_dir=args.models), ensemble=protector.ensemble)
    ev = Evaluator(protector.ensemble, tile=config.tile, precision="fp32")  # as protect's Cloaker builds it
    (jpeg,) = build_purifications("jpeg75")
    parts = Parts(ev, jpeg)
    warm = np.zeros((64, 64, 3), np.uint8)
    Evaluator(ev.models).views(warm)  # one-off set-up costs (oneDNN kernels) out of the first image's figures
    for kind, path in pick_images(args.breakdown_images):
        rgb = load(path)
        cloaks = tuple(cloak_of(p, kind, path, rgb, args.scratch, name)[0]
                       for p, name in ((protector, "default"), (second, "fast")))
        for c in cloaks:
            parts.roles(role_images(rgb, c, config, build_purifications("jpeg75")[0]))
        for repeat in range(args.repeats):
            runs = settings_runs(ev, jpeg, rgb, cloaks, config)
            order = list(SETTINGS) if repeat % 2 == 0 else ["quick", "cached_second", "full", "views_memo",
                                                             "views_fresh"]
            for setting in order:
                call = runs[setting]() if setting == "cached_second" else runs[setting]
                parts.take()
                t0 = time.perf_counter()
                call()
                row = {"part": "breakdown", "image": f"{kind}/{path.name}", "width": rgb.shape[1],
                       "height": rgb.shape[0], "setting": setting, "repeat": repeat, "threads": args.threads,
                       "seconds": round(time.perf_counter() - t0, 3), "parts": parts.take()}
                append(args.out / "breakdown.jsonl", row)
                print(f"{row['image']} {setting}: {row['seconds']:.1f} s", file=sys.stderr, flush=True)


def append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


# -- quick vs full on every image ---------------------------------------------------------------------------


def headline(f) -> dict:
    """The figures this suite compares, and the verdict words, of one :class:`~glazeish.evaluation.Figures`."""
    from glazeish.evaluation import judge

    s, p, v = f.summary, f.purified["jpeg75"], judge(f)
    return {"psnr": f.before.cloak.psnr, "view_psnr": s.view_psnr, "noise_view_psnr": f.before.noise.view_psnr,
            "view_gap": s.view_gap, "view_psnr_detinted": s.view_psnr_detinted, "view_flip": s.view_flip,
            "copy_change": s.copy_change, "jpeg_view_psnr": p.comparison.cloak.view_psnr,
            "jpeg_noise_view_psnr": p.comparison.noise.view_psnr, "jpeg_view_gap": p.comparison.view_gap(),
            "retained": p.retained, "words": [v.visibility, v.protection, v.survival.get("jpeg75")]}


def centre_quarter(t: torch.Tensor) -> torch.Tensor:
    """The central half of each side of a ``…×H×W`` tensor (a quarter of the pixels), sides multiples of 8."""
    h, w = t.shape[-2:]
    ch, cw = max(8, h // 2 // 8 * 8), max(8, w // 2 // 8 * 8)
    top, left = (h - ch) // 2, (w - cw) // 2
    return t[..., top : top + ch, left : left + cw]


def lean(ev, jpeg, rgb: np.ndarray, cloak: np.ndarray, quick, config):
    """``quick`` (Figures) with the same-PSNR noise's view PSNR, before and after ``jpeg``, measured on the
    central quarter of the image against the original's (and its JPEG copy's) centre, passed on its own; the
    share kept after the re-save recomputed from those."""
    import torch

    from glazeish.evaluation import baselines
    from glazeish.evaluation.figures import retained
    from glazeish.evaluation.verdicts import NO_BETTER_DB
    from glazeish.imageio import to_tensor

    noise, _ = baselines(rgb, cloak, config.eps_levels, config.seed, uniform=False)
    x, xc, xn = (to_tensor(a) for a in (rgb, cloak, noise))
    px, _, pn = jpeg(torch.cat([x, xc, xn])).split(1)
    before = ev.compare(centre_quarter(x), {"noise": centre_quarter(xn)})[0]["noise"].view_psnr
    after = ev.compare(centre_quarter(px), {"noise": centre_quarter(pn)}, artwork=centre_quarter(x))[0]["noise"]
    b = dataclasses.replace(quick.before, noise=dataclasses.replace(quick.before.noise, view_psnr=before))
    p = quick.purified[jpeg.name]
    c = dataclasses.replace(p.comparison, noise=dataclasses.replace(p.comparison.noise, view_psnr=after.view_psnr))
    kept = retained(c.view_gap(), b.view_gap(), NO_BETTER_DB)
    return dataclasses.replace(quick, before=b, purified={jpeg.name: dataclasses.replace(p, comparison=c, retained=kept)})


def quick_vs_full(args) -> None:
    """``--part quick``: per image, the full and quick figures (alternating which goes first) and the lean
    reading, appended to ``--out``/quick.jsonl (images already there are skipped: a run resumes)."""
    import torch

    from glazeish.config import ProtectConfig
    from glazeish.evaluation import Evaluator, assess, build_purifications
    from glazeish.protect import Protector

    torch.set_num_threads(args.threads)
    config = ProtectConfig(models_dir=args.models)
    protector = Protector(config)
    ev = Evaluator(protector.ensemble, tile=config.tile, precision="fp32")
    (jpeg,) = build_purifications("jpeg75")
    parts = Parts(ev, jpeg)
    rows_path = args.out / "quick.jsonl"
    done = {r["image"] for r in read_rows(rows_path)}
    assess(np.zeros((64, 64, 3), np.uint8), np.ones((64, 64, 3), np.uint8), ev)  # one-off set-up costs
    for i, (kind, path) in enumerate(pick_images(args.images)):
        if f"{kind}/{path.name}" in done:
            continue
        rgb = load(path)
        cloak, cloak_seconds = cloak_of(protector, kind, path, rgb, args.scratch, "default")
        row = {"part": "quick", "image": f"{kind}/{path.name}", "width": rgb.shape[1], "height": rgb.shape[0],
               "threads": args.threads, "cloak_seconds": round(cloak_seconds, 2)}
        figs = {}
        for mode in ("full", "quick") if i % 2 == 0 else ("quick", "full"):  # load drift hits both alike
            parts.take()
            t0 = time.perf_counter()
            figs[mode] = assess(rgb, cloak, ev, eps_levels=config.eps_levels, seed=config.seed, purifications=[jpeg],
                                figures=mode)
            seconds = time.perf_counter() - t0
            got = parts.take()
            row[mode] = {**headline(figs[mode]), "seconds": round(seconds, 3),
                         "passes": sum(v["n"] for k, v in got.items() if k.startswith("encoder")),
                         "pass_seconds": round(sum(v["s"] for k, v in got.items() if k.startswith(("encoder", "decoder"))), 3)}
            row.setdefault("order", mode)
        row["lean"] = headline(lean(ev, jpeg, rgb, cloak, figs["quick"], config))
        append(rows_path, row)
        print(f"{row['image']}: {row['full']['seconds']:.1f} s full, {row['quick']['seconds']:.1f} s quick; words "
              f"{row['full']['words']} / {row['quick']['words']} / lean {row['lean']['words']}", file=sys.stderr,
              flush=True)


# -- tables ---------------------------------------------------------------------------------------------


def _median_parts(rows: list[dict]) -> tuple[dict[str, tuple[int, float]], float]:
    """Per part (count of the first repeat, median seconds over the repeats), and the median total seconds."""
    names = sorted({k for r in rows for k in r["parts"]})  # sorted: a set's order changes the float sums
    med = {k: (rows[0]["parts"].get(k, {"n": 0})["n"],
               statistics.median(r["parts"].get(k, {"s": 0.0})["s"] for r in rows)) for k in names}
    return med, statistics.median(r["seconds"] for r in rows)


def _part_order(name: str) -> tuple:
    """Passes by image (the original, the versions, then their JPEG copies), then the other parts by name."""
    kind, _, image = name.partition(": ")
    if kind in ("encoder", "decoder"):
        jpeg = image.startswith("JPEG ")
        base = image.removeprefix("JPEG ")
        return (0, jpeg, ROLES.index(base) if base in ROLES else len(ROLES), kind == "decoder")
    return (1, name)


def breakdown_table(rows: list[dict], image: str) -> str:
    """One image: per part (rows) and setting (columns), ``count × … = seconds`` (medians over the repeats)."""
    rows = [r for r in rows if r["part"] == "breakdown" and r["image"] == image]
    if not rows:
        return "(no rows)"
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in rows)]
    per = {s: _median_parts([r for r in rows if r["setting"] == s]) for s in settings}
    names = sorted({k for s in settings for k in per[s][0]}, key=_part_order)
    r0 = rows[0]
    lines = [f"**{image}** ({r0['width']}×{r0['height']}, {r0['threads']} thread(s), median of "
             f"{len(rows) // len(settings)} repeats): n = calls, s = seconds.", "",
             "| part | " + " | ".join(SETTINGS[s] for s in settings) + " |", "|---|" + "---:|" * len(settings)]

    def cell(n: int, sec: float) -> str:
        return "" if n == 0 else f"{n} · {sec:.2f} s"

    for name in names:
        lines.append(f"| {name} | " + " | ".join(cell(*per[s][0].get(name, (0, 0.0))) for s in settings) + " |")
    for which in ("encoder", "decoder"):
        total = [(sum(n for k, (n, _) in per[s][0].items() if k.startswith(which)),
                  math.fsum(v for k, (_, v) in per[s][0].items() if k.startswith(which))) for s in settings]
        lines.append(f"| **all {which} passes** | " + " | ".join(f"**{cell(*t)}**" if t[0] else "" for t in total) + " |")
    rest = [per[s][1] - math.fsum(v for _, v in per[s][0].values()) for s in settings]
    lines.append("| the rest (PSNR, grain, de-tinting, copies: sums and masks) | "
                 + " | ".join(f"{v:.2f} s" for v in rest) + " |")
    lines.append("| **total** | " + " | ".join(f"**{per[s][1]:.2f} s**" for s in settings) + " |")
    return "\n".join(lines)


def breakdown_tables(rows: list[dict]) -> str:
    images = list(dict.fromkeys(r["image"] for r in rows if r["part"] == "breakdown"))
    return "\n\n".join(breakdown_table(rows, im) for im in images) or "(no rows)"


def _deltas(rows: list[dict], reading: str, key: str) -> list[float]:
    return [r[reading][key] - r["full"][key] for r in rows
            if r[reading][key] is not None and r["full"][key] is not None]


def agreement_table(rows: list[dict]) -> str:
    """Per reading (quick, lean): images with the same words as full, and per figure the largest |Δ| and how
    many images are over the bar."""
    rows = [r for r in rows if r["part"] == "quick"]
    if not rows:
        return "(no rows)"
    lines = [f"{len(rows)} images. Δ = reading − full; words = visibility, protection, survival of JPEG q75.", "",
             "| | quick | lean (not in glazeish) |", "|---|---:|---:|"]
    same = {k: sum(r[k]["words"] == r["full"]["words"] for r in rows) for k in ("quick", "lean")}
    lines.append(f"| images with the same words as full | {same['quick']} of {len(rows)} | {same['lean']} of {len(rows)} |")
    for key, what in {**FIGURES, "retained": "after JPEG q75: share of the advantage kept"}.items():
        cells = []
        for reading in ("quick", "lean"):
            d = _deltas(rows, reading, key)
            over = "" if key == "retained" else f" ({sum(abs(v) > TOLERANCE_DB for v in d)} over {TOLERANCE_DB:g} dB)"
            cells.append(f"{max(map(abs, d), default=0):.3f}{over}")
        lines.append(f"| {what}: max \\|Δ\\| | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def speed_lines(rows: list[dict]) -> str:
    """The time of full and quick figures: medians per kind and over all, and full ÷ quick."""
    rows = [r for r in rows if r["part"] == "quick"]
    if not rows:
        return "(no rows)"
    med = statistics.median
    lines = ["| images | n | full s | quick s | full ÷ quick (median of the images) | passes full / quick |",
             "|---|---:|---:|---:|---:|---:|"]
    kinds = list(dict.fromkeys(r["image"].split("/")[0] for r in rows))
    for kind, part in [(k, [r for r in rows if r["image"].startswith(k + "/")]) for k in kinds] + [("all", rows)]:
        lines.append(f"| {kind} | {len(part)} | {med(r['full']['seconds'] for r in part):.2f} | "
                     f"{med(r['quick']['seconds'] for r in part):.2f} | "
                     f"{med(r['full']['seconds'] / r['quick']['seconds'] for r in part):.2f}× | "
                     f"{med(r['full']['passes'] for r in part):g} / {med(r['quick']['passes'] for r in part):g} |")
    total = sum(r["full"]["seconds"] for r in rows) / sum(r["quick"]["seconds"] for r in rows)
    share = med(r["full"]["pass_seconds"] / r["full"]["seconds"] for r in rows)
    lines += ["", f"Over all images full ÷ quick = {total:.2f}× (sum of the seconds); the passes through the model "
              f"are {share * 100:.0f}% of the full figures' time (median)."]
    return "\n".join(lines)


def images_table(rows: list[dict]) -> str:
    """Per image: the full figures' words and headline, what quick and lean say, the seconds."""
    rows = [r for r in rows if r["part"] == "quick"]
    if not rows:
        return "(no rows)"
    lines = ["| image | words (full) | quick | lean | gap dB | noise view dB (lean Δ) | kept after JPEG (lean) | "
             "full s | quick s |", "|---|---|---|---|---:|---:|---:|---:|---:|"]

    def same(r: dict, k: str) -> str:
        return "same" if r[k]["words"] == r["full"]["words"] else " / ".join(map(str, r[k]["words"]))

    for r in rows:
        f, lean_ = r["full"], r["lean"]
        lines.append(f"| {r['image'][:30]} | {' / '.join(map(str, f['words']))} | {same(r, 'quick')} | "
                     f"{same(r, 'lean')} | {f['view_gap']:.2f} | {f['noise_view_psnr']:.2f} "
                     f"({lean_['noise_view_psnr'] - f['noise_view_psnr']:+.2f}) | {f['retained']:.3f} "
                     f"({lean_['retained']:.3f}) | {f['seconds']:.1f} | {r['quick']['seconds']:.1f} |")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> str:
    """Whether quick (and lean) say the same words as full on every image, and within the bar."""
    rows = [r for r in rows if r["part"] == "quick"]
    if not rows:
        return "(no rows)"
    out = []
    for reading, what in (("quick", "Quick"), ("lean", "Lean")):
        same = sum(r[reading]["words"] == r["full"]["words"] for r in rows)
        worst = max(abs(v) for k in FIGURES for v in _deltas(rows, reading, k))
        ok = same == len(rows) and worst <= TOLERANCE_DB
        out.append(f"**{what} says the same words as full on {same} of {len(rows)} images**, and its headline "
                   f"figures are at most {worst:.3f} dB from full's: it {'meets' if ok else 'fails'} the bar (the "
                   f"same words on every image, figures within {TOLERANCE_DB} dB).")
    return "\n\n".join(out)


def tables(rows: list[dict]) -> dict:
    """The generated blocks of RESULTS.md by name, from the rows of both parts."""
    return {"breakdown": lambda: breakdown_tables(rows), "agreement": lambda: agreement_table(rows),
            "speed": lambda: speed_lines(rows), "images": lambda: images_table(rows), "verdict": lambda: verdict(rows)}


def report(folder: Path = HERE) -> str:
    """RESULTS.md of ``folder`` with every generated block rebuilt from the rows beside it."""
    rows = read_rows(folder / "breakdown.jsonl", folder / "quick.jsonl")
    return regenerate((folder / "RESULTS.md").read_text(), tables(rows))


def fresh_report(rows: list[dict], command: str) -> str:
    """A new RESULTS.md: the set-up, the machine and the command (written once; the prose around the blocks is
    kept by hand after that), then the generated blocks."""
    import torch

    from glazeish.device import cpu_name

    lines = ["# The figures after a cloak: where their time goes, and the quick figures", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, {cpu_name()}, torch {torch.__version__}.", "",
             f"Command: `{command}`", "",
             "The blocks below: `python benchmarks/figures_cost/cost.py --report` rebuilds them from the rows.", ""]
    for name in ("breakdown", "agreement", "speed", "images", "verdict"):
        lines += [f"<!-- generated: {name} -->", "<!-- end generated -->", ""]
    return regenerate("\n".join(lines), tables(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("breakdown", "quick"), help="what to measure")
    ap.add_argument("--models", default=str(MODELS))
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--scratch", type=Path, default=SCRATCH / "figures_cost", help="where the cloaks are cached")
    ap.add_argument("--images", nargs="+", default=["paintings", "flat", "line"], help="images of --part quick")
    ap.add_argument("--breakdown-images", nargs="+", default=["paintings:4:5", "flat:0:1"],
                    help="images of --part breakdown (a painting and a drawing, 512² each)")
    ap.add_argument("--repeats", type=int, default=2, help="repeats of each breakdown setting")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true",
                    help="rewrite the generated blocks of --out's RESULTS.md from its rows instead of running")
    a = ap.parse_args()
    if a.report:
        (a.out / "RESULTS.md").write_text(report(a.out))
        return
    if a.part is None:
        ap.error("--part breakdown or --part quick (or --report)")
    (breakdown if a.part == "breakdown" else quick_vs_full)(a)
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    command = threads + "python " + " ".join(shlex.quote(x) for x in sys.argv)
    results = a.out / "RESULTS.md"
    results.write_text(report(a.out) if results.exists() else
                       fresh_report(read_rows(a.out / "breakdown.jsonl", a.out / "quick.jsonl"), command))
    print(results.read_text())


if __name__ == "__main__":
    main()
