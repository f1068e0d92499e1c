"""What the protection words mean in pictures: the mimic's views of every shared image, to look at (issue 28).

For each shared image at its own size: the default cloak (seed 0) and noise of the same PSNR, the mimic's views
``D(E(·))`` of the original, the cloak and the noise, and the cloak's view with its per-channel colour
statistics moved to the clean view's (what is left beyond a tint). One JSON row per image (the figures
:func:`glazeish.evaluation.assess` gives, and the words :func:`glazeish.evaluation.judge` says), and one strip
per image at 1:1 — clean view | cloak view | cloak view de-tinted | noise view, a 256 px crop from the centre —
gathered into one grid per protection word (``grid-<word>.jpg``, JPEG q80: the strips themselves are kept out of
the repository), so that each word can be checked against what a person sees.

    python benchmarks/verdicts/calibrate.py             # rows.jsonl and the grids, ~1 min per image on 2 cores
    python benchmarks/verdicts/calibrate.py --grids     # the grids and RESULTS.md again from the strips and rows
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import MODELS, pick_images  # noqa: E402

from glazeish.config import ProtectConfig  # noqa: E402
from glazeish.evaluation import Evaluator, assess, judge  # noqa: E402
from glazeish.evaluation.baselines import baselines  # noqa: E402
from glazeish.imageio import read_image, to_tensor  # noqa: E402
from glazeish.metrics import match_colour_stats  # noqa: E402
from glazeish.protect import Protector  # noqa: E402

CROP = 256


def centre(a: np.ndarray, size: int = CROP) -> np.ndarray:
    h, w = a.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return a[top:top + size, left:left + size]


def strip(ev: Evaluator, x: np.ndarray, cloak: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """clean view | cloak view | cloak view de-tinted | noise view, centre crops at 1:1, 4 px apart."""
    v0, vc, vn = ev.views(x, cloak, noise)
    detinted = match_colour_stats(to_tensor(vc), to_tensor(v0))[0]
    vd = (detinted.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    parts = [centre(v) for v in (v0, vc, vd, vn)]
    gap = np.full((parts[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([p for v in parts for p in (v, gap)][:-1], axis=1)


def run(out: Path) -> None:
    rows_path = out / "rows.jsonl"
    done = {json.loads(line)["image"] for line in rows_path.read_text().splitlines()} if rows_path.exists() else set()
    config = ProtectConfig(models_dir=str(MODELS)).resolved()
    protector = Protector(config)
    ev = Evaluator(protector.ensemble, precision="fp32")
    (out / "strips").mkdir(parents=True, exist_ok=True)
    for kind, path in pick_images(["paintings", "flat", "line"]):
        if path.name in done:
            continue
        art = read_image(path)
        cloak = protector.protect(art).rgb
        fig = assess(art.rgb, cloak, ev, eps_levels=config.eps_levels, purifications=(), flip=("cloak",))
        noise, _ = baselines(art.rgb, cloak, config.eps_levels, 0, None)
        Image.fromarray(strip(ev, art.rgb, cloak, noise)).save(out / "strips" / f"{path.stem}.png")
        s, v = fig.summary, judge(fig)
        row = {"image": path.name, "kind": kind, "psnr": fig.before.cloak.psnr, "view_psnr": s.view_psnr,
               "view_psnr_detinted": s.view_psnr_detinted, "gap": s.view_gap, "gap_detinted": s.view_gap_detinted,
               "noise_view_psnr": fig.before.noise.view_psnr, "grain": s.grain, "flip": fig.before.cloak.flip,
               "view_flip": s.view_flip, "visibility": v.visibility, "protection": v.protection}
        with rows_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    grids(out)


def words(row: dict) -> tuple[str, str]:
    """The visibility and protection keys today's verdict tables give a row's figures (the rows keep the words
    said when they were measured; these follow the thresholds)."""
    from glazeish.evaluation import verdicts

    level = verdicts.protection(row["view_psnr"], row["gap"], detinted=row["view_psnr_detinted"],
                                view_flip=row.get("view_flip"))
    return verdicts.visibility(row["psnr"], row["grain"]).key, level.key if level else "none"


def load_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def grids(out: Path) -> None:
    """One picture per protection word: the strips of the images that get it, one under the other."""
    rows = load_rows(out)
    wanted = sorted({words(r)[1] for r in rows})
    for word in wanted:
        strips = [np.asarray(Image.open(out / "strips" / f"{Path(r['image']).stem}.png").convert("RGB"))
                  for r in rows if words(r)[1] == word]
        width = max(s.shape[1] for s in strips)
        padded = [np.pad(s, ((0, 6), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips]
        Image.fromarray(np.concatenate(padded, axis=0)).save(out / f"grid-{word.replace(' ', '-')}.jpg", quality=80)
    for stale in set(out.glob("grid-*.jpg")) - {out / f"grid-{w.replace(' ', '-')}.jpg" for w in wanted}:
        stale.unlink()


def results(out: Path) -> None:
    """RESULTS.md from the rows: per image the view's change, what is left beyond a tint, the views' ꟻLIP and the
    words today's thresholds give them."""
    from glazeish.evaluation.verdicts import FLIP_VISIBLE, TINT_SHARE, tint_share

    rows = load_rows(out)
    lines = ["# The protection words against the pictures (issue 28)\n",
             "`python benchmarks/verdicts/calibrate.py` — every shared image at its own size, the default preset (seed 0). "
             "*view*: the mimic's view of the cloak against the original's, dB; *beyond a tint*: the same once the "
             "cloak view's per-channel colour statistics match the clean view's; *colour share*: the part of the "
             "view's squared error that this removes; *ꟻLIP*: the mean ꟻLIP error between the two views (how "
             "visible the copy's change is to a person). From a colour share of "
             f"{TINT_SHARE:.0%} a change that is weaker beyond the colours is called *tint*; below a ꟻLIP of "
             f"{FLIP_VISIBLE:g} it is at most *subtle*. The grids `grid-<word>.jpg` show, per protection word, the "
             "centre 256 px of each image's views at 1:1: clean | cloak | cloak de-tinted | same-PSNR noise. "
             "`--grids` rebuilds the grids and this page from the committed rows and the (uncommitted) strips.\n",
             "| image | kind | view | beyond a tint | colour share | ꟻLIP | gap vs noise | grain | visibility | protection |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share = tint_share(r["view_psnr"], r["view_psnr_detinted"])
        grain = "–" if r["grain"] is None else f"{r['grain']:.2f}"
        flip = "–" if r.get("view_flip") is None else f"{r['view_flip']:.3f}"
        vis, prot = words(r)
        lines.append(f"| {r['image'][:40]} | {r['kind']} | {r['view_psnr']:.1f} | {r['view_psnr_detinted']:.1f} | "
                     f"{share:.0%} | {flip} | {r['gap']:.1f} | {grain} | {vis} | {prot} |")
    lines.append("")
    for kind in ("paintings", "flat", "line"):
        ks = [words(r)[1] for r in rows if r["kind"] == kind]
        if ks:
            counts = ", ".join(f"{w} {ks.count(w)}" for w in dict.fromkeys(sorted(ks)))
            lines.append(f"{kind} ({len(ks)}): {counts}.\n")
    (out / "RESULTS.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", action="store_true", help="only rebuild the grids from the strips and rows")
    ap.add_argument("--out", type=Path, default=HERE)
    a = ap.parse_args()
    torch.manual_seed(0)
    grids(a.out) if a.grids else run(a.out)
    results(a.out)


if __name__ == "__main__":
    main()
