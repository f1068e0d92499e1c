"""Search for a stronger cloak at the same visibility (issue 15), measured with the project's yardstick.

Every candidate is a set of :class:`glazeish.config.ProtectConfig` fields; the cloak is made through
:class:`glazeish.protect.Protector` (as ``glazeish protect`` makes it), saved as an 8-bit PNG, read back and
measured. One JSON row per (image, candidate, crop) goes to ``--out`` (resumable: finished rows are skipped).

The yardstick (all on the 8-bit files):

* visibility: PSNR and SSIM of the cloak against the original (all shared images are opaque), and the RMS
  change on flat pixels (masking activity 0: fills, paper) as a number to watch for grain;
* the mimic's view ``V(x) = D(E(x))`` with TAEF2 on the whole image (reflect-padded to a multiple of 8,
  cropped back): ``view_psnr`` = PSNR(V(cloak), V(x)) (lower = more damage);
* ``gap`` = PSNR(V(noise), V(x)) - view_psnr for Gaussian noise whose clipped, rounded 8-bit result has the
  same MSE as the cloak (glazeish.evaluation.same_psnr_noise, the headline baseline of `glazeish check`); ``gap_linf`` the same for uniform noise of the
  cloak's own L-inf (the older baseline);
* ``jpeg_view_psnr`` = PSNR(V(jpeg75(cloak)), V(jpeg75(x))) after a Pillow JPEG q75 4:2:0 re-save
  (and the same for the Gaussian noise, ``jpeg_gap``);
* ``transfer`` = relative TAESANA latent change of the cloak / that of the same-PSNR noise (not attacked);
* ``seconds``: the cloak (attack + 8-bit rounding) on this machine; compare only as ratios within one run
  (images are the outer loop, candidates the inner one, so load hits every candidate alike).

    python benchmarks/cloak_search/search.py --images paintings:0:12:4 flat:0:6:3 line:0:4:2 --crop 256 \\
        --candidates default,masked --out benchmarks/cloak_search/screen.jsonl
    python benchmarks/cloak_search/search.py --images paintings flat line --candidates default,proposal
    python benchmarks/cloak_search/search.py --summary benchmarks/cloak_search/results.jsonl
    python benchmarks/cloak_search/search.py --figure --candidates default,proposal   # views.png
    python benchmarks/cloak_search/search.py --frontier benchmarks/cloak_search/results.jsonl \\
        benchmarks/cloak_search/presets.jsonl --candidates low,proposal-low,default,high,proposal-high   # frontier.png
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("GLAZEISH_SHARED", ROOT.parent / "shared"))
SCRATCH = ROOT / "benchmarks" / "_scratch" / "cloak_search"  # git-ignored: the cloaked PNGs
KINDS = ("paintings", "flat", "line")
#: visibility and damage targets of the issue, per kind: (PSNR >=, view PSNR <=, gap >=, jpeg view PSNR <=)
TARGETS = {"paintings": (37.5, 25.0, 12.0, 26.0), "flat": (38.5, 20.0, 12.0, None), "line": (38.5, 20.0, 12.0, None)}

# Candidates, in the search's own units (translated by make_config): ``eps`` = the flat L∞ bound, or for the
# masked budget the map's RMS (the L∞ bound is then eps·budget_cap); ``rms`` the energy bound and ``alpha`` the
# first step, all in 1/255. Fields not given are the *previous* default's (eps 4, 6 steps, mimic, identity+JPEG
# EOT, flat budget), on top of which the search ran; "default" is whatever the library's default is now (since
# the search: "proposal"), and rows of the earlier default are labelled "previous-default".
PREVIOUS_DEFAULT = dict(eps=4, steps=6, objective="mimic", robust="identity,jpeg", budget="flat", budget_floor=0.25,
                        transform_order="random")
CANDIDATES: dict[str, dict] = {
    "default": {"library": True},
    "previous-default": {},
    # --- round 1: budget shape, optimiser, objective (6 steps, JPEG EOT as the default) ---
    "rms3-flat8-l2": dict(eps=8, rms=3.0, optimizer="l2", alpha=6),
    "masked3": dict(eps=3.0, budget="masked"),
    "masked3-cap2": dict(eps=3.0, budget="masked", budget_cap=2.0),
    "masked3-l2": dict(eps=3.0, budget="masked", optimizer="l2", alpha=6),
    "masked3-mom": dict(eps=3.0, budget="masked", momentum=0.75),
    "masked3-adam": dict(eps=3.0, budget="masked", optimizer="adam"),
    "masked3-away": dict(eps=3.0, budget="masked", objective="mimic-away"),
    "flat4-away": dict(objective="mimic-away"),
    # --- round 2: the untargeted view objective with a masked budget whose energy is capped at PSNR ~38.5 ---
    "away-m4-r3": dict(eps=4, rms=3.0, budget="masked", objective="mimic-away"),
    "away-m4-r3-f50": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="mimic-away"),
    "away-m4-r3-f50-c4": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, budget_cap=4, objective="mimic-away"),
    "away-m4-r3-l2": dict(eps=4, rms=3.0, budget="masked", optimizer="l2", alpha=6, objective="mimic-away"),
    "away-flat4-s12": dict(objective="mimic-away", steps=12),
    "latent-away-s18": dict(objective="untargeted", steps=18),
    "away-m4-r3-noeot": dict(eps=4, rms=3.0, budget="masked", objective="mimic-away", robust=""),
    # --- round 3: cheaper steps (decoder stopped part-way), more of them; momentum ---
    "fa11-m4-r3-f50-s12": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="feature-away", steps=12),
    "away-m4-r3-f50-s12": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="mimic-away", steps=12),
    "away-m4-r3-f50-mom": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="mimic-away", momentum=0.5),
    # --- round 4: 8 steps; energy; EOT share; first step size ---
    "away-m4-r3-f50-s8": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8),
    "away-m4-r335-f50-s8": dict(eps=4, rms=3.35, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8),
    "away-m4-r3-f50-s8-eot3": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8,
                                   robust="identity,identity,jpeg"),
    "away-m4-r3-f50-s8-a6": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8,
                                 alpha=6),
    # --- round 5: step schedule (big steps = sign power iteration), multi-scale steps ---
    "away-m4-r3-f50-s8-const2": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8,
                                     schedule="constant", alpha=24),
    "away-m4-r3-f50-s8-const1": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8,
                                     schedule="constant", alpha=12),
    "away-m4-r3-f50-s8-coarse8": dict(eps=4, rms=3.0, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8,
                                      coarse=8),
    # --- round 6: a fixed, balanced EOT order instead of the seeded random draw (seed 0 draws JPEG for
    # 5 of the first 6 steps), energy 2.95 (8-bit rounding adds a little MSE) ---
    "away-s8-cycJI": dict(eps=4, rms=2.95, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8,
                          robust="jpeg,identity", transform_order="cycle"),
    "away-s8-cycJ5I3": dict(eps=4, rms=2.95, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8,
                            robust="jpeg,jpeg,jpeg,jpeg,jpeg,identity,identity,identity", transform_order="cycle"),
    # --- round 7: a structured first step (toward the decoy), Adam ---
    "decoy1-s8-cycJI": dict(eps=4, rms=2.95, budget="masked", budget_floor=0.5, objective="decoy-then-away", steps=8,
                            robust="jpeg,identity", transform_order="cycle"),
    "away-s8-cycJI-adam": dict(eps=4, rms=2.95, budget="masked", budget_floor=0.5, objective="mimic-away", steps=8,
                               robust="jpeg,identity", transform_order="cycle", optimizer="adam"),
    # --- the proposal (= away-s8-cycJI) and proposed low / high presets ---
    "proposal": dict(eps=4, rms=2.95, budget="masked", budget_floor=0.5, budget_cap=3.0, objective="mimic-away", steps=8,
                     robust="jpeg,identity", transform_order="cycle"),
    "proposal-low": dict(eps=3.5, rms=2.5, budget="masked", budget_floor=0.5, budget_cap=3.0, objective="mimic-away",
                         steps=6, robust="jpeg,identity", transform_order="cycle"),
    "proposal-high": dict(eps=5, rms=3.35, budget="masked", budget_floor=0.5, budget_cap=3.0, objective="mimic-away",
                          steps=12, robust="jpeg,identity", transform_order="cycle"),
    "proposal-high-r4": dict(eps=5, rms=4.0, budget="masked", budget_floor=0.5, budget_cap=3.0, objective="mimic-away",
                             steps=12, robust="jpeg,identity", transform_order="cycle"),
    # --- the low / high presets before this search re-tuned them (on the same-L∞ yardstick); since then the
    # library's low / high are proposal-low / proposal-high ---
    "previous-low": dict(eps=3, robust=""),
    "previous-high": dict(eps=6, steps=12),
    "low": {"library": True, "intensity": "low"},
    "high": {"library": True, "intensity": "high"},
    "fast": {"library": True, "intensity": "fast"},
    # --- issue 19: the default from the learned start (glazeish.warmstart) with fewer steps, next to the same
    # step counts from PGD's random start (is it the start or just fewer steps?) ---
    "learned-s0": {"library": True, "start": "learned", "steps": 0},
    "learned-s2": {"library": True, "start": "learned", "steps": 2},
    "learned-s2-a4": {"library": True, "start": "learned", "steps": 2, "alpha_levels": 4},
    "learned-s3-a4": {"library": True, "start": "learned", "steps": 3, "alpha_levels": 4},
    "learned-s4-a4": {"library": True, "start": "learned", "steps": 4, "alpha_levels": 4},
    "learned-s3": {"library": True, "start": "learned", "steps": 3},
    "learned-s4": {"library": True, "start": "learned", "steps": 4},
    "learned-s6": {"library": True, "start": "learned", "steps": 6},
    "random-s4": {"library": True, "steps": 4},
    "random-s6": {"library": True, "steps": 6},
    "random-s2": {"library": True, "steps": 2},
    "random-s3": {"library": True, "steps": 3},
    # a pattern trained on the paintings of the train split only (benchmarks/amortised/train.py --kinds paintings
    # --procedural 0 --out benchmarks/_scratch/amortised/paintings.png): is the start what paintings lack?
    "paintings-pattern-s0": {"library": True, "start": str(ROOT / "benchmarks/_scratch/amortised/paintings.png"),
                             "steps": 0},
    "paintings-pattern-s4": {"library": True, "start": str(ROOT / "benchmarks/_scratch/amortised/paintings.png"),
                             "steps": 4},
}


# ---------------------------------------------------------------------------------------------------------
# images


def pick_images(specs: list[str]) -> list[Path]:
    """``paintings`` / ``flat:0:6:2`` (a Python slice of the sorted folder) / a file path."""
    out: list[Path] = []
    for spec in specs:
        kind, *sl = spec.split(":")
        if kind in KINDS:
            files = sorted((SHARED / "images" / kind).glob("*.png"))
            if sl:
                files = files[slice(*[int(s) if s else None for s in sl])]
            out += files
        else:
            out.append(Path(spec))
    return out


def centre_crop(rgb: np.ndarray, size: int | None) -> np.ndarray:
    if not size:
        return rgb
    h, w = rgb.shape[:2]
    ch, cw = min(size, h) // 8 * 8, min(size, w) // 8 * 8
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(rgb[top : top + ch, left : left + cw])


def png_roundtrip(rgb: np.ndarray, path: Path | None = None) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()


def jpeg(rgb: np.ndarray, quality: int = 75) -> np.ndarray:
    """Pillow JPEG re-save, 4:2:0 chroma subsampling."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=2)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()


