"""Example crops and measured trade-offs of the intensity presets, for the web page's preset chooser.

    python benchmarks/preset_examples.py [--models DIR] [--images DIR]

Cloaks a 256×256 crop of a painting and one of a flat-colour drawing at each preset with the one job path
(:class:`glazeish.job.Cloaker`: PNG out, figures with JPEG q75 survival, words from
:func:`glazeish.evaluation.judge`), and writes ``glazeish/assets/presets/<preset>.png`` (the middle 128×128 of
the flat crop cloaked, drawn with :func:`glazeish.report.centre_crop`: flat colour is where grain shows first),
``original.png`` and ``presets.json`` (per preset and crop: PSNR and its visibility word, the protection and
survival words, the share left after JPEG q75, the cloak's seconds, the PNG's bytes next to the uncloaked PNG's).
Rerun it when a preset or the evaluation changes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

from PIL import Image

from glazeish import __version__
from glazeish.config import PRESETS, ProtectConfig
from glazeish.evaluation import judge
from glazeish.imageio import read_image
from glazeish.job import Cloaker, Job
from glazeish.metadata import MetadataOptions
from glazeish.report import centre_crop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS, ROOT, SHARED  # noqa: E402

DEST = ROOT / "glazeish" / "assets" / "presets"
#: (name, file under the shared images folder, crop box): a van Gogh painting and a flat "cel" drawing
CROPS = (
    ("painting", "paintings/00003-0-vincent-van-gogh_olive-picking-1889-2.png", (120, 136, 376, 392)),
    ("flat", "flat/flat_02.png", (192, 156, 448, 412)),
)


def show(src: Path, dest: Path, side: int = 128) -> None:
    """The middle ``side`` px of ``src``, unscaled (what the page shows at 100 %)."""
    Image.fromarray(centre_crop(read_image(src).rgb, side)).save(dest, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=str(MODELS))
    ap.add_argument("--images", default=str(SHARED / "images"))
    a = ap.parse_args()
    DEST.mkdir(parents=True, exist_ok=True)
    out: dict = {"glazeish": __version__, "machine": f"{platform.machine()}, {platform.python_version()}",
                 "crops": {name: {"source": src, "box": box} for name, src, box in CROPS}, "presets": {}}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, src, box in CROPS:
            with Image.open(Path(a.images) / src) as im:
                im.convert("RGB").crop(box).save(tmp / f"{name}.png", optimize=True)
        show(tmp / "flat.png", DEST / "original.png")
        for preset in PRESETS:
            config = ProtectConfig(intensity=preset, models_dir=a.models, device="cpu", precision="fp32")
            cloaker = Cloaker(Job(config=config, meta=MetadataOptions(enabled=False), purify=("jpeg75",)))
            rows = {}
            for name, _, _ in CROPS:
                done = cloaker.cloak_file(tmp / f"{name}.png", tmp / f"{name}-{preset}.png")
                f, v = done.figures, judge(done.figures)
                rows[name] = {"psnr": round(f.before.cloak.psnr, 2), "visibility": v.visibility,
                              "protection": v.protection, "retained_jpeg75": f.summary.retained["jpeg75"],
                              "survival_jpeg75": v.survival["jpeg75"], "seconds": round(done.seconds, 2),
                              "bytes": (tmp / f"{name}-{preset}.png").stat().st_size,
                              "original_bytes": (tmp / f"{name}.png").stat().st_size}
                print(preset, name, rows[name], flush=True)
            show(tmp / f"flat-{preset}.png", DEST / f"{preset}.png")
            out["presets"][preset] = rows
    (DEST / "presets.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {DEST}")


if __name__ == "__main__":
    main()
