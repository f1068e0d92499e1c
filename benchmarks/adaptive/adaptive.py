"""Does the cloak survive the adaptive mimic, and does it transfer to an encoder it never attacked? (issue 16)

Every candidate is a set of :class:`glazeish.config.ProtectConfig` fields on top of the default preset. The
cloak is made by :class:`glazeish.protect.Protector` attacking TAEF2 only, rounded to 8 bits, and measured by the
project's one evaluation layer, :func:`glazeish.evaluation.assess`, with TAEF2 (the mimic's view) and TAESANA
(never attacked: the judge of transfer) and two purifications, each applied to the original, the cloak and
same-PSNR Gaussian noise alike:

* ``impress++`` — IMPRESS++ (Hönig et al. 2024) as :class:`glazeish.purify.ImpressPlusPlus` runs it (Gaussian
  noise 0.05, then Adam on ``‖D(E(x'))−x'‖²`` within 4/255 of the noised image) with TAEF2, but with
  ``--impress-steps`` (default 50) of its 3000 steps and the cosine schedule over those: the adaptive mimic
  who purifies with the very autoencoder the cloak attacked;
* ``jpeg75`` — a Pillow JPEG q75 re-save;
* with ``--cat-steps N``, ``cat`` — CAT-style adapters (Peng et al. 2025; :class:`glazeish.purify.CAT`, its
  departures from the authors' 10,000 steps in ``docs/purifiers.md``) trained into TAEF2 for N steps per image
  until it reproduces that image: the mimic who adapts the autoencoder instead of the image.

*kept* is the share of the cloak's advantage over same-PSNR noise (the mimic view's dB gap) left after the
purification, judged against the equally purified original: ``glazeish check``'s retention. *transfer* is
TAESANA's latent change under the cloak ÷ under the same-PSNR noise. One JSON row per (image, candidate) goes
to ``--out`` (resumable: finished rows are skipped); images are the outer loop. Crops keep IMPRESS++ affordable
on a CPU (~35 s per candidate and image at 128² with 50 steps).

    python benchmarks/adaptive/adaptive.py --images paintings:0:12:2 flat:0:6:2 line:0:4:2 --crop 128 \\
        --candidates default,reference,purify,purify-s16,diverse,coarse8
    python benchmarks/adaptive/adaptive.py --images paintings:0:1 flat:0:1 --crop 128 --impress-steps 200 \
        --candidates default,purify-s16          # are 50 of IMPRESS++'s steps enough?
    python benchmarks/adaptive/adaptive.py --images paintings:0:12:6 flat:0:6:3 --candidates default,purify-s16 \
        --parts --out benchmarks/adaptive/parts.jsonl   # its noise alone, its consistency steps alone
    python benchmarks/adaptive/adaptive.py --summary --where 50:128
    python benchmarks/adaptive/adaptive.py --figure --images paintings:0:1 flat:0:1 --candidates default  # views.png
    python benchmarks/adaptive/adaptive.py --images paintings:0:12:2 flat:0:6:2 line:0:4:2 --crop 128 \
        --candidates default,features,ensemble,sana-untargeted,sana-features --out benchmarks/adaptive/issue27.jsonl
    python benchmarks/adaptive/adaptive.py --images paintings:0:12:2 flat:0:6:2 line:0:4:2 --crop 128 \
        --impress-steps 0 --cat-steps 200 --candidates default,features --out benchmarks/adaptive/cat.jsonl
    python benchmarks/adaptive/adaptive.py --report   # RESULTS.md's tables from the committed rows
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import KINDS, MODELS, centre_crop, pick_images, read_rows, regenerate  # noqa: E402

#: ProtectConfig fields over the default preset; what each tries is said in RESULTS.md
CANDIDATES: dict[str, dict] = {
    "default": {},
    # the same EOT, but each JPEG step pushes away from the JPEG'd original's view (how the figures judge it)
    "reference": dict(eot_reference="transformed"),
    # expectation over the adaptive mimic: a third of the steps through IMPRESS++-style purification
    "purify": dict(robust="jpeg,identity,purify", eot_reference="transformed"),
    "purify-s16": dict(robust="jpeg,purify", steps=16, eot_reference="transformed"),
    # input diversity for transfer: rescaled and shifted copies as well as JPEG and plain steps
    "diverse": dict(robust="jpeg,identity,resize,shift"),
    "diverse-s16": dict(robust="jpeg,identity,resize,shift", steps=16),
    # block-wise (8×8) steps: coarser change, which a 32× encoder (TAESANA) sees more of
    "coarse8": dict(coarse=8),
    "high": dict(intensity="high"),
    # issue 27: leave-one-out the other way (built on TAESANA alone, judged on TAEF2), every encoder at once, and
    # an objective on the encoder's features at every scale instead of the view alone
    "sana-untargeted": dict(encoder="taesana", objective="untargeted"),
    "sana-features": dict(encoder="taesana", objective="features"),
    "ensemble": dict(encoder="taef2,taesana"),
    "features": dict(objective="features"),
    "view+features": dict(objective="mimic-away+features"),
    # steps blurred over 5 or 9 px on flat fills (a shading field there, not grain)
    "fills5": dict(fill_smooth=5),
    "fills9": dict(fill_smooth=9),
    # model augmentation of the surrogate: skip gradient (Wu et al. 2020) on the attacked encoder's residual blocks
    "sgm5": dict(skip_grad=0.5),
    "sgm2": dict(skip_grad=0.2),
    "view+features-sgm5": dict(objective="mimic-away+features", skip_grad=0.5),
    "sana-untargeted-sgm5": dict(encoder="taesana", objective="untargeted", skip_grad=0.5),
    # the same energy (RMS 2.95/255) anywhere, L∞ 12/255, instead of the masked budget's texture-first map: is it
    # the budget that keeps drawings' transfer at 1x?
    "anywhere": dict(budget="flat", rms_levels=2.95),
    "sana-untargeted-anywhere": dict(encoder="taesana", objective="untargeted", budget="flat", rms_levels=2.95),
    # grain in colour alone on the fills (no lightness change there), with the masked budget and with the energy
    # anywhere: the eye resolves colour far more coarsely than lightness
    "chroma": dict(fill_chroma=True),
    "chroma-anywhere": dict(budget="flat", rms_levels=2.95, fill_chroma=True),
    "chroma-f8": dict(fill_chroma=True, budget_floor=0.8),  # colour-only fills with more of the budget
    # ghost networks' skip erosion (Li et al. 2020): each step attacks TAEF2 with its residual bodies rescaled
    "ghost22": dict(ghost=0.22),
    "sana-untargeted-ghost22": dict(encoder="taesana", objective="untargeted", ghost=0.22),
    # the default's objective on TAEF2 plus a lighter share of TAESANA (its latent pulled to the decoy's)
    "ensemble10": dict(encoder="taef2,taesana*0.1"),
    "ensemble25": dict(encoder="taef2,taesana*0.25"),
    # a shading field on flat fills: the fills' steps blurred as in fills9, but the fills get 0.8 of the
    # RMS budget instead of half (budget_floor 0.8): smooth change, which a 32x encoder sees and grain does not show
    "shade9": dict(fill_smooth=9, budget_floor=0.8),
    # the candidates that met most targets, combined: view+features with the fills smoothed over 5 px, alone and
    # with a quarter share of TAESANA
    "vf-fills5": dict(objective="mimic-away+features", fill_smooth=5),
    "vf-fills5-ens25": dict(objective="mimic-away+features", fill_smooth=5, encoder="taef2,taesana*0.25"),
}


def row_of(figs, seconds: float) -> dict:
    s = figs.summary
    b = figs.before
    out = {
        "psnr": b.cloak.psnr,
        "noise_psnr": b.noise.psnr,
        "view_psnr": s.view_psnr,
        "view_psnr_noise": b.noise.view_psnr,
        "gap": s.view_gap,
        "transfer": s.latent_ratio.get("taesana"),
        "latent_ratio": s.latent_ratio.get("taef2"),
        "view_psnr_detinted": s.view_psnr_detinted,
        "gap_detinted": s.view_gap_detinted,
        "grain": s.grain,
        "grain_noise": b.noise.grain,
        "seconds": seconds,
    }
    for name, p in figs.purified.items():
        key = name.replace("+", "p").replace("-", "_")  # impress++ -> impresspp_*, noise-only -> noise_only_*
        out[f"{key}_kept"] = p.retained
        out[f"{key}_view_psnr"] = p.comparison.cloak.view_psnr
        out[f"{key}_view_psnr_noise"] = p.comparison.noise.view_psnr
        out[f"{key}_gap"] = p.comparison.view_gap("noise")
    return out


def lightness_and_flip(original, cloaked) -> dict:
    """What a person sees of the change (``H×W×3`` uint8 each): *grain_luma*, the high-pass RMS of its lightness
    (Rec. 709 luma) on flat fills in 1/255 (``grain`` is all three channels'), and *flip*, the cloak's mean ꟻLIP
    error against the original."""
    import torch

    from glazeish import metrics
    from glazeish.attack import LUMA
    from glazeish.imageio import to_tensor

    x, xc = to_tensor(original), to_tensor(cloaked)
    fills = metrics.flat_mask(x)
    w = torch.tensor(LUMA).view(1, 3, 1, 1)
    luma = ((xc - x) * w).sum(1, keepdim=True)
    n = float(fills.sum())
    grain = math.sqrt(float((metrics.high_pass(luma).square() * fills).sum()) / n) * 255 if n else None
    return {"grain_luma": grain, "flip": metrics.flip(xc, x)}


def run(args) -> None:
    import torch

    from glazeish.config import ProtectConfig
    from glazeish.encoders import Ensemble, load_encoders
    from glazeish.evaluation import Evaluator, assess
    from glazeish.imageio import Artwork, read_image
    from glazeish.protect import Protector
    from glazeish.purify import ImpressPlusPlus, make_purification

    models = args.models or str(MODELS)
    cpu = torch.device("cpu")
    judge = load_encoders("taef2,taesana", models, cpu)  # figures: TAEF2's view, TAESANA's latents
    by_name = {m.name: m for m in judge.models}
    ev = Evaluator(judge)
    # --impress-steps 0: JPEG only (a quick screen of transfer and JPEG survival)
    purifications = ([make_purification("impress++", judge.mimic, steps=args.impress_steps)] if args.impress_steps
                     else []) + ["jpeg75"]
    if args.cat_steps:  # CAT-style adapters trained into TAEF2 per image (glazeish.purify.CAT; docs/purifiers.md)
        purifications.append(make_purification("cat", judge.mimic, steps=args.cat_steps))
    if args.parts:  # which half of IMPRESS++ removes the cloak: its Gaussian noise alone, its consistency steps alone
        class NoiseOnly(ImpressPlusPlus):
            name = "noise-only"

        class ConsistencyOnly(ImpressPlusPlus):
            name = "consistency-only"

        purifications += [NoiseOnly(judge.mimic, steps=0), ConsistencyOnly(judge.mimic, noise=0.0, steps=args.impress_steps)]
    out = Path(args.out)
    done = {(r["image"], r["candidate"], r["crop"], r["impress_steps"]) for r in read_rows(out)}
    names = args.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    protectors = {}
    for n in names:  # the cloak attacks TAEF2 alone unless the candidate names its encoders
        config = ProtectConfig(models_dir=models, **CANDIDATES[n])
        attacked = load_encoders(config.encoder, models, cpu) if "," in config.encoder else \
            Ensemble([by_name[config.encoder]])
        protectors[n] = Protector(config, ensemble=attacked)
    for kind, path in pick_images(args.images):
        rgb = centre_crop(read_image(str(path)).rgb, args.crop)
        cache: dict = {}
        for n, p in protectors.items():
            key = (path.name, n, args.crop, args.impress_steps)
            if key in done:
                continue
            cloak = p.protect(Artwork(rgb=rgb))  # as `glazeish protect` makes it: the 8-bit cloak and its time
            figs = assess(rgb, cloak.rgb, ev, purifications=purifications, flip=(), cache=cache)
            row = {"image": path.name, "kind": kind, "candidate": n, "crop": args.crop,
                   "impress_steps": args.impress_steps, **({"cat_steps": args.cat_steps} if args.cat_steps else {}),
                   **row_of(figs, cloak.seconds), **lightness_and_flip(rgb, cloak.rgb)}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{path.name[:28]:28s} {n:12s} PSNR {row['psnr']:.2f} view {row['view_psnr']:.2f} gap {row['gap']:.2f} "
                  f"kept impress++ {fmt(row.get('impresspp_kept'))} cat {fmt(row.get('cat_kept'))} "
                  f"jpeg {fmt(row['jpeg75_kept'])} "
                  f"taesana {row['transfer']:.2f} taef2 {row['latent_ratio']:.2f} grain {fmt(row['grain'])} "
                  f"luma grain {fmt(row['grain_luma'])} flip {row['flip']:.3f}",
                  flush=True)


def figure(args) -> None:
    """views.png: per image, the mimic's view of the original, the cloak and same-PSNR noise, before and after
    IMPRESS++ (paired: one noise draw for all three), and the difference from the original's view ×4."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from glazeish.config import ProtectConfig
    from glazeish.encoders import load_encoders
    from glazeish.evaluation import Evaluator, mse_levels, same_psnr_noise
    from glazeish.imageio import Artwork, read_image, to_tensor, to_uint8
    from glazeish.protect import Protector
    from glazeish.purify import ImpressPlusPlus

    models = args.models or str(MODELS)
    taef2 = load_encoders("taef2", models, torch.device("cpu"))
    ev = Evaluator(taef2)
    protector = Protector(ProtectConfig(models_dir=models, **CANDIDATES[args.candidates.split(",")[0]]), ensemble=taef2)
    impress = ImpressPlusPlus(taef2.mimic, steps=args.impress_steps)
    paths = [p for _, p in pick_images(args.images)]
    fig, axes = plt.subplots(2 * len(paths), 5, figsize=(12.5, 5.2 * len(paths)))
    for i, path in enumerate(paths):
        rgb = centre_crop(read_image(str(path)).rgb, args.crop)
        cloak = protector.protect(Artwork(rgb=rgb)).rgb
        noise = same_psnr_noise(rgb, mse_levels(cloak, rgb), 0)
        purified = [to_uint8(t[None]) for t in impress(torch.cat([to_tensor(a) for a in (rgb, cloak, noise)]))]
        for row, (label, versions) in enumerate((("as posted", (rgb, cloak, noise)), ("after IMPRESS++", purified))):
            v0, vc, vn = ev.views(*versions)
            diff = lambda v: np.clip(128 + 4 * (v.astype(np.int16) - v0), 0, 255).astype(np.uint8)  # noqa: E731
            cells = [(v0, "original's view"), (vc, "cloak's view"), (vn, "same-PSNR noise's view"),
                     (diff(vc), "cloak's view − original's, ×4"), (diff(vn), "noise's view − original's, ×4")]
            for ax, (img, title) in zip(axes[2 * i + row], cells):
                ax.imshow(img)
                ax.set_title(f"{path.stem[:18]}, {label}: {title}" if ax is axes[2 * i + row][0] else title, fontsize=8)
                ax.axis("off")
    fig.tight_layout()
    fig.savefig(HERE / "views.png", dpi=80)


def fmt(v, d: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


def selected(rows: list[dict], where: str | None, candidates: str | None) -> tuple[list[dict], list[str]]:
    """The rows with ``where`` (``impress_steps:crop``, e.g. ``50:128``; None: all) and the candidates to show:
    those of ``candidates`` (comma-separated; None: every known one) that have rows, in that order."""
    if where:
        steps, crop = (int(v) for v in where.split(":"))
        rows = [r for r in rows if r["impress_steps"] == steps and r["crop"] == crop]
    names = [n for n in (candidates.split(",") if candidates else CANDIDATES) if any(r["candidate"] == n for r in rows)]
    return rows, names


def kinds_table(rows: list[dict], names: list[str]) -> list[str]:
    """Mean (min–max) per candidate and kind of each figure."""
    cols = [("PSNR", "psnr"), ("view PSNR", "view_psnr"), ("gap", "gap"), ("kept after IMPRESS++", "impresspp_kept"),
            ("kept after JPEG q75", "jpeg75_kept"), ("transfer (TAESANA)", "transfer"), ("cloak s", "seconds")]
    if any("cat_kept" in r for r in rows):  # --cat-steps rows
        cols.insert(4, ("kept after CAT", "cat_kept"))
    if any("grain_luma" in r for r in rows):  # rows that carry what a person sees of the change
        cols[-1:-1] = [("grain on flat fills", "grain"), ("its lightness", "grain_luma"), ("ꟻLIP", "flip")]
    if any("noise_only_kept" in r for r in rows):  # --parts rows
        cols[4:4] = [("kept after its noise alone", "noise_only_kept"),
                     ("kept after its consistency steps alone", "consistency_only_kept")]
    lines = ["mean (min–max) per kind; *kept* = share of the view gap over same-PSNR noise left after the purification",
             "", "| candidate | kind | n | " + " | ".join(c for c, _ in cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for n in names:
        for kind in KINDS:
            rs = [r for r in rows if r["candidate"] == n and r["kind"] == kind]
            if not rs:
                continue
            cells = []
            for _, k in cols:
                vs = [r[k] for r in rs if r.get(k) is not None]
                d = 3 if k == "flip" else 2  # ꟻLIP errors of these cloaks lie within 0.04-0.08
                cells.append(f"{fmt(statistics.fmean(vs), d)} ({fmt(min(vs), d)}–{fmt(max(vs), d)})" if vs else "–")
            lines.append(f"| {n} | {kind} | {len(rs)} | " + " | ".join(cells) + " |")
    return lines


def issue16_targets(rows: list[dict], names: list[str]) -> list[str]:
    """Issue 16's targets per candidate: advantage kept after IMPRESS++ and JPEG, transfer."""
    lines = ["issue 16's targets per candidate (advantage kept: share of the gap over same-PSNR noise left):", "",
             "| candidate | kept after IMPRESS++ ≥ 50 %, every image | kept after JPEG q75 ≥ 75 %, paintings (mean) "
             "| transfer ≥ 2×, paintings / drawings (mean) |", "|---|---|---|---|"]
    for n in names:
        rs = [r for r in rows if r["candidate"] == n]
        imp = [r["impresspp_kept"] for r in rs if r.get("impresspp_kept") is not None]
        jp = [r["jpeg75_kept"] for r in rs if r["kind"] == "paintings" and r.get("jpeg75_kept") is not None]
        tp = [r["transfer"] for r in rs if r["kind"] == "paintings"]
        td = [r["transfer"] for r in rs if r["kind"] != "paintings"]
        cell = (f"{sum(v >= 0.5 for v in imp)}/{len(imp)} (max {100 * max(imp):.0f} %, mean {100 * statistics.fmean(imp):.0f} %)"
                if imp else "–")
        lines.append(f"| {n} | {cell} | {100 * statistics.fmean(jp):.0f} % | "
                     f"{statistics.fmean(tp):.2f}× / {statistics.fmean(td):.2f}× |" if jp and tp and td else f"| {n} | {cell} | – | – |")
    return lines


def issue27_targets(rows: list[dict], names: list[str]) -> list[str]:
    """Issue 27's targets per candidate, paintings / drawings (flat and line), means over the images."""
    def mean(n: str, key: str, paintings: bool, scale: float = 1.0) -> str:
        vs = [r[key] for r in rows if r["candidate"] == n and (r["kind"] == "paintings") == paintings
              and r.get(key) is not None]
        return fmt(scale * statistics.fmean(vs), 1 if scale == 1 else 0) if vs else "–"

    def both(n: str, key: str, scale: float = 1.0) -> str:
        return f"{mean(n, key, True, scale)} / {mean(n, key, False, scale)}"

    lines = ["issue 27's targets per candidate, paintings / drawings (means; built on: the candidate's encoders):", "",
             "| candidate | PSNR (≥ 37.5 / 38.5) | grain on flat fills, drawings (≤ 0.5) | gap vs same-PSNR noise (≥ 12) "
             "| gap beyond a tint | kept after IMPRESS++ % (≥ 60 / 40) | TAESANA latent ÷ noise (≥ 2.5 / 1.5 when "
             "built on TAEF2) | TAEF2 latent ÷ noise (≥ 1.5 when built on TAESANA) |", "|---|---|---|---|---|---|---|---|"]
    for n in names:
        lines.append(f"| {n} | {both(n, 'psnr')} | {mean(n, 'grain', False)} | {both(n, 'gap')} | "
                     f"{both(n, 'gap_detinted')} | {both(n, 'impresspp_kept', 100)} | {both(n, 'transfer')} | "
                     f"{both(n, 'latent_ratio')} |")
    return lines


#: the tables of the summary, by the name RESULTS.md's generated blocks give them
TABLES = {"kinds": kinds_table, "issue16": issue16_targets, "issue27": issue27_targets}


def summary(args) -> str:
    rows, names = selected(read_rows(args.out), args.where, args.candidates)
    return "\n".join(kinds_table(rows, names) + [""] + issue16_targets(rows, names) + [""] + issue27_targets(rows, names))


def tables(folder: Path) -> dict:
    """The generated tables of RESULTS.md by name, each ``NAME FILE WHERE CANDIDATES`` (``-``: all)."""
    def table(name: str):
        def make(file: str, where: str = "-", candidates: str = "-") -> str:
            rows, names = selected(read_rows(folder / file), None if where == "-" else where,
                                   None if candidates == "-" else candidates)
            return "\n".join(TABLES[name](rows, names))

        return make

    return {name: table(name) for name in TABLES}


def report(folder: Path = HERE) -> str:
    """RESULTS.md of ``folder`` with every generated table rebuilt from the rows beside it."""
    return regenerate((folder / "RESULTS.md").read_text(), tables(folder))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", nargs="+", default=["paintings:0:12:2", "flat:0:6:2", "line:0:4:2"])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--candidates", default="default,reference,purify,diverse,coarse8")
    ap.add_argument("--impress-steps", type=int, default=50)
    ap.add_argument("--cat-steps", type=int, default=0, help="also CAT-style purification with this many steps")
    ap.add_argument("--models", default=None)
    ap.add_argument("--parts", action="store_true", help="also IMPRESS++'s noise alone and its consistency steps alone")
    ap.add_argument("--out", default=str(HERE / "results.jsonl"))
    ap.add_argument("--summary", action="store_true", help="print the tables of --out instead of running")
    ap.add_argument("--figure", action="store_true", help="draw views.png (the first candidate) instead of running")
    ap.add_argument("--where", default=None, help="--summary: only rows with this impress_steps and crop, e.g. 50:128")
    ap.add_argument("--report", action="store_true",
                    help="rewrite the generated tables of RESULTS.md from the committed rows instead of running")
    args = ap.parse_args()
    if args.report:
        (HERE / "RESULTS.md").write_text(report(HERE))
    elif args.summary:
        print(summary(args))
    elif args.figure:
        figure(args)
    else:
        # idle OpenMP threads sleep instead of spinning (set before torch is imported): see .ci/run
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        run(args)


if __name__ == "__main__":
    main()