# ---------------------------------------------------------------------------------------------------------
# the yardstick


def mse8(a: np.ndarray, b: np.ndarray) -> float:
    from glazeish.evaluation.baselines import mse_levels

    return mse_levels(a, b)


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    m = mse8(a, b)
    return float("inf") if m == 0 else 10 * math.log10(255.0**2 / m)


class Yardstick:
    """TAEF2 view and TAESANA latent of whole 8-bit images (fp32, no tiling: the GroupNorm is global)."""

    def __init__(self, models_dir: str):
        import torch

        from glazeish.encoders import load_encoder

        self.torch = torch
        self.taef2 = load_encoder("taef2", models_dir)
        self.sana = load_encoder("taesana", models_dir)

    def _pad(self, rgb: np.ndarray, m: int):
        import torch.nn.functional as F

        from glazeish.imageio import to_tensor

        x = to_tensor(rgb)
        h, w = x.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        return x.contiguous(memory_format=self.torch.channels_last), h, w

    def views(self, *images: np.ndarray) -> list[np.ndarray]:
        """V = D(E(x)) of each image, float32 H×W×3 in [0, 1]."""
        out = []
        with self.torch.no_grad():
            for rgb in images:
                x, h, w = self._pad(rgb, 8)
                v = self.taef2.decode(self.taef2.encode(x))[0, :, :h, :w].float().clamp(0, 1)
                out.append(v.permute(1, 2, 0).numpy())
        return out

    def sana_latents(self, *images: np.ndarray) -> list[np.ndarray]:
        out = []
        with self.torch.no_grad():
            for rgb in images:
                x, _, _ = self._pad(rgb, 32)
                out.append(self.sana.encode(x).float().numpy())
        return out


