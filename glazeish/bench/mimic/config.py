"""The settings of a ``bench mimic`` run (:class:`MimicConfig`), the metrics it reports, and the names it files
things under."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..harness import at_least, check_eps

__all__ = ["METRICS", "METRIC_INFO", "NONE", "Log", "MimicConfig"]

NONE = "none"
METRICS = ("style", "colour", "texture", "c2st")
METRIC_INFO = {
    "style": "Gram + channel mean/std distance of TAESANA features (set averages; 0 = same statistics)",
    "colour": "total-variation distance of 8x8x8 RGB histograms (0 = same colours, 1 = disjoint)",
    "texture": "total-variation distance of luminance gradient-magnitude histograms (0 = same, 1 = disjoint)",
    "c2st": "cross-validated accuracy of a ridge classifier telling the set from real crops (0.5 = cannot)",
}
Log = Callable[[str], None]


@dataclass
class MimicConfig:
    """One ``bench mimic`` run. Sizes are in pixels (``crop``) and optimiser steps (``steps``)."""

    images: list[str]
    out: str
    protections: list[str] = field(default_factory=lambda: ["none", "random", "glazeish-default"])
    external: dict[str, str] = field(default_factory=dict)  # protection label -> folder
    work: str | None = None  # caches and checkpoints (default OUT/work)
    models_dir: str | None = None
    eps_levels: float = 4.0  # budget (1/255) of `random` etc.; glazeish presets keep their own (default: 4)
    protect_seed: int = 0  # seed of the protections (noise draw, attack start): the same for every model seed
    draws: int = 1  # independent draws of every seeded protection (protect seeds protect_seed, +1, ...)
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 400
    batch: int = 16
    crop: int = 128  # training / sample crop in pixels (a multiple of 8 * 2**(len(mults) - 1))
    width: int = 48
    mults: tuple[int, ...] = (1, 2, 2)
    lr: float = 1e-3
    samples: int = 32
    sample_steps: int = 30
    n_ref: int = 64  # real crops every set is compared with
    limit: int | None = None  # at most this many images per folder
    bootstrap: int = 1000
    ckpt_every: int = 100
    device: str = "cpu"

    @classmethod
    def quick(cls, images: list[str], out: str, **overrides) -> "MimicConfig":
        """Toy size for tests and smoke runs: 64 px crops, a 16-wide two-level U-Net, few steps."""
        base = dict(steps=40, batch=8, crop=64, width=16, mults=(1, 2), samples=4, sample_steps=10, n_ref=16,
                    limit=4, bootstrap=200, ckpt_every=20)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(images=images, out=out, **base)

    def __post_init__(self):
        self.mults = tuple(int(m) for m in self.mults)
        unit = 8 * 2 ** (len(self.mults) - 1)
        if self.crop % unit or self.crop < unit:
            raise ValueError(f"--crop must be a positive multiple of {unit} for this U-Net, not {self.crop}")
        if self.crop % 32:
            raise ValueError(f"--crop must be a multiple of 32 (the TAESANA style encoder's), not {self.crop}")
        if not self.seeds:
            raise ValueError("at least one seed")
        if self.steps < 1 or self.samples < 2 or self.batch < 1 or self.draws < 1:
            raise ValueError("steps ≥ 1, samples ≥ 2, batch ≥ 1 and draws ≥ 1 are required")
        check_eps(self.eps_levels)
        for option, value, low in (("--limit", self.limit, 1), ("--sample-steps", self.sample_steps, 1),
                                   ("--bootstrap", self.bootstrap, 1), ("--width", self.width, 1),
                                   ("n_ref", self.n_ref, 2), ("ckpt_every", self.ckpt_every, 1)):
            at_least(option, value, low)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a positive number, not {self.lr:g}")

    def train_key(self) -> dict:
        """The settings that decide a trained model and its samples (a finished version is reused only
        when these match)."""
        keys = ("steps", "batch", "crop", "width", "mults", "lr", "samples", "sample_steps", "eps_levels", "protect_seed")
        return {k: getattr(self, k) for k in keys}


def _safe(name: str) -> str:
    return name.replace(":", "_").replace("/", "_")
