"""What every benchmark suite shares: where the shared images are, how a suite picks and crops them, how it
reads its rows, and how a RESULTS.md keeps its generated tables in step with those rows.

``GLAZEISH_SHARED`` points at the shared folder (default: ``../shared`` beside the repository);
``GLAZEISH_MODELS`` at the weights (default: its ``models/``). Image specs are ``kind[:start:stop[:step]]``
(``paintings:0:12:2``): the sorted files of ``images/<kind>/``, sliced; any other spec is a file path.

A suite imports this module with the benchmarks folder on its path (``sys.path.insert(0, str(HERE.parent))``),
and imports nothing from another suite: every figure comes from :mod:`glazeish` (``glazeish.evaluation`` and
the purification registry).
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GLAZEISH_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("GLAZEISH_MODELS", SHARED / "models"))
SCRATCH = ROOT / "benchmarks" / "_scratch"  # git-ignored: what a suite writes besides its rows
KINDS = ("paintings", "flat", "line")


def shared_images(kind: str) -> list[Path]:
    """The sorted PNG files of ``images/<kind>/`` in the shared folder."""
    return sorted(p for p in (SHARED / "images" / kind).iterdir() if p.suffix.lower() == ".png")


def pick_images(specs: list[str]) -> list[tuple[str, Path]]:
    """``["paintings:0:12:2", "flat", "some/file.png"]`` -> ``[(kind, path), ...]`` in the order given (the
    kind of a file given by its path is its folder's name)."""
    out = []
    for spec in specs:
        kind, *cut = spec.split(":")
        if kind not in KINDS:
            path = Path(spec)
            if not path.is_file():
                raise SystemExit(f"unknown image kind {kind!r} and no such file; known kinds: {', '.join(KINDS)}")
            out.append((path.parent.name, path))
            continue
        files = shared_images(kind)
        if cut:
            files = files[slice(*(int(c) if c else None for c in cut))]
        out += [(kind, p) for p in files]
    return out


def centre_crop(rgb: np.ndarray, size: int | None) -> np.ndarray:
    """The central at most ``size``×``size`` pixels, each side a multiple of 8 (0 / None: the whole image)."""
    if not size:
        return rgb
    h, w = rgb.shape[:2]
    ch, cw = min(size, h) // 8 * 8, min(size, w) // 8 * 8
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(rgb[top : top + ch, left : left + cw])


def read_rows(*paths: str | os.PathLike) -> list[dict]:
    """The JSON rows of one or more ``.jsonl`` files, in order (a missing file has none)."""
    return [json.loads(line) for p in map(Path, paths) if p.exists()
            for line in p.read_text().splitlines() if line.strip()]


#: ``<!-- generated: NAME ARGS -->`` ... ``<!-- end generated -->``: a block of RESULTS.md that a suite's
#: ``--report`` rewrites from its committed rows (the prose around it is written by hand)
GENERATED = re.compile(r"(<!-- generated: (?P<name>\S+)(?P<args>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)",
                       re.S)


def regenerate(text: str, tables: dict[str, Callable[..., str]]) -> str:
    """``text`` (a RESULTS.md) with each generated block's body replaced by ``tables[NAME](*ARGS)``: a blank
    line, the table, a blank line. Unknown names raise KeyError (a report must not silently keep old numbers)."""

    def one(m: re.Match) -> str:
        body = tables[m["name"]](*m["args"].split())
        return f"{m[1]}\n{body.strip(chr(10))}\n\n{m[5]}"

    return GENERATED.sub(one, text)


def report_from_rows(folder: str | os.PathLike, tables: Callable[[list[dict]], dict[str, Callable[..., str]]],
                     rows: str = "results.jsonl") -> str:
    """``folder``'s RESULTS.md with its generated blocks rebuilt by ``tables(read_rows(folder / rows))`` (a suite
    whose blocks all come from one rows file)."""
    folder = Path(folder)
    return regenerate((folder / "RESULTS.md").read_text(), tables(read_rows(folder / rows)))


def cloak_path(scratch: Path, candidate: str, crop: int, image: Path) -> Path:
    """Where a run keeps the 8-bit cloak of ``image`` (``--figure`` draws from there)."""
    return scratch / candidate / f"{crop or 'full'}" / f"{image.stem}.png"


def split(kind: str, part: str) -> list[Path]:
    """The ``train`` (even positions) or ``heldout`` (odd positions) images of one kind, sorted by name: the
    learned starts train on the first and are judged on the second."""
    files = shared_images(kind)
    return files[0::2] if part == "train" else files[1::2]


def procedural(n: int, size: int, seed: int) -> list:
    """Flat-colour drawings (filled shapes, dark outlines) and line art (pen strokes on off-white paper with
    faint grain) as PIL images: the kinds of art the shared set has few of (the learned starts' training data)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    out = []
    for i in range(n):
        line = i % 2 == 1
        paper = tuple(rng.randint(236, 252) for _ in range(3))
        im = Image.new("RGB", (size, size), paper if line else tuple(rng.randint(0, 255) for _ in range(3)))
        d = ImageDraw.Draw(im)
        for _ in range(rng.randint(4, 12)):
            box = sorted(rng.randint(-size // 4, size + size // 4) for _ in range(2))
            boy = sorted(rng.randint(-size // 4, size + size // 4) for _ in range(2))
            ink = tuple(rng.randint(0, 60) for _ in range(3))
            width = rng.randint(1, 4)
            if line:
                pts = [(rng.randint(0, size), rng.randint(0, size)) for _ in range(rng.randint(3, 7))]
                d.line(pts, fill=ink, width=width, joint="curve")
            else:
                fill = tuple(rng.randint(0, 255) for _ in range(3))
                shape = rng.choice([d.ellipse, d.rectangle, d.polygon])
                if shape is d.polygon:
                    d.polygon([(rng.randint(0, size), rng.randint(0, size)) for _ in range(rng.randint(3, 6))],
                              fill=fill, outline=ink, width=width)
                else:
                    shape([box[0], boy[0], box[1], boy[1]], fill=fill, outline=ink, width=width)
        if line:
            grain = np.random.default_rng(seed + i).normal(0, 1.5, (size, size, 1))
            im = Image.fromarray(np.clip(np.asarray(im, np.float32) + grain, 0, 255).astype(np.uint8))
        out.append(im.filter(ImageFilter.SMOOTH) if rng.random() < 0.5 else im)
    return out


def training_images(kinds, n_procedural: int, seed: int) -> list[np.ndarray]:
    """The learned starts' training images as ``H×W×3`` uint8: the train split of each of ``kinds`` and
    ``n_procedural`` procedurally drawn 384² images."""
    from PIL import Image

    images = [np.asarray(Image.open(p).convert("RGB")) for k in kinds for p in split(k, "train")]
    return images + [np.asarray(im) for im in procedural(n_procedural, 384, seed)]


def crops(images: list[np.ndarray], crop: int, batch: int, steps: int, seed: int):
    """``steps`` batches of ``batch`` random crops (``B×3×crop×crop`` torch tensors in [0, 1]) with flips, 90°
    turns and a mild brightness/contrast/saturation jitter."""
    import torch

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        out = []
        for _ in range(batch):
            a = images[rng.integers(len(images))]
            h, w = a.shape[:2]
            top, left = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
            c = a[top:top + crop, left:left + crop].astype(np.float32) / 255
            c = np.rot90(c, rng.integers(4))
            if rng.random() < 0.5:
                c = c[:, ::-1]
            grey = c.mean(2, keepdims=True)
            c = grey + (c - grey) * rng.uniform(0.8, 1.2)  # saturation
            c = (c - 0.5) * rng.uniform(0.85, 1.15) + 0.5 + rng.uniform(-0.05, 0.05)  # contrast, brightness
            out.append(torch.from_numpy(np.ascontiguousarray(np.clip(c, 0, 1))).permute(2, 0, 1))
        yield torch.stack(out)