def vpsnr(a: np.ndarray, b: np.ndarray) -> float:
    m = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if m == 0 else 10 * math.log10(1.0 / m)


def flat_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels with no masking activity (flat fills, paper): where grain is easiest to see."""
    from glazeish.budget import masking_activity
    from glazeish.imageio import to_tensor

    act = masking_activity(to_tensor(rgb))[0, 0].numpy()
    return act < 1.0 / 255


def ssim8(a: np.ndarray, b: np.ndarray) -> float:
    from glazeish import metrics
    from glazeish.imageio import to_tensor

    return float(metrics.ssim(to_tensor(a), to_tensor(b))[0])


class Clean:
    """Per-image figures that do not depend on the candidate (computed once)."""

    def __init__(self, ys: Yardstick, x: np.ndarray):
        self.x = x
        self.xj = jpeg(x)
        self.v, self.vj = ys.views(x, self.xj)
        (self.zs,) = ys.sana_latents(x)
        self.flat = flat_mask(x)


def measure(ys: Yardstick, clean: Clean, cloak: np.ndarray, seed: int = 0) -> dict:
    from glazeish.evaluation.baselines import same_psnr_noise, uniform_noise

    x = clean.x
    d = cloak.astype(np.int16) - x.astype(np.int16)
    linf = int(np.abs(d).max())
    m = mse8(cloak, x)
    noise = same_psnr_noise(x, m, seed)  # the library's headline baseline, as glazeish check draws it
    sigma = float(np.std(noise.astype(np.float64) - x))
    unif = uniform_noise(x, linf, seed) if linf > 0 else x.copy()
    vc, vn, vu, vcj, vnj = ys.views(cloak, noise, unif, jpeg(cloak), jpeg(noise))
    zc, zn = ys.sana_latents(cloak, noise)
    zz = float(np.linalg.norm(clean.zs))
    view = vpsnr(vc, clean.v)
    view_noise = vpsnr(vn, clean.v)
    jv, jvn = vpsnr(vcj, clean.vj), vpsnr(vnj, clean.vj)
    fl = clean.flat
    return {
        "psnr": psnr8(cloak, x),
        "ssim": ssim8(cloak, x),
        "linf": linf,
        "rms_levels": math.sqrt(m),
        "flat_share": float(fl.mean()),
        "flat_rms": float(np.sqrt((d[fl].astype(np.float64) ** 2).mean())) if fl.any() else 0.0,
        "noise_sigma": sigma,
        "noise_psnr": psnr8(noise, x),
        "view_psnr": view,
        "view_psnr_noise": view_noise,
        "gap": view_noise - view,
        "gap_linf": vpsnr(vu, clean.v) - view,
        "jpeg_view_psnr": jv,
        "jpeg_view_psnr_noise": jvn,
        "jpeg_gap": jvn - jv,
        "transfer": float(np.linalg.norm(zc - clean.zs) / zz) / max(float(np.linalg.norm(zn - clean.zs) / zz), 1e-12),
    }


# ---------------------------------------------------------------------------------------------------------
# running


def register_experiments() -> None:
    """Objectives tried here that did not make it into the library (kept so their rows can be re-run)."""
    import torch

    from glazeish.objectives import OBJECTIVES, Objective, Untargeted, _per_image_mse, register_objective

    if "feature-away" in OBJECTIVES:
        return

    @register_objective
    class FeatureAway(Objective):
        """Push the decoder's inner features of ``E(x')`` away from those of ``E(x)``: the untargeted view
        objective, stopped part-way through the decoder.

        The full-resolution layers are most of a decoder's cost, so stopping at ``depth`` (modules of a
        ``nn.Sequential`` decoder; TAEF2: 11 = after the 1/4-resolution blocks, 16 = after the 1/2-resolution
        ones) makes each step much cheaper while the features still decide what the decoder draws.
        Decoders that are not ``nn.Sequential`` run whole (then this equals ``mimic-away``).
        """

        name = "feature-away"
        description = "push the decoder's 1/4-resolution features of E(x) away from the clean ones (cheaper mimic-away)"
        needs_decoder = True

        def __init__(self, target: torch.Tensor | None = None, depth: int = 11):
            self.depth = depth

        def setup(self, model, x):
            if not model.has_decoder:
                return Untargeted().setup(model, x)
            dec = model.decoder
            head = dec[: self.depth] if isinstance(dec, torch.nn.Sequential) else model.decode
            with torch.no_grad():
                f0 = head(model.encode(x)).float()
                base = f0.square().flatten(1).mean(1).clamp_min(1e-8)
            return lambda xa: 1 - _per_image_mse(head(model.encode(xa)), f0) / base

    from glazeish.objectives import MimicAway, MimicView

    @register_objective
    class DecoyThenAway(Objective):
        """The first ``warm`` steps pull the view toward the decoy stripes (a gradient that is not zero at
        the clean image), the rest push it away from the clean view."""

        name = "decoy-then-away"
        description = "first step toward the decoy, then away from the clean view"
        needs_decoder = True

        def __init__(self, target=None, warm: int = 1):
            self.target, self.warm = target, warm

        def setup(self, model, x):
            toward = MimicView(self.target).at(*self.origin).setup(model, x)
            away = MimicAway().setup(model, x)
            calls = [0]

            def loss(xa):
                calls[0] += 1
                return toward(xa) if calls[0] <= self.warm else away(xa)

            return loss


def make_config(name: str, models_dir: str, precision: str):
    """The candidate as a :class:`ProtectConfig` (search units translated: see CANDIDATES)."""
    from glazeish.config import ProtectConfig

    register_experiments()
    fixed = dict(models_dir=models_dir, device="cpu", precision=precision, encoder="taef2")
    spec = dict(CANDIDATES[name])
    if spec.pop("library", False):
        return ProtectConfig(**fixed, **spec)
    spec = {**PREVIOUS_DEFAULT, **spec}
    if spec["budget"] == "masked":
        spec["eps"] = spec["eps"] * spec.setdefault("budget_cap", 3.0)
    rename = {"eps": "eps_levels", "rms": "rms_levels", "alpha": "alpha_levels"}
    return ProtectConfig(**fixed, **{rename.get(k, k): v for k, v in spec.items()})


def run(args) -> None:
    import torch

    from glazeish.imageio import Artwork, read_image
    from glazeish.protect import Protector

    torch.set_num_threads(args.threads)
    names = args.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        sys.exit(f"unknown candidates: {', '.join(unknown)}; known: {', '.join(CANDIDATES)}")
    files = pick_images(args.images)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        done = {(r["image"], r["candidate"], r["crop"]) for r in map(json.loads, out.read_text().splitlines())}
    ys = Yardstick(args.models)
    protectors: dict[str, Protector] = {}
    with open(out, "a") as log:
        for f in files:
            todo = [n for n in names if (f.name, n, args.crop) not in done]
            if not todo:
                continue
            x = centre_crop(read_image(f).rgb, args.crop)
            clean = Clean(ys, x)
            for name in todo:
                if name not in protectors:
                    protectors[name] = Protector(make_config(name, args.models, args.precision))
                p = protectors[name]
                t0 = time.perf_counter()
                res = p.protect(Artwork(rgb=x))
                secs = time.perf_counter() - t0
                path = SCRATCH / f"{name}" / f"{args.crop or 'full'}" / f"{f.stem}.png"
                cloak = png_roundtrip(res.rgb, path)
                row = {"image": f.name, "kind": f.parent.name, "candidate": name, "crop": args.crop,
                       "width": x.shape[1], "height": x.shape[0], "config": p.config.fingerprint(),
                       "precision": args.precision, "seconds": round(secs, 3),
                       **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in measure(ys, clean, cloak).items()}}
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(f"{f.name[:24]:24s} {name:18s} psnr {row['psnr']:.2f} view {row['view_psnr']:.2f} "
                      f"gap {row['gap']:.2f} jpeg {row['jpeg_view_psnr']:.2f} flat_rms {row['flat_rms']:.2f} "
                      f"tr {row['transfer']:.2f} {secs:.1f}s", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# summary tables


def _stats(vals: list[float]) -> str:
    return f"{statistics.mean(vals):.2f} ({min(vals):.2f}–{max(vals):.2f})"


def summarise(rows: list[dict], candidates: list[str] | None = None, baseline: str = "previous-default") -> str:
    crops = sorted({r["crop"] or 0 for r in rows})
    cands = candidates or list(dict.fromkeys(r["candidate"] for r in rows))
    lines = []
    for crop in crops:
        rs = [r for r in rows if (r["crop"] or 0) == crop]
        lines += [f"### {'full size' if not crop else f'{crop}² centre crops'}", "",
                  "mean (min–max) per kind; `time ×` = mean seconds ÷ the baseline's on the same images in the same run",
                  "", "| candidate | kind | n | PSNR | SSIM | flat RMS | view PSNR | gap | gap (L∞ noise) | JPEG view PSNR | transfer | time × |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in cands:
            for kind in KINDS:
                sel = [r for r in rs if r["candidate"] == c and r["kind"] == kind]
                if not sel:
                    continue
                base = {r["image"]: r["seconds"] for r in rs if r["candidate"] == baseline and r["kind"] == kind}
                both = [r for r in sel if r["image"] in base]
                ratio = (sum(r["seconds"] for r in both) / sum(base[r["image"]] for r in both)) if both else float("nan")
                ratio_s = f"{ratio:.2f}" if not crop else "—"  # screening rounds ran at different loads
                col = lambda k: _stats([r[k] for r in sel])  # noqa: E731
                lines.append(f"| {c} | {kind} | {len(sel)} | {col('psnr')} | {statistics.mean(r['ssim'] for r in sel):.4f} | "
                             f"{col('flat_rms')} | {col('view_psnr')} | {col('gap')} | {col('gap_linf')} | "
                             f"{col('jpeg_view_psnr')} | {statistics.mean(r['transfer'] for r in sel):.2f} | {ratio_s} |")
        lines.append("")
    return "\n".join(lines)


def per_image(rows: list[dict], cands: list[str]) -> str:
    lines = ["| image | kind | " + " | ".join(f"{c}: PSNR / view / gap / JPEG view / s" for c in cands) + " |",
             "|---|---|" + "---|" * len(cands)]
    imgs = list(dict.fromkeys(r["image"] for r in rows if r["candidate"] in cands))
    for im in imgs:
        cells = []
        kind = ""
        for c in cands:
            r = next((r for r in rows if r["image"] == im and r["candidate"] == c), None)
            if r is None:
                cells.append("—")
                continue
            kind = r["kind"]
            cells.append(f"{r['psnr']:.2f} / {r['view_psnr']:.2f} / {r['gap']:.2f} / {r['jpeg_view_psnr']:.2f} / {r['seconds']:.1f}")
        lines.append(f"| {im[:40]} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_met(rows: list[dict], cand: str) -> str:
    lines = ["| target | kind | met on | worst |", "|---|---|---|---|"]
    for kind, (p, v, g, j) in TARGETS.items():
        sel = [r for r in rows if r["candidate"] == cand and r["kind"] == kind]
        if not sel:
            continue
        checks = [("PSNR ≥ %.1f" % p, lambda r: r["psnr"] >= p, min(r["psnr"] for r in sel)),
                  ("view PSNR ≤ %.0f" % v, lambda r: r["view_psnr"] <= v, max(r["view_psnr"] for r in sel)),
                  ("gap ≥ %.0f" % g, lambda r: r["gap"] >= g, min(r["gap"] for r in sel))]
        if j is not None:
            checks.append(("JPEG view PSNR ≤ %.0f" % j, lambda r: r["jpeg_view_psnr"] <= j, max(r["jpeg_view_psnr"] for r in sel)))
        for label, ok, worst in checks:
            lines.append(f"| {label} | {kind} | {sum(map(ok, sel))}/{len(sel)} | {worst:.2f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# the frontier: visibility against damage, one point per candidate and kind


def frontier(rows: list[dict], cands: list[str], dest: Path) -> None:
    """PSNR (visibility) against the view PSNR (absolute damage) and the gap vs same-PSNR noise, one marker per
    candidate and kind (mean, bars = min–max over images); the noise of the same PSNR drawn for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(KINDS), figsize=(4.2 * len(KINDS), 7.5), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, kind in enumerate(KINDS):
        for i, c in enumerate(cands):
            sel = [r for r in rows if r["candidate"] == c and r["kind"] == kind and not r["crop"]]
            if not sel:
                continue
            x = [r["psnr"] for r in sel]
            for ax, key in zip(axes[:, j], ("view_psnr", "gap")):
                y = [r[key] for r in sel]
                mx, my = statistics.mean(x), statistics.mean(y)
                ax.errorbar(mx, my, xerr=[[mx - min(x)], [max(x) - mx]], yerr=[[my - min(y)], [max(y) - my]],
                            fmt="o", color=colours[i % len(colours)], label=c if j == 0 and key == "gap" else None,
                            capsize=3)
                if key == "view_psnr":
                    ax.annotate(c, (mx, my), textcoords="offset points", xytext=(5, 4), fontsize=7)
            noise = [r["view_psnr"] + r["gap"] for r in sel]  # same-PSNR noise's view PSNR
            axes[0, j].scatter([statistics.mean(x)], [statistics.mean(noise)], marker="x", color="grey",
                               label="same-PSNR noise" if i == 0 else None)
        axes[0, j].set_title(kind)
        axes[0, j].set_ylabel("mimic view vs clean view, dB (lower = more damage)")
        axes[1, j].set_ylabel("gap vs same-PSNR noise, dB")
        axes[1, j].set_xlabel("PSNR of the cloak, dB (higher = less visible)")
        if kind in TARGETS:
            p, v, g, _ = TARGETS[kind]
            axes[0, j].axhline(v, ls=":", color="k", lw=0.8)
            axes[1, j].axhline(g, ls=":", color="k", lw=0.8)
            for ax in axes[:, j]:
                ax.axvline(p, ls=":", color="k", lw=0.8)
    axes[1, 0].legend(fontsize=7, loc="best")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle("Presets and candidates, full-size shared images (dotted: issue 15's targets)")
    fig.tight_layout()
    fig.savefig(dest, dpi=110)


