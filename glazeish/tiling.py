"""Cloak images of any size in flat memory: overlapping tiles, attacked one after another.

Each tile is attacked with its own context (the encoders are convolutional, and TAEF2's global GroupNorm
branch makes each latent depend on the whole tile, so tiles must be big enough to look like an image).
Tiles overlap; each pixel is *owned* by one tile (the overlaps are split at their middle). A tile is
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


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)  # last tile flush with the edge
    return starts


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Overlapping tiles covering ``height×width``; one tile when the image fits."""
    if overlap >= tile:
        raise ValueError("overlap must be smaller than the tile size")
    return [
        Tile(t, l, min(tile, height), min(tile, width))
        for t in _starts(height, tile, overlap)
        for l in _starts(width, tile, overlap)
    ]


def core(tile: Tile, height: int, width: int, overlap: int) -> Tile:
    """The part of ``tile`` it owns: the tile minus half of each overlap shared with a neighbour."""
    half = overlap // 2
    top = tile.top + (half if tile.top > 0 else 0)
    left = tile.left + (half if tile.left > 0 else 0)
    bottom = tile.top + tile.h - (half if tile.top + tile.h < height else 0)
    right = tile.left + tile.w - (half if tile.left + tile.w < width else 0)
    return Tile(top, left, bottom - top, right - left)


def cloak_tiled(
    attack: Callable[[torch.Tensor, torch.Tensor | None, int], torch.Tensor],
    x: torch.Tensor,
    eps_map: torch.Tensor | None,
    eps: float,
    tile: int,
    overlap: int,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Cloak ``x`` (``1×3×H×W``, H and W already multiples of the encoders' multiple) tile by tile.

    ``attack(x_tile, eps_map_tile, index)`` cloaks a ``1×3×h×w`` tile within a per-pixel budget
    ``1×1×h×w``; ``index`` lets the caller vary the seed. ``eps_map`` (or the flat ``eps``) is the
    budget relative to ``x``. With one tile this is exactly ``attack(x, eps_map, 0)``.
    """
    _, _, height, width = x.shape
    tiles = plan_tiles(height, width, tile, overlap)
    if len(tiles) == 1:
        return attack(x, eps_map, 0)
    budget = eps_map if eps_map is not None else torch.full((1, 1, height, width), float(eps), device=x.device)
    x_adv = x.clone()
    done = torch.zeros(1, 1, height, width, dtype=torch.bool, device=x.device)
    for i, t in enumerate(tiles):
        # pixels already written by earlier tiles are fixed context: their budget here is 0, so the
        # attack leaves them as they are; elsewhere x_adv == x, so the budget stays relative to x
        out = attack(t.slice(x_adv), t.slice(budget) * ~t.slice(done), i)
        c = core(t, height, width, overlap)
        own = c.slice(~done)
        local = Tile(c.top - t.top, c.left - t.left, c.h, c.w)
        c.slice(x_adv)[:] = torch.where(own, local.slice(out), c.slice(x_adv))
        c.slice(done)[:] = True
        if on_tile is not None:
            on_tile(i + 1, len(tiles))
    return x_adv
