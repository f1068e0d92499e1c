"""What survives posting: the cloak after each platform's scaling and re-encoding (issue 29).

Three suites, rows to JSON lines (resumable: finished rows are skipped), and a report from the rows:

* ``mosaic`` — the issue's target. A 2048×1024 mosaic of 8 paintings (``paintings:4:12``, 4×2 tiles of
  512²) cloaked with the default preset at full size, and with ``--platform instagram`` (scaled to the size
  Instagram serves, 1080×540, and optimised through its chain; also with twice the preset's steps). Each is
  then put through an *independent* Instagram-like chain written here with Pillow, not the project's profile:
  longest side 1080 px (Lanczos), JPEG q80 4:2:0. Judged by :func:`glazeish.evaluation.assess` at the posted size: the chained cloak against
  the chained original, next to the chained same-PSNR noise.
* ``survival`` — every shared image at its own size, cloaked with the default preset, and (on ``--subset``) with
  ``--platform`` over all the lossy platforms at once; each measured after every lossy platform's chain
  (the ``platform:NAME`` purification: the project's profiles, docs/platforms.md). Shared images are
  512–768 px, under every platform's size, so here the chains re-encode without scaling.

    python benchmarks/platforms/platforms.py mosaic
    python benchmarks/platforms/platforms.py survival
    python benchmarks/platforms/platforms.py speed       # 4000×3000 for a 2048-px platform vs a 2048-px image
    python benchmarks/platforms/platforms.py report      # RESULTS.md from the rows

``speed`` times whole ``glazeish protect`` processes (``--intensity fast --no-eval``) on a line drawing scaled
to 4000×3000 with ``--platform facebook`` (2048 px) against the same drawing scaled to 2048×1536 without one.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import MODELS, pick_images  # noqa: E402

from glazeish.config import ProtectConfig  # noqa: E402
from glazeish.device import cpu_class  # noqa: E402
from glazeish.evaluation import Evaluator, assess  # noqa: E402
from glazeish.imageio import Artwork, read_image, resized  # noqa: E402
from glazeish.platforms import PLATFORMS, for_platforms, parse_platforms, posting_size  # noqa: E402
from glazeish.protect import Protector  # noqa: E402
from glazeish.purify import Purification  # noqa: E402

LOSSY = [n for n, p in PLATFORMS.items() if p.format != "original"]
MOSAIC = "paintings:4:12"


class InstagramLike(Purification):
    """The issue's independent chain: longest side 1080 px with Pillow's Lanczos, JPEG q80 4:2:0."""

    name = "instagram-like"
    description = "1080 px long side (Lanczos), JPEG q80 4:2:0"
    keeps_size = False

    def _size(self, w: int, h: int) -> tuple[int, int]:
        s = min(1.0, 1080 / max(w, h))
        return max(1, round(w * s)), max(1, round(h * s))

    def _each(self, x, fn):
        u8 = (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        import torch

        return torch.from_numpy(np.stack([fn(Image.fromarray(a)) for a in u8])).permute(0, 3, 1, 2).float() / 255

    def resized(self, x):
        return self._each(x, lambda im: np.asarray(im.resize(self._size(*im.size), Image.LANCZOS)))

    def apply(self, x):
        def chain(im):
            buf = io.BytesIO()
            im.resize(self._size(*im.size), Image.LANCZOS).save(buf, "JPEG", quality=80, subsampling=2)
            return np.asarray(Image.open(buf).convert("RGB"))

        return self._each(x, chain)


def mosaic() -> np.ndarray:
    tiles = [read_image(p).rgb for _, p in pick_images([MOSAIC])]
    rows = [np.concatenate(tiles[i:i + 4], axis=1) for i in (0, 4)]
    return np.concatenate(rows, axis=0)


def summary(fig, name: str) -> dict:
    """The figures a row keeps: before, and after the purification ``name``."""
    b, a = fig.before, fig.purified[name]
    return {"psnr": b.cloak.psnr, "view_psnr": b.cloak.view_psnr, "gap": b.view_gap("noise"),
            "gap_detinted": b.view_gap("noise", detinted=True), "grain": b.cloak.grain,
            "after_view_psnr": a.comparison.cloak.view_psnr, "after_noise_view_psnr": a.comparison.noise.view_psnr,
            "after_gap": a.comparison.view_gap("noise"), "retained": a.retained}


def cloak(config: ProtectConfig, art: Artwork, cache: dict) -> tuple[np.ndarray, float]:
    key = config.key()
    if key not in cache:
        cache[key] = Protector(config)
    t0 = time.perf_counter()
    rgb = cache[key].protect(art).rgb
    return rgb, time.perf_counter() - t0


def done_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_mosaic(out: Path) -> None:
    rows = done_rows(out)
    have = {r["cloak"] for r in rows}
    full = Artwork(mosaic())
    ev = Evaluator(Protector(ProtectConfig(models_dir=str(MODELS))).ensemble, precision="fp32")
    protectors: dict = {}
    ig = parse_platforms("instagram")
    for name, platforms, steps in (("default", [], None), ("platform:instagram", ig, None),
                                   ("platform:instagram --steps 16", ig, 16)):
        if name in have:
            continue
        config = for_platforms(ProtectConfig(models_dir=str(MODELS), steps=steps), platforms).resolved()
        art = resized(full, posting_size(*full.size, platforms))
        rgb, seconds = cloak(config, art, protectors)
        fig = assess(art.rgb, rgb, ev, eps_levels=config.eps_levels, purifications=[InstagramLike()], flip=())
        row = {"cloak": name, "size": list(art.size), "seconds": round(seconds, 1), "images": MOSAIC,
               "machine": cpu_class(), **summary(fig, "instagram-like")}
        print(json.dumps(row), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")


def run_survival(out: Path, images: list[str], subset: list[str]) -> None:
    rows = done_rows(out)
    have = {(r["image"], r["cloak"]) for r in rows}
    base = ProtectConfig(models_dir=str(MODELS))
    ev = Evaluator(Protector(base).ensemble, precision="fp32")
    protectors: dict = {}
    on_subset = {p.name for _, p in pick_images(subset)}
    purifs = [f"platform:{n}" for n in LOSSY]
    for kind, path in pick_images(images):
        art = read_image(path)
        cloaks = [("default", base)] + ([("platforms", for_platforms(base, parse_platforms(LOSSY)))]
                                        if path.name in on_subset else [])
        for name, config in cloaks:
            if (path.name, name) in have:
                continue
            config = config.resolved()
            rgb, seconds = cloak(config, art, protectors)
            fig = assess(art.rgb, rgb, ev, eps_levels=config.eps_levels, purifications=purifs, flip=())
            for p in purifs:
                row = {"image": path.name, "kind": kind, "cloak": name, "platform": p.split(":")[1],
                       "seconds": round(seconds, 1), "machine": cpu_class(), **summary(fig, p)}
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            print(path.name, name, f"{seconds:.0f}s", flush=True)


def run_speed(out: Path, tmp: Path) -> None:
    import subprocess

    _, src = pick_images(["line:0:1"])[0]  # 640×480: 4:3, like the sizes timed
    base = Image.open(src).convert("RGB")
    tmp.mkdir(parents=True, exist_ok=True)
    cases = [("4000x3000 --platform facebook", (4000, 3000), ["--platform", "facebook"]),
             ("2048x1536", (2048, 1536), [])]
    for name, size, extra in cases:
        path = tmp / f"drawing-{size[0]}.png"
        base.resize(size, Image.LANCZOS).save(path)
        cmd = [sys.executable, "-m", "glazeish", "protect", str(path), "-o", str(tmp / "out"), "--intensity", "fast",
               "--no-eval", "--quiet", "--overwrite", "--models", str(MODELS), *extra]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - t0
        with Image.open(tmp / "out" / f"drawing-{size[0]}.protected.png") as im:
            written = im.size
        row = {"case": name, "input": list(size), "written": list(written), "seconds": round(seconds, 1),
               "image": src.name, "machine": cpu_class()}
        print(json.dumps(row), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else float("nan")


def report(mosaic_rows: list[dict], survival_rows: list[dict], speed_rows: list[dict]) -> str:
    parts = ["# What survives posting (issue 29)\n",
             "Generated by `python benchmarks/platforms/platforms.py report` from `mosaic.jsonl` and "
             "`survival.jsonl` (this folder). *gap*: how much further the cloak moves the mimic's view D(E(x)) than "
             "Gaussian noise of the same PSNR, dB; *after*: the same after the chain, the chained cloak and noise "
             "judged against the chained original at the size served; *kept*: after ÷ before.\n"]
    if mosaic_rows:
        parts.append("## The target: a 2048×1024 mosaic of 8 paintings after an independent Instagram-like chain\n")
        parts.append(f"`python benchmarks/platforms/platforms.py mosaic` — paintings `{MOSAIC}`; chain: 1080 px long "
                     "side (Lanczos), JPEG q80 4:2:0, written in the script, not the project's profile. "
                     f"Machine: {mosaic_rows[0]['machine']}.\n")
        parts.append("*view after*: the mimic's view of the chained cloak / of the chained same-PSNR noise, against the "
                     "chained original's (dB; lower = further, the absolute change).\n")
        parts.append("| cloak | cloaked at | PSNR | gap before | view after: cloak / noise | gap after the chain | kept | "
                     "cloak time |")
        parts.append("|---|---|---|---|---|---|---|---|")
        for r in mosaic_rows:
            parts.append(f"| {r['cloak']} | {r['size'][0]}×{r['size'][1]} | {r['psnr']:.1f} dB | {r['gap']:.1f} dB | "
                         f"{r['after_view_psnr']:.1f} / {r['after_noise_view_psnr']:.1f} dB | "
                         f"**{r['after_gap']:.1f} dB** | {100 * (r['retained'] or 0):.0f} % | {r['seconds']:.0f} s |")
        parts.append("")
    if survival_rows:
        parts.append("## Every shared image, after each platform's chain\n")
        parts.append("`python benchmarks/platforms/platforms.py survival` — default preset at each image's own size; "
                     "*platforms*: `--platform " + ",".join(LOSSY) + "` on the subset. Gap after the chain, dB "
                     f"(kept). Machine: {survival_rows[0]['machine']}.\n")
        kinds = [k for k in ("paintings", "flat", "line") if any(r["kind"] == k for r in survival_rows)]
        for name in ("default", "platforms"):
            rows = [r for r in survival_rows if r["cloak"] == name]
            if not rows:
                continue
            n = {k: len({r["image"] for r in rows if r["kind"] == k}) for k in kinds}
            parts.append(f"### {name}\n")
            parts.append("| platform | " + " | ".join(f"{k} ({n[k]})" for k in kinds) + " |")
            parts.append("|---|" + "---|" * len(kinds))
            before = {k: _mean(r["gap"] for r in rows if r["kind"] == k and r["platform"] == LOSSY[0]) for k in kinds}
            parts.append("| before (no chain) | " + " | ".join(f"{before[k]:.1f} dB" for k in kinds) + " |")
            for p in LOSSY:
                cells = []
                for k in kinds:
                    sel = [r for r in rows if r["kind"] == k and r["platform"] == p]
                    cells.append(f"{_mean(r['after_gap'] for r in sel):.1f} dB "
                                 f"({100 * _mean(r['retained'] for r in sel):.0f} %)")
                parts.append(f"| {PLATFORMS[p].describe()} | " + " | ".join(cells) + " |")
            parts.append("")
        both = {(r["image"], r["platform"]): r for r in survival_rows if r["cloak"] == "platforms"}
        pairs = [(r, both[(r["image"], r["platform"])]) for r in survival_rows
                 if r["cloak"] == "default" and (r["image"], r["platform"]) in both]
        if pairs:
            parts.append("Paired on the subset, the same images under both cloaks: gap after the chain, mean over the "
                         "7 platforms (PSNR):\n")
            parts.append("| kind | images | default | --platform (all 7) |")
            parts.append("|---|---|---|---|")
            for k in kinds:
                kp = [(a, b) for a, b in pairs if a["kind"] == k]
                if kp:
                    parts.append(f"| {k} | {len({a['image'] for a, _ in kp})} | "
                                 f"{_mean(a['after_gap'] for a, _ in kp):.1f} dB ({_mean(a['psnr'] for a, _ in kp):.1f}) | "
                                 f"{_mean(b['after_gap'] for _, b in kp):.1f} dB ({_mean(b['psnr'] for _, b in kp):.1f}) |")
            parts.append("")
    if speed_rows:
        parts.append("## Time: a 4000×3000 drawing for a 2048-px platform\n")
        parts.append("`python benchmarks/platforms/platforms.py speed` — whole `glazeish protect --intensity fast "
                     f"--no-eval` processes, one run each. Machine: {speed_rows[0]['machine']}.\n")
        parts.append("| case | written at | seconds |")
        parts.append("|---|---|---|")
        for r in speed_rows:
            parts.append(f"| {r['case']} | {r['written'][0]}×{r['written'][1]} | {r['seconds']:.0f} |")
        parts.append("")
    parts += targets(mosaic_rows, survival_rows, speed_rows)
    return "\n".join(parts)


def targets(mosaic_rows: list[dict], survival_rows: list[dict], speed_rows: list[dict]) -> list[str]:
    """The issue's targets against the rows: met or not, with the figure."""
    m = {r["cloak"]: r for r in mosaic_rows}
    sp = {r["case"]: r["seconds"] for r in speed_rows}
    out = ["## The issue's targets\n", "| target | figure | met? |", "|---|---|---|"]
    d = m.get("default")
    for name in ("platform:instagram", "platform:instagram --steps 16"):
        if d and name in m:
            r = m[name]
            ok = r["after_gap"] >= 8 and r["after_gap"] >= d["after_gap"] + 2 and r["psnr"] >= 37.5
            out.append(f"| `{name.split(':')[1].replace('instagram', '--platform instagram')}`: ≥ 8 dB after the chain, "
                       f"≥ 2 dB more than the default, PSNR ≥ 37.5 | {r['after_gap']:.1f} dB vs {d['after_gap']:.1f}, "
                       f"PSNR {r['psnr']:.2f} | {'yes' if ok else 'no'} |")
    n = len({r["platform"] for r in survival_rows})
    out.append(f"| survival per platform, all shared images, ≥ 6 platforms | {n} platforms, "
               f"{len({r['image'] for r in survival_rows})} images | {'yes' if n >= 6 else 'no'} |")
    if len(sp) == 2:
        a, b = sp["4000x3000 --platform facebook"], sp["2048x1536"]
        out.append(f"| a 4000×3000 drawing for a 2048-px platform in ≤ the time of a 2048-px image | {a:.0f} s vs "
                   f"{b:.0f} s ({a / b:.2f}×) | {'yes' if a <= b else 'no: every step goes through the chain'} |")
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", choices=["mosaic", "survival", "speed", "report"])
    ap.add_argument("--images", nargs="+", default=["paintings", "flat", "line"])
    ap.add_argument("--subset", nargs="+", default=["paintings:4:12:4", "flat:0:6:3", "line:0:4:2"],
                    help="images also cloaked with --platform (all lossy platforms)")
    ap.add_argument("--out", type=Path, default=HERE)
    a = ap.parse_args()
    if a.suite == "mosaic":
        run_mosaic(a.out / "mosaic.jsonl")
    elif a.suite == "survival":
        run_survival(a.out / "survival.jsonl", a.images, a.subset)
    elif a.suite == "speed":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            run_speed(a.out / "speed.jsonl", Path(tmp))
    else:
        text = report(done_rows(a.out / "mosaic.jsonl"), done_rows(a.out / "survival.jsonl"),
                      done_rows(a.out / "speed.jsonl"))
        (a.out / "RESULTS.md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