# ---------------------------------------------------------------------------------------------------------
# the picture


def figure(args) -> None:
    """1:1 crops (original, cloak, V(original), V(cloak), V(same-PSNR noise)) for two candidates."""
    import torch
    from PIL import Image, ImageDraw

    from glazeish.evaluation.baselines import same_psnr_noise
    from glazeish.imageio import read_image

    torch.set_num_threads(args.threads)
    cands = args.candidates.split(",")
    ys = Yardstick(args.models)
    picks = args.figure_images or ["paintings:0:1", "flat:0:1", "line:0:1"]
    files = pick_images(picks)
    c = args.figure_crop
    label_h = 16
    rows_img = []
    for f in files:
        x = read_image(f).rgb
        h, w = x.shape[:2]
        top, left = (h - c) // 2, (w - c) // 2
        cut = lambda a: a[top : top + c, left : left + c]  # noqa: E731
        (vx,) = ys.views(x)
        for cand in cands:
            path = SCRATCH / cand / "full" / f"{f.stem}.png"
            cloak = np.asarray(Image.open(path).convert("RGB"))
            noise = same_psnr_noise(x, mse8(cloak, x), 0)
            vc, vn = ys.views(cloak, noise)
            to8 = lambda v: (np.clip(v, 0, 1) * 255).round().astype(np.uint8)  # noqa: E731
            tiles = [cut(x), cut(cloak), cut(to8(vx)), cut(to8(vc)), cut(to8(vn))]
            labels = ["original", f"cloak {psnr8(cloak, x):.1f} dB", "V(original)",
                      f"V(cloak) {vpsnr(vc, vx):.1f} dB", f"V(noise) {vpsnr(vn, vx):.1f} dB"]
            rows_img.append((f"{cand}: {f.stem[:28]}", tiles, labels))
    ncol = 5
    W, H = ncol * (c + 4), len(rows_img) * (c + 2 * label_h + 4)
    canvas = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(canvas)
    for i, (title, tiles, labels) in enumerate(rows_img):
        y = i * (c + 2 * label_h + 4)
        d.text((2, y + 1), title, fill="black")
        for j, (t, lab) in enumerate(zip(tiles, labels)):
            canvas.paste(Image.fromarray(t), (j * (c + 4), y + label_h))
            d.text((j * (c + 4) + 2, y + label_h + c + 1), lab, fill="black")
    out = Path(args.figure_out)
    canvas.save(out)
    print(f"wrote {out}", file=sys.stderr)


