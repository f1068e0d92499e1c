"""What every benchmark suite shares: where the shared images are and how a suite picks them.

``GLAZEISH_SHARED`` points at the shared folder (default: ``../shared`` beside the repository);
``GLAZEISH_MODELS`` at the weights (default: its ``models/``). Image specs are ``kind[:start:stop[:step]]``
(``paintings:0:12:2``): the sorted files of ``images/<kind>/``, sliced.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GLAZEISH_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("GLAZEISH_MODELS", SHARED / "models"))
KINDS = ("paintings", "flat", "line")


def pick_images(specs: list[str]) -> list[tuple[str, Path]]:
    """``["paintings:0:12:2", "flat"]`` -> ``[(kind, path), ...]`` in the order given."""
    out = []
    for spec in specs:
        kind, *cut = spec.split(":")
        if kind not in KINDS:
            raise SystemExit(f"unknown image kind {kind!r}; known: {', '.join(KINDS)}")
        files = sorted(p for p in (SHARED / "images" / kind).iterdir() if p.suffix.lower() == ".png")
        if cut:
            files = files[slice(*(int(c) if c else None for c in cut))]
        out += [(kind, p) for p in files]
    return out
