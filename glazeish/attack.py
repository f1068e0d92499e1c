"""The optimisation core: a projected-gradient (PGD) attack on one or several encoders.

In the style of torchattacks: every knob is explicit in the constructor, and ``attack(images)``
returns the cloaked images. Images are ``B×3×H×W`` float in ``[0, 1]`` with H, W multiples of the
encoders' ``multiple``. The budget is L∞: ``|δ| ≤ eps`` everywhere (or ``≤ eps_map`` per pixel when a
budget map is given), enforced by :func:`project`, the only place that clamps.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

import torch

from .device import autocast, resolve_precision
from .encoders import Ensemble, LatentModel
from .objectives import Objective

StepCallback = Callable[[int, int, float], None]  # (step, steps, loss)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
    """Project onto ``{x' : |x' - x| ≤ eps, 0 ≤ x' ≤ 1}``; ``eps`` a float or a map broadcastable to x."""
    delta = torch.maximum(torch.minimum(x_adv - x, torch.as_tensor(eps, device=x.device)), -torch.as_tensor(eps, device=x.device))
    return (x + delta).clamp(0, 1)


def step_sizes(alpha: float, steps: int, schedule: str = "cosine") -> list[float]:
    """Per-step sizes: ``constant``, ``linear`` or ``cosine`` decay from ``alpha`` to ``alpha/10``, or
    ``photoguard``: PhotoGuard's released attack, ``alpha - (alpha - alpha/100) * i / steps`` for step ``i``."""
    if schedule == "photoguard":
        return [alpha - (alpha - alpha / 100) * i / steps for i in range(steps)]
    if schedule == "constant" or steps <= 1:
        return [alpha] * steps
    out = []
    for i in range(steps):
        t = i / (steps - 1)
        frac = 1 - t if schedule == "linear" else 0.5 * (1 + math.cos(math.pi * t))
        out.append(alpha * (0.1 + 0.9 * frac))
    return out


class PGD:
    """Projected gradient descent on an objective over one or several encoders.

    Args:
        models: a :class:`LatentModel` or an :class:`Ensemble` (weighted sum of objectives).
        objective: what to minimise (see :mod:`glazeish.objectives`).
        eps: L∞ budget in [0, 1] units (4/255 is "4" on the CLI).
        steps: number of gradient steps.
        alpha: first step size; default ``2.5 * eps / sqrt(steps)`` capped at ``eps``.
        schedule: step-size decay, ``cosine`` (default), ``linear``, ``constant`` or ``photoguard`` (see
            :func:`step_sizes`).
        random_start: start from uniform noise in the budget, as PGD does.
        seed: seeds the random start and any sampled transforms (same seed, same device -> same result).
        precision: ``auto`` (chosen from the hardware, see :mod:`glazeish.device`), ``fp32``, ``bf16`` or
            ``fp16`` autocast.
        transforms: optional list of differentiable transforms; one is sampled per step
            (expectation over transformation) and applied before the encoders.
        callback: called as ``callback(step, steps, loss)`` after every step (progress bars, cancel).
    """

    def __init__(
        self,
        models: Ensemble | LatentModel,
        objective: Objective,
        eps: float = 4 / 255,
        steps: int = 20,
        alpha: float | None = None,
        schedule: str = "cosine",
        random_start: bool = True,
        seed: int = 0,
        precision: str = "auto",
        transforms: Sequence[Callable[[torch.Tensor, random.Random], torch.Tensor]] | None = None,
        callback: StepCallback | None = None,
    ):
        if eps < 0 or steps < 0:
            raise ValueError("eps and steps must be non-negative")
        self.ensemble = models if isinstance(models, Ensemble) else Ensemble([models])
        self.objective = objective
        self.eps = float(eps)
        self.steps = int(steps)
        self.alpha = float(alpha) if alpha is not None else min(self.eps, 2.5 * self.eps / math.sqrt(max(steps, 1)))
        self.schedule = schedule
        self.random_start = random_start
        self.seed = seed
        self.precision = precision
        self.transforms = list(transforms or [])
        self.callback = callback
        if objective.needs_decoder and self.ensemble.mimic is None:
            names = ", ".join(self.ensemble.names)
            raise ValueError(f"objective {objective.name!r} needs a decoder; none of {names} has one")

    def __call__(self, images: torch.Tensor, eps_map: torch.Tensor | None = None) -> torch.Tensor:
        """Cloak ``images`` (``B×3×H×W`` in [0,1]); returns the same shape with ``|δ| ≤ eps``.

        ``eps_map`` (broadcastable to ``images``, values in [0, eps]) replaces the flat budget per pixel.
        """
        x = images.detach().float().contiguous(memory_format=torch.channels_last)  # faster convolutions on CPU
        m = self.ensemble.multiple
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"image size {tuple(x.shape[-2:])} must be a multiple of {m} (pad first)")
        device = x.device
        precision = resolve_precision(self.precision, device)
        eps = self.eps if eps_map is None else eps_map.to(device).clamp(0, self.eps)
        # step in units of the local budget, so a per-pixel map shrinks the steps where it shrinks eps
        scale = 1.0 if eps_map is None else eps / max(self.eps, 1e-12)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        rng = random.Random(self.seed)

        with autocast(device, precision):
            losses = [(self.objective.setup(model, x), w) for model, w in self.ensemble]

        if self.random_start and self.eps > 0:
            noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(device)
            x_adv = project(x + noise * eps, x, eps)
        else:
            x_adv = x.clone()
        x_adv = x_adv.contiguous(memory_format=torch.channels_last)

        for i, a in enumerate(step_sizes(self.alpha, self.steps, self.schedule)):
            x_adv.requires_grad_(True)
            inp = x_adv
            if self.transforms:
                # transforms return plain-layout tensors; the convolutions are ~1.7x faster in channels_last
                inp = rng.choice(self.transforms)(x_adv, rng).contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                loss = sum(w * fn(inp).float().sum() for fn, w in losses)
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = project(x_adv - a * scale * grad.sign(), x, eps)
            if self.callback is not None:
                self.callback(i + 1, self.steps, float(loss.detach()) / x.shape[0])
        return x_adv.detach().contiguous()
