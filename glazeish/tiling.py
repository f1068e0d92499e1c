"""Cloak images of any size in flat memory: overlapping tiles, attacked independently, blended.

A tile's cloak is computed with the tile's own context (the encoders are convolutional; TAEF2's global
GroupNorm branch makes each latent depend on the whole tile, so tiles must be big enough to look like
an image). Where tiles overlap, their perturbations are blended with linear ramps. A convex combination
of perturbations that each satisfy ``|δ| ≤ eps`` and ``0 ≤ x+δ ≤ 1`` satisfies both too, so blending
never breaks the budget and needs no second projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

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


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D blending weights: rise over ``overlap`` px where a neighbour precedes, fall where one follows."""
    w = torch.ones(n)
    ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
    if overlap and not at_start:
        w[:overlap] = torch.minimum(w[:overlap], ramp)
    if overlap and not at_end:
        w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def tile_weight(tile: Tile, height: int, width: int, overlap: int) -> torch.Tensor:
    """``h×w`` blending weight of a tile (1 inside, ramps toward neighbouring tiles)."""
    wy = _ramp(tile.h, overlap, tile.top == 0, tile.top + tile.h == height)
    wx = _ramp(tile.w, overlap, tile.left == 0, tile.left + tile.w == width)
    return wy[:, None] * wx[None, :]


def batches(tiles: list[Tile], size: int) -> Iterator[list[Tile]]:
    """Group tiles of equal shape so they can be attacked as one batch."""
    by_shape: dict[tuple[int, int], list[Tile]] = {}
    for t in tiles:
        by_shape.setdefault((t.h, t.w), []).append(t)
    for group in by_shape.values():
        for i in range(0, len(group), size):
            yield group[i : i + size]


def cloak_tiled(
    attack: Callable[[torch.Tensor, torch.Tensor | None, int], torch.Tensor],
    x: torch.Tensor,
    eps_map: torch.Tensor | None,
    tile: int,
    overlap: int,
    batch_size: int = 1,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Cloak ``x`` (``1×3×H×W``, H and W already multiples of the encoders' multiple) tile by tile.

    ``attack(x_tiles, eps_map_tiles, index)`` cloaks a ``B×3×h×w`` batch of tiles; ``index`` (the
    batch's position) lets the caller vary the seed. With one tile this is exactly ``attack(x, eps_map, 0)``.
    """
    _, _, height, width = x.shape
    tiles = plan_tiles(height, width, tile, overlap)
    if len(tiles) == 1:
        return attack(x, eps_map, 0)
    acc = torch.zeros_like(x)
    norm = torch.zeros(1, 1, height, width, device=x.device)
    done = 0
    for i, group in enumerate(batches(tiles, batch_size)):
        xs = torch.cat([t.slice(x) for t in group])
        es = None if eps_map is None else torch.cat([t.slice(eps_map.expand(1, -1, -1, -1)) for t in group])
        out = attack(xs, es, i)
        for t, o in zip(group, out):
            w = tile_weight(t, height, width, overlap).to(x.device)
            t.slice(acc)[0] += (o - t.slice(x)[0]) * w
            t.slice(norm)[0] += w
        done += len(group)
        if on_tile is not None:
            on_tile(done, len(tiles))
    return x + acc / norm