def timing(args) -> None:
    """Attack time of each candidate as a ratio to the first one's: rounds of all candidates interleaved on
    one image (load drifts hit all alike), the median of ``--timing`` rounds; rows go to ``timing.jsonl``."""
    import torch

    from glazeish.imageio import Artwork, read_image
    from glazeish.protect import Protector

    torch.set_num_threads(args.threads)
    names = args.candidates.split(",")
    f = pick_images(args.images)[0]
    x = centre_crop(read_image(f).rgb, args.crop)
    ps = {n: Protector(make_config(n, args.models, args.precision)) for n in names}
    ps[names[0]].protect(Artwork(rgb=x))  # warm-up
    secs: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.timing):
        for n in names:
            t0 = time.perf_counter()
            ps[n].protect(Artwork(rgb=x))
            secs[n].append(time.perf_counter() - t0)
    base = statistics.median(secs[names[0]])
    with open(HERE / "timing.jsonl", "a") as log:
        for n in names:
            med = statistics.median(secs[n])
            row = {"image": f.name, "width": x.shape[1], "height": x.shape[0], "candidate": n, "baseline": names[0],
                   "rounds": args.timing, "seconds": [round(v, 3) for v in secs[n]], "median": round(med, 3),
                   "ratio": round(med / base, 3), "threads": args.threads, "precision": args.precision}
            log.write(json.dumps(row) + "\n")
            print(f"{n:24s} median {med:.2f}s  ratio {med / base:.2f}  {[round(v, 2) for v in secs[n]]}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="*", default=list(KINDS), help="kinds (paintings, flat:0:6:2) or files")
    ap.add_argument("--candidates", default="default", help=f"comma-separated, from: {', '.join(CANDIDATES)}")
    ap.add_argument("--out", default=str(HERE / "results.jsonl"))
    ap.add_argument("--crop", type=int, default=0, help="centre crop to at most N×N px (screening); 0 = full size")
    ap.add_argument("--models", default=os.environ.get("GLAZEISH_MODELS", str(SHARED / "models")))
    ap.add_argument("--precision", default="bf16",
                    help="fixed (not 'auto', whose choice follows the CPU's native support)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--summary", metavar="JSONL", help="print the summary tables of a results file and exit")
    ap.add_argument("--per-image", default="", help="with --summary: candidates for the per-image table")
    ap.add_argument("--baseline", default="previous-default", help="with --summary: the candidate `time ×` divides by")
    ap.add_argument("--frontier", nargs="*", metavar="JSONL", help="draw the frontier of --candidates from results files")
    ap.add_argument("--frontier-out", default=str(HERE / "frontier.png"))
    ap.add_argument("--figure", action="store_true", help="draw views.png from the saved full-size cloaks")
    ap.add_argument("--figure-images", nargs="*")
    ap.add_argument("--figure-crop", type=int, default=192)
    ap.add_argument("--figure-out", default=str(HERE / "views.png"))
    ap.add_argument("--timing", type=int, default=0, metavar="ROUNDS",
                    help="time the candidates (first = baseline) on the first image, interleaved, and exit")
    args = ap.parse_args()
    if args.frontier:
        rows = [json.loads(l) for f in args.frontier for l in Path(f).read_text().splitlines()]
        frontier(rows, args.candidates.split(","), Path(args.frontier_out))
        return
    if args.summary:
        rows = [json.loads(l) for l in Path(args.summary).read_text().splitlines()]
        print(summarise(rows, baseline=args.baseline))
        if args.per_image:
            cands = args.per_image.split(",")
            print(per_image([r for r in rows if not r["crop"]], cands))
            for c in cands:
                print(f"\ntargets, {c}:\n")
                print(targets_met([r for r in rows if not r["crop"]], c))
        return
    if args.figure:
        figure(args)
        return
    if args.timing:
        timing(args)
        return
    run(args)


if __name__ == "__main__":
    main()
