"""Cloak one image at its full size: :class:`Protector` loads the encoders once and, per image, pads to the
encoders' multiple (reflection, cropped off again), runs :class:`~glazeish.attack.PGD` (in tiles for large
images) and quantises to 8 bits within the budget. It computes no figures: that is
:mod:`glazeish.evaluation`'s job, and :class:`glazeish.job.Cloaker` puts the two together for files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .attack import PGD, StepCallback
from .config import PRESETS, ProtectConfig  # noqa: F401  (PRESETS re-exported: the presets live with the config)
from .device import release_freed_memory, resolve_device, resolve_precision
from .encoders import Ensemble, load_encoders
from .generator import make_start
from .imageio import Artwork, pad_to_multiple, read_image, to_uint8
from .objectives import make_objective
from .tiling import Tile, cloak_tiled, plan_tiles
from .transforms import make_transforms


@dataclass
class Cloak:
    """One cloaked image: pixels (``H×W×3`` uint8, within the budget of the original) and the seconds it took."""

    rgb: np.ndarray
    seconds: float


@dataclass(frozen=True)
class Step:
    """Progress of one image's cloak: optimisation ``step`` of ``steps`` (the configured count, whatever the
    image's size) in tile ``tile`` of ``tiles`` (1-based; one tile for images up to ``config.tile`` px)."""

    step: int
    steps: int
    tile: int
    tiles: int
    loss: float

    @property
    def done(self) -> int:
        """Steps done over all tiles of the image."""
        return (self.tile - 1) * self.steps + self.step

    @property
    def total(self) -> int:
        """Steps of all tiles together."""
        return self.tiles * self.steps


#: what :meth:`Protector.cloak` calls after every optimisation step (progress bars, cancel)
ImageCallback = Callable[[Step], None]


class Protector:
    """Cloak images with one configuration; models are loaded once, in the constructor.

    Example::

        p = Protector(ProtectConfig(intensity="default", models_dir="../shared/models"))
        cloak = p.protect(read_image("art.png"))
    """

    def __init__(self, config: ProtectConfig | None = None, ensemble: Ensemble | None = None):
        self.config = config or ProtectConfig()
        self.device = resolve_device(self.config.device)
        self.precision = resolve_precision(self.config.precision, self.device)
        t0 = time.perf_counter()
        self.ensemble = ensemble or load_encoders(self.config.encoder, self.config.models_dir, self.device)
        target = read_image(self.config.target).tensor()[0] if self.config.target else None
        self.objective = make_objective(self.config.objective, target)
        self.transforms = make_transforms(self.config.robust, self.ensemble, self.precision) if self.config.robust else []
        self.start = make_start(self.config.start, self.config.encoder, self.config.objective, self.config.models_dir)
        self.attack()  # what PGD refuses (an objective that needs a decoder none of the models has): once, here
        self.load_seconds = time.perf_counter() - t0

    @property
    def eps(self) -> float:
        """The L∞ bound of a cloak, [0, 1] units."""
        return self.config.eps

    def attack(self, callback: StepCallback | None = None, seed: int | None = None,
               origin: tuple[int, int] = (0, 0)) -> PGD:
        """The configured :class:`PGD`; ``origin`` = where the attacked image sits in a larger one (tiles)."""
        c = self.config
        return PGD(self.ensemble, self.objective.at(*origin), eps=self.eps, steps=c.steps,
                   seed=c.seed if seed is None else seed, precision=self.precision, transforms=self.transforms,
                   callback=callback, alpha=None if c.alpha_levels is None else c.alpha_levels / 255,
                   schedule=c.schedule, optimizer=c.optimizer, momentum=c.momentum, rms=c.rms, coarse=c.coarse,
                   transform_order=c.transform_order, reference=c.eot_reference, fill_smooth=c.fill_smooth,
                   skip_grad=c.skip_grad, ghost=c.ghost, fill_chroma=c.fill_chroma,
                   random_start=c.start == "random")

    def _tile(self) -> int:
        m = self.ensemble.multiple
        return max(m, self.config.tile // m * m)

    def n_tiles(self, height: int, width: int) -> int:
        m = self.ensemble.multiple
        return len(plan_tiles(-(-height // m) * m, -(-width // m) * m, self._tile(), self.config.overlap, m))

    def cloak(self, x: torch.Tensor, alpha: torch.Tensor | None = None, callback: ImageCallback | None = None,
              seed: int | None = None) -> torch.Tensor:
        """``1×3×H×W`` in [0,1] (any H, W) -> cloaked, same shape, ``|δ| ≤ eps``.

        ``alpha`` (``1×1×H×W`` in [0,1]): fully transparent pixels get no perturbation. Images larger than
        ``config.tile`` are cloaked in overlapping tiles, each with the configured steps; ``callback`` gets a
        :class:`Step` after every step (the step within its tile, and the tile). ``seed`` overrides the config's
        (the benchmark seeds each image).
        """
        c = self.config
        seed = c.seed if seed is None else seed
        x = x.to(self.device)
        xp, (h, w) = pad_to_multiple(x, self.ensemble.multiple)
        a = None if alpha is None else pad_to_multiple(alpha.to(self.device).float(), self.ensemble.multiple)[0]
        eps_map = c.eps_map(xp, a)
        n_tiles = self.n_tiles(h, w)

        def attack_tile(xs: torch.Tensor, es: torch.Tensor | None, index: int, tile: Tile) -> torch.Tensor:
            progress: StepCallback | None = None
            if callback is not None:
                progress = lambda i, n, loss: callback(Step(i, n, index + 1, n_tiles, loss))  # noqa: E731
            # a network's start looks at the tile's clean pixels (earlier tiles' cloaks are only context)
            start = None if self.start is None else self.start.start_for(tile.slice(xp), tile.top, tile.left)
            return self.attack(progress, seed=seed + 1009 * index, origin=(tile.top, tile.left))(xs, es, start)

        out = cloak_tiled(attack_tile, xp, eps_map, self.eps, self._tile(), c.overlap, self.ensemble.multiple)
        return out[..., :h, :w]

    def protect(self, art: Artwork, callback: ImageCallback | None = None, seed: int | None = None) -> Cloak:
        """Cloak an :class:`Artwork`; returns 8-bit pixels within the budget (transparent pixels unchanged)."""
        t0 = time.perf_counter()
        for t in self.transforms:  # a platform's chain scales by what it serves for an upload of this size
            if hasattr(t, "upload"):
                t.upload = art.size
        alpha = None if art.alpha is None else torch.from_numpy(art.alpha)[None, None].float() / 255
        rgb = to_uint8(self.cloak(art.tensor(), alpha, callback, seed), art.rgb, self.eps)
        release_freed_memory()  # the attack's working memory, before whatever comes next
        return Cloak(rgb=rgb, seconds=time.perf_counter() - t0)
