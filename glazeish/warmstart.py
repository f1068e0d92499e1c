"""Amortised starting points: a learned, tileable perturbation pattern the attack starts from.

Iterative cloaking spends every step of every image finding the same kind of answer: for one encoder and
objective, the perturbations that work look alike from image to image (the encoder is convolutional, so a
pattern that throws off one patch's latent throws off most patches'). A *learned start* is that common part,
found once offline: a ``3×T×T`` pattern ``u`` in [-1, 1], tiled over the image from its top-left corner and
scaled by the per-pixel budget, ``δ₀ = u · eps_map``, then projected like any PGD iterate
(:func:`glazeish.attack.project`). A few ordinary PGD steps adapt it to the image. This is the amortisation
idea of FastProtect (Ahn et al., CVPR 2025), reduced to one universal pattern per (encoder, objective) instead
of a mixture of experts.

Patterns ship as 8-bit PNGs in ``glazeish/assets/starts/<encoder>-<objective>.png`` (``u = 2·v/255 - 1``),
each with a JSON note saying how it was trained (``benchmarks/amortised/train.py`` makes both). The period is a
multiple of the encoders' 8/16 px grid, so every tile of the pattern meets the grid at the same phase.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from .attack import project
from .device import autocast
from .encoders import Ensemble
from .errors import first_line
from .objectives import Objective


class Budgeted(Protocol):
    """What training needs of a :class:`~glazeish.config.ProtectConfig` (typed structurally: the config
    imports this module for its shipped patterns)."""

    eps: float
    rms: float | None

    def eps_map(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor | None: ...

ASSETS = Path(__file__).resolve().parent / "assets" / "starts"
#: the largest side of a start pattern: a tile repeated over the image (the shipped ones are 64 px). A larger
#: file is a mistake (a picture given as a pattern), and a 9000² one took 3.8 GB to cloak a 96 px image
MAX_PATTERN_SIDE = 1024
#: ``ProtectConfig.start`` values that are not a pattern: PGD's uniform random start, or none (δ₀ = 0)
PLAIN_STARTS = ("random", "zero")


@dataclass(frozen=True)
class StartPattern:
    """A tileable starting perturbation: ``pattern`` is ``3×T×T`` float in [-1, 1] (a fraction of the budget)."""

    pattern: torch.Tensor
    name: str = "pattern"

    def __post_init__(self):
        p = self.pattern
        if p.dim() != 3 or p.shape[0] != 3:
            raise ValueError(f"a start pattern is 3×T×T, got {tuple(p.shape)}")

    @property
    def period(self) -> tuple[int, int]:
        return int(self.pattern.shape[1]), int(self.pattern.shape[2])

    def field(self, height: int, width: int, top: int = 0, left: int = 0) -> torch.Tensor:
        """The pattern tiled over an ``height×width`` window whose top-left pixel sits at (``top``, ``left``) of
        the image: ``1×3×height×width`` in [-1, 1] (windows of one image continue each other seamlessly)."""
        ph, pw = self.period
        rows = (torch.arange(height) + top) % ph
        cols = (torch.arange(width) + left) % pw
        return self.pattern.float()[:, rows][:, :, cols].unsqueeze(0)

    def start_for(self, x: torch.Tensor, top: int = 0, left: int = 0) -> torch.Tensor:
        """The start of the window ``x`` (``B×3×h×w``) at (``top``, ``left``) of the image: the pattern's
        :meth:`field` there (whatever the pixels; :class:`glazeish.generator.StartNetwork` looks at them)."""
        return self.field(*x.shape[-2:], top, left)

    def save(self, path: str | Path, note: dict | None = None) -> None:
        """Write the pattern as an 8-bit RGB PNG (and ``note`` as JSON next to it, ``.json``)."""
        path = Path(path)
        v = ((self.pattern.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(v, "RGB").save(path)
        if note is not None:
            path.with_suffix(".json").write_text(json.dumps(note, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "StartPattern":
        """Read a pattern saved by :meth:`save` (ValueError naming the file if it is not one, or is larger
        than :data:`MAX_PATTERN_SIDE`)."""
        path = Path(path)
        im = open_pattern(path)
        try:
            with im:
                v = np.asarray(im.convert("RGB"), dtype=np.float32)
        except Exception as e:  # whatever a decoder raises on a damaged file
            raise ValueError(f"{path}: not a readable start pattern ({first_line(e)})") from None
        return cls(torch.from_numpy(v).permute(2, 0, 1) / 127.5 - 1, name=path.stem)


def open_pattern(path: str | Path) -> Image.Image:
    """A pattern file opened, its size checked before anything is decoded (ValueError naming the file): what
    :class:`~glazeish.config.ProtectConfig` checks of a ``start`` pattern before any work."""
    path = Path(path)
    limit = (f"{path}: a start pattern is at most {MAX_PATTERN_SIDE}x{MAX_PATTERN_SIDE} px (a tile repeated over "
             "the image; the shipped ones are 64 px)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # its size is refused just below
            im = Image.open(path)
    except Image.DecompressionBombError:
        raise ValueError(f"{limit}; this one declares more pixels than Pillow opens safely") from None
    except Exception as e:
        raise ValueError(f"{path}: not a readable start pattern ({first_line(e)})") from None
    if max(im.size) > MAX_PATTERN_SIDE:
        im.close()
        raise ValueError(f"{limit}; this one is {im.size[0]}x{im.size[1]}")
    return im


def shipped_path(encoder: str, objective: str) -> Path:
    return ASSETS / f"{encoder}-{objective}.png"


def available() -> list[str]:
    """The shipped patterns, as ``<encoder>-<objective>`` names."""
    return sorted(p.stem for p in ASSETS.glob("*.png"))


def resolve_start(start: str, encoder: str, objective: str) -> StartPattern | None:
    """The pattern a :class:`~glazeish.config.ProtectConfig` ``start`` names (the config has checked that it
    exists): None for ``random``/``zero``, the shipped pattern of (encoder, objective) for ``learned``, or a PNG
    saved by :meth:`StartPattern.save`."""
    if start in PLAIN_STARTS:
        return None
    return StartPattern.load(shipped_path(encoder, objective) if start == "learned" else start)


# ------------------------------------------------------------------------------------------------
# training (offline, once per encoder and objective)


def budget_map_of(budget: Budgeted, x: torch.Tensor) -> torch.Tensor:
    """``budget``'s per-pixel L∞ map for ``x`` (``B×3×H×W``): its ``eps_map``, or the flat ``eps`` as a ``B×1×H×W``
    map where it has none: what a start is scaled by."""
    e = budget.eps_map(x)
    return torch.full_like(x[:, :1], budget.eps) if e is None else e


def fit_pattern(
    ensemble: Ensemble,
    objective: Objective,
    batches: Iterable[torch.Tensor],
    budget: Budgeted,
    *,
    period: int = 64,
    lr: float = 0.05,
    transforms: Sequence[Callable[[torch.Tensor, random.Random], torch.Tensor]] = (),
    precision: str = "fp32",
    seed: int = 0,
    init: str = "random",
    log: Callable[[int, float], None] | None = None,
) -> StartPattern:
    """Learn a universal start: minimise the objective's mean loss over ``batches`` of training crops.

    Args:
        batches: ``B×3×h×w`` float in [0, 1] (h, w multiples of the encoders' multiple); one Adam step each.
        budget: the config whose budget each crop is cloaked under (:meth:`ProtectConfig.eps_map` and its energy
            bound ``rms``; the pattern is a fraction of it, like the attack's δ): the preset the pattern is for.
        period: the pattern's side ``T`` (a multiple of the encoders' multiple).
        transforms: EOT transforms, applied in turn (as the default preset's ``cycle`` order does).
        init: the first pattern, ``random`` (seeded uniform noise in [-1, 1], like PGD's random start) or
            ``zero`` (only with EOT transforms: at δ = 0 an untargeted loss has no gradient of its own).
        log: called with (step, mean loss per image) after every step.

    The pattern is kept in [-1, 1]; the energy projection's scale is a constant of each step
    (the same projection the attack makes, differentiated through its clipping only).
    """
    m = ensemble.multiple
    if period % m:
        raise ValueError(f"the period ({period}) must be a multiple of the encoders' multiple ({m})")
    device = ensemble.device
    if init not in ("random", "zero"):
        raise ValueError(f"init must be random or zero, not {init!r}")
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(3, period, period, generator=g) * 2 - 1 if init == "random" else torch.zeros(3, period, period)
    u = u.to(device).requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    rng = random.Random(seed)
    ts = list(transforms)
    for step, x in enumerate(batches, 1):
        x = x.to(device).float().contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            losses = [(objective.setup(model, x), w) for model, w in ensemble]
        e = budget_map_of(budget, x)
        pattern = StartPattern(u)
        field = pattern.field(*x.shape[-2:]).to(device)
        x0 = project(x + field * e, x, e, budget.rms)  # the attack's first iterate (PGD's `start`)
        inp = ts[step % len(ts)](x0, rng) if ts else x0
        with autocast(device, precision):
            loss = sum(w * fn(inp.contiguous(memory_format=torch.channels_last)).float().mean() for fn, w in losses)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            u.clamp_(-1, 1)
        if log is not None:
            log(step, float(loss.detach()))
    return StartPattern(u.detach().cpu().clone())
