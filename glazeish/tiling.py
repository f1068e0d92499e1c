"""Cloak images of any size in flat memory: overlapping tiles, attacked one after another.

Each tile is attacked with its own context (the encoders are convolutional, and TAEF2's global GroupNorm
branch makes each latent depend on the whole tile, so tiles must be big enough to look like an image).
Tiles overlap; each pixel is *owned* by one tile (the overlaps are cut at their middle). A tile is
attacked on top of what earlier tiles already wrote: their pixels are its fixed context (budget 0 there),
and it writes back only the pixels it owns. So every pixel's perturbation is fully optimised — no
averaging of unrelated perturbations, which would shrink |δ| in bands along the seams — and each tile
sees the real cloak of its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Tile:
    """A ``h×w`` window at (top, left) of a ``H×W`` image."""

    top: int
    left: int
    h: int
    w: int

    def slice(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.top : self.top + self.h, self.left : self.left + self.w]


def _spans(length: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """(start, size) of tiles along one side: as few as fit in ``tile``, all of one size (a multiple of
    ``multiple``), spread evenly so that no tile is wasted on a sliver at the edge."""
    if length <= tile:
        return [(0, length)]
    n = -(-(length - overlap) // (tile - overlap))
    size = -(-(length + (n - 1) * overlap) // n)
    size = min(tile, -(-size // multiple) * multiple)
    starts = [round(i * (length - size) / (n - 1)) // multiple * multiple for i in range(n)]
    starts[-1] = length - size  # flush with the edge
    return [(s, size) for s in starts]


def plan_tiles(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """Overlapping tiles (each at most ``tile`` px a side) covering ``height×width``; one when it fits."""
    if overlap >= tile:
        raise ValueError("overlap must be smaller than the tile size")
    return [
        Tile(t, l, h, w)
        for t, h in _spans(height, tile, overlap, multiple)
        for l, w in _spans(width, tile, overlap, multiple)
    ]


def cores(tiles: list[Tile]) -> list[Tile]:
    """The part of each tile that it owns: overlaps are cut at their middle, so the cores partition the
    image exactly (each pixel is owned by one tile)."""

    def cuts(spans: list[tuple[int, int]]) -> dict[int, tuple[int, int]]:
        bounds = [spans[0][0]] + [(s1 + s0 + n0) // 2 for (s0, n0), (s1, _) in zip(spans, spans[1:])]
        bounds.append(spans[-1][0] + spans[-1][1])
        return {s: (bounds[i], bounds[i + 1]) for i, (s, _) in enumerate(spans)}

    rows = cuts(sorted({(t.top, t.h) for t in tiles}))
    cols = cuts(sorted({(t.left, t.w) for t in tiles}))
    out = []
    for t in tiles:
        (y0, y1), (x0, x1) = rows[t.top], cols[t.left]
        out.append(Tile(y0, x0, y1 - y0, x1 - x0))
    return out


def cloak_tiled(
    attack: Callable[[torch.Tensor, torch.Tensor | None, int, "Tile"], torch.Tensor],
    x: torch.Tensor,
    eps_map: torch.Tensor | None,
    eps: float,
    tile: int,
    overlap: int,
    multiple: int = 1,
) -> torch.Tensor:
    """Cloak ``x`` (``1×3×H×W``, H and W already multiples of the encoders' multiple) tile by tile.

    ``attack(x_tile, eps_map_tile, index, tile)`` cloaks a ``1×3×h×w`` tile within a per-pixel budget
    ``1×1×h×w``; ``index`` lets the caller vary the seed, ``tile`` says where the tile sits (so a decoy
    pattern can continue across tile borders). ``eps_map`` (or the flat ``eps``) is the budget relative
    to ``x``. With one tile this is exactly ``attack(x, eps_map, 0, Tile(0, 0, H, W))``.
    """
    _, _, height, width = x.shape
    tiles = plan_tiles(height, width, tile, overlap, multiple)
    if len(tiles) == 1:
        return attack(x, eps_map, 0, tiles[0])
    budget = eps_map if eps_map is not None else torch.full((1, 1, height, width), float(eps), device=x.device)
    x_adv = x.clone()
    done = torch.zeros(1, 1, height, width, dtype=torch.bool, device=x.device)
    for i, (t, c) in enumerate(zip(tiles, cores(tiles))):
        # pixels already written by earlier tiles are fixed context: their budget here is 0, so the
        # attack leaves them as they are; elsewhere x_adv == x, so the budget stays relative to x
        out = attack(t.slice(x_adv), t.slice(budget) * ~t.slice(done), i, t)
        c.slice(x_adv)[:] = Tile(c.top - t.top, c.left - t.left, c.h, c.w).slice(out)
        c.slice(done)[:] = True
    return x_adv
