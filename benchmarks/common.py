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
