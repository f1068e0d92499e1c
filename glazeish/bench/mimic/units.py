"""The committed per-unit rows of a ``bench mimic`` run (``units.jsonl``) and the set distances computed from them.

A *unit* is one trained model: one draw of one arm's protection × one training seed. Every set distance of
:func:`.stats.set_distances` depends on a set only through its *average* statistics, so a unit is summed up,
exactly for what the summary needs, by

* ``style``: its average TAESANA statistics minus the reference crops', every term scaled by ``1/√dim`` so that
  the squared norm is the style distance, written as coordinates in an orthonormal basis of the span of all
  units' vectors (≤ one coordinate per unit instead of ~39 000 numbers);
* ``colour`` / ``texture``: its samples' histogram *counts* summed (integers: 512 RGB bins, 16 gradient bins);
* ``n`` (samples) and ``c2st`` (the unit's classifier accuracy).

The distance of any multiset of units (the whole arm, or a bootstrap draw) is then the style norm of the
sample-weighted average coordinates and the total-variation distance of the pooled counts. Sums run in a
fixed order (never numpy's reductions, whose order depends on the SIMD path), so the figures are the same
bits on any machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .stats import ImageStats

__all__ = ["REFERENCE", "UnitSet", "read_units", "resample_counts", "unit_rows", "write_units"]

REFERENCE = "(reference crops)"  # the row holding the reference crops' histogram counts
STYLE_DECIMALS = 9  # absolute rounding of a style coordinate: distances ~0.1-1 move < 1e-7


def _style_vector(stats: ImageStats) -> np.ndarray:
    """``D`` float64: the set's average Gram / channel means / channel stds of every layer, each term divided by
    ``√(its size)`` so that ``‖a − b‖²`` is :func:`.stats.set_distances`' style distance of two sets."""
    parts = []
    for group in (stats.grams, stats.means, stats.stds):
        for t in group:
            avg = t.double().mean(0).flatten()
            parts.append(avg.numpy() / np.sqrt(avg.numel()))
    return np.concatenate(parts)  # in any order of the terms: only norms and inner products are kept


def _counts(hist: torch.Tensor, pixels: int, what: str) -> list[int]:
    """Histogram counts summed over a set: ``N×B`` rows (counts / ``pixels``, each row summing to 1) -> ``B``
    integers. Exact: a bin of one image is a whole count."""
    counts = np.rint(hist.double().numpy() * pixels)
    if counts.size and not np.allclose(counts / pixels, hist.double().numpy(), rtol=0, atol=1e-6):
        raise ValueError(f"{what} histograms are not counts over {pixels} pixels")
    return [int(v) for v in counts.sum(0)]


def _style_coordinates(vectors: np.ndarray) -> np.ndarray:
    """``U×D`` vectors -> ``U×min(U, D)`` coordinates in an orthonormal basis of their span (SVD), so every inner
    product, and so every norm of a weighted average, is kept. Signs are fixed (each component's largest entry
    positive): they would otherwise depend on the LAPACK build."""
    if not len(vectors):
        return vectors.reshape(0, 0)
    u, s, _ = np.linalg.svd(vectors, full_matrices=False)
    coords = u * s
    flip = np.sign(coords[np.abs(coords).argmax(0), np.arange(coords.shape[1])])
    return coords * np.where(flip == 0, 1, flip)


def unit_rows(units: list[tuple[str, str, int, int, ImageStats, float]], ref: ImageStats,
              pixels: tuple[int, int]) -> list[dict]:
    """The rows of ``units.jsonl``: first the reference crops' histogram counts, then one row per unit.

    ``units``: ``(arm, version, draw, seed, stats of its samples, C2ST accuracy)``; ``ref``: the reference
    crops' stats; ``pixels``: pixels per image of the colour and texture histograms
    (:func:`.stats.histogram_pixels`)."""
    origin = _style_vector(ref)
    coords = _style_coordinates(np.stack([_style_vector(u[4]) - origin for u in units]) if units
                                else np.zeros((0, 0)))
    rows = [{"arm": REFERENCE, "n": len(ref), "colour": _counts(ref.colour, pixels[0], "colour"),
             "texture": _counts(ref.texture, pixels[1], "texture")}]
    for (arm, version, draw, seed, stats, acc), z in zip(units, coords):
        rows.append({"arm": arm, "version": version, "draw": draw, "seed": seed, "n": len(stats),
                     "c2st": round(float(acc), 6),
                     "style": [round(float(v), STYLE_DECIMALS) + 0.0 for v in z],  # + 0.0: no "-0.0"
                     "colour": _counts(stats.colour, pixels[0], "colour"),
                     "texture": _counts(stats.texture, pixels[1], "texture")})
    return rows


def write_units(path: Path, rows: list[dict]) -> Path:
    """One compact JSON object per line."""
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
    return path


def read_units(path: Path) -> tuple[dict, list[dict]]:
    """``(reference row, unit rows)`` of a ``units.jsonl``."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    refs = [r for r in rows if r["arm"] == REFERENCE]
    if len(refs) != 1:
        raise ValueError(f"{path}: expected one {REFERENCE!r} row, found {len(refs)}")
    return refs[0], [r for r in rows if r["arm"] != REFERENCE]


def _ordered_sum(a: np.ndarray) -> np.ndarray:
    """``a`` summed over its last axis left to right (a fixed order: the same bits on every machine)."""
    out = np.zeros(a.shape[:-1])
    for i in range(a.shape[-1]):
        out += a[..., i]
    return out


def _tv(pooled: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Total-variation distance of each row of pooled counts (``R×B`` integers) to the reference counts (``B``)."""
    p = pooled / pooled.sum(1, keepdims=True)  # integer sums: exact in any order
    return 0.5 * _ordered_sum(np.abs(p - ref / ref.sum()))


@dataclass
class UnitSet:
    """The units of one arm, as arrays: ``n`` (``U``, samples), ``style`` (``U×K``), ``colour`` (``U×512``
    counts), ``texture`` (``U×16`` counts)."""

    n: np.ndarray
    style: np.ndarray
    colour: np.ndarray
    texture: np.ndarray

    @classmethod
    def of(cls, rows: list[dict]) -> UnitSet:
        return cls(np.array([r["n"] for r in rows], float), np.array([r["style"] for r in rows], float),
                   np.array([r["colour"] for r in rows], np.int64), np.array([r["texture"] for r in rows], np.int64))

    def __len__(self) -> int:
        return len(self.n)

    def distances(self, times: np.ndarray, ref: dict) -> np.ndarray:
        """``R×3`` (style, colour, texture) distances to the reference of ``R`` multisets of these units: row
        ``r`` of ``times`` (``R×U`` integers) says how often each unit is in it."""
        w = times * self.n  # every sample of a unit weighs the same, as when the samples are pooled
        mean = _ordered_sum(w[:, None, :] * self.style.T[None]) / _ordered_sum(w)[:, None]
        style = _ordered_sum(mean * mean)
        colour = _tv(times @ self.colour, np.asarray(ref["colour"], float))
        texture = _tv(times @ self.texture, np.asarray(ref["texture"], float))
        return np.stack([style, colour, texture], 1)


def resample_counts(units: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples×units`` integers: how often each unit is drawn when ``units`` are drawn with replacement,
    once per bootstrap resample (numpy's PCG64 stream for ``seed``: the same on every platform)."""
    idx = np.random.default_rng(seed).integers(units, size=(resamples, units))
    return (idx[:, :, None] == np.arange(units)).sum(1)
