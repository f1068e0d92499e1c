"""The optimisation core: a projected-gradient (PGD) attack on one or several encoders.

In the style of torchattacks: every knob is explicit in the constructor, and ``attack(images)``
returns the cloaked images. Images are ``B×3×H×W`` float in ``[0, 1]`` with H, W multiples of the
encoders' ``multiple``. The budget is L∞: ``|δ| ≤ eps`` everywhere (or ``≤ eps_map`` per pixel when a
budget map is given), optionally with an energy bound ``mean(δ²) ≤ rms²`` (a PSNR bound), both enforced
by :func:`project`, the only place that clamps.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .device import autocast, channels_last, fixed_order_sum, resolve_precision
from .encoders import Ensemble, LatentModel
from .metrics import flat_mask
from .objectives import Objective
from .surrogate import Ghost, SkipGradient

StepCallback = Callable[[int, int, float], None]  # (step, steps, loss)


def project(
    x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor | float, rms: float | None = None,
    colour_only: torch.Tensor | None = None,
) -> torch.Tensor:
    """Project onto ``{x' : |x' - x| ≤ eps, 0 ≤ x' ≤ 1}``; ``eps`` a float or a map broadcastable to x.

    With ``rms`` also onto the energy ball ``mean((x' - x)²) ≤ rms²`` per image, the mean taken over the
    values whose budget is not zero (the ones the cloak may change: transparent pixels and the fixed
    context of a tile do not count; where every budget is positive that is the MSE, hence a PSNR bound).
    The exact Euclidean projection onto the intersection: ``δ = clip(s·v, box)`` with the one scale
    ``s ∈ (0, 1]`` that meets the energy bound (the KKT condition of a separable box plus a ball),
    found by bisection.

    ``colour_only`` (``B×1×H×W``, 1 where the change may not touch lightness) then takes the lightness component
    (:data:`LUMA`) out of the change at those pixels and shrinks each such pixel's change as a whole until it
    fits the box again (a uniform shrink keeps it colour-only; clipping channel by channel would not). Both only
    shrink the change, so the energy bound still holds: a feasible point, not the Euclidean projection.
    """
    out = _project(x_adv, x, eps, rms)
    return out if colour_only is None else _colour_only(out, x, eps, colour_only)


def _colour_only(x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor | float, mask: torch.Tensor) -> torch.Tensor:
    e = torch.as_tensor(eps, device=x.device, dtype=x.dtype)
    d = _without_luma(x_adv - x)
    room = torch.where(d > 0, torch.minimum(e, 1 - x), torch.minimum(e, x))  # how far each channel may go that way
    fit = (room / d.abs().clamp_min(1e-12)).amin(1, keepdim=True).clamp(max=1)
    return torch.where(mask.bool(), x + d * fit, x_adv)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor | float, rms: float | None) -> torch.Tensor:
    e = torch.as_tensor(eps, device=x.device)
    if rms is None:
        delta = torch.maximum(torch.minimum(x_adv - x, e), -e)
        return (x + delta).clamp(0, 1)
    lo, hi = torch.maximum(-e, -x), torch.minimum(e, 1 - x)  # the box, [0, 1] included
    v = x_adv - x
    dims = tuple(range(1, v.dim()))
    shape = (-1,) + (1,) * (v.dim() - 1)
    count = (e > 0).expand_as(v).sum(dims).clamp_min(1).view(shape)
    budget = float(rms) ** 2
    a = v.abs()
    cap = torch.where(v >= 0, hi, -lo)  # how far each value may move in v's direction
    # fixed-order sums: the bisection's comparisons must not follow the thread count
    energy = _energy(a, cap, count)
    e1 = energy(1.0)
    over = e1 > budget
    if bool(over.any()):
        # energy(s) grows with s, lies between s²·energy(1) and s²·mean(v²): bracket, then bisect
        s_hi = (budget / e1.clamp_min(1e-30)).sqrt().clamp(max=1)
        s_lo = (budget / (fixed_order_sum(a.square()).to(v) / count).clamp_min(1e-30)).sqrt().clamp(max=1)
        s_lo = torch.minimum(s_lo, s_hi)
        for _ in range(14):  # s_lo always fits: the result is within the budget, s within 2^-14 of the bracket
            mid = 0.5 * (s_lo + s_hi)
            fits = energy(mid) <= budget
            s_lo, s_hi = torch.where(fits, mid, s_lo), torch.where(fits, s_hi, mid)
        scale = torch.where(over, s_lo, torch.ones_like(s_lo))
        v = v * scale
    return (x + torch.minimum(torch.maximum(v, lo), hi)).clamp(0, 1)


def _energy(a: torch.Tensor, cap: torch.Tensor, count: torch.Tensor) -> Callable:
    """``s -> Σ min(a·s, cap)² / count`` per image (``s`` a float or ``B×1×…×1``), each sum in
    :func:`fixed_order_sum`'s order. On a CPU the bisection's 15 calls reuse two NumPy buffers instead of
    allocating and converting four tensors each: the same float32 products and float64 pairwise sums as the
    tensor expression, so the same bits (a 512² projection: 38 → 29 ms; a ``fast`` cloak makes 5)."""
    shape = (-1,) + (1,) * (a.dim() - 1)
    if a.device.type != "cpu":
        return lambda s: fixed_order_sum(torch.minimum(a * s, cap).square()).to(a) / count
    b = a.shape[0]
    # reshape, not view: a channels-last map is summed in its logical (N, C, H, W) order, as fixed_order_sum does
    a32 = a.detach().float().reshape(b, -1).numpy()
    cap32 = cap.detach().float().expand_as(a).reshape(b, -1).numpy()
    work, wide = np.empty_like(a32), np.empty(a32.shape, np.float64)

    def energy(s) -> torch.Tensor:
        scale = torch.as_tensor(s, dtype=torch.float32).reshape(-1, 1).numpy()
        np.multiply(a32, scale, out=work)
        np.minimum(work, cap32, out=work)
        np.square(work, out=work)
        wide[...] = work
        return torch.from_numpy(wide.sum(1)).view(shape).to(a) / count

    return energy


def _box_blur(d: torch.Tensor, k: int) -> torch.Tensor:
    """``d`` averaged over ``k×k`` windows (edges replicated), the same size."""
    return F.avg_pool2d(F.pad(d, (k // 2,) * 4, mode="replicate"), k, 1)


#: Rec. 709 luma weights, applied to the encoded values: a change's lightness, to first order
LUMA = (0.2126, 0.7152, 0.0722)


def _without_luma(d: torch.Tensor) -> torch.Tensor:
    """``d`` (``B×3×H×W``) minus its component along the luma weights: the isoluminant (colour-only) part."""
    w = torch.tensor(LUMA, dtype=d.dtype, device=d.device).view(1, 3, 1, 1)
    return d - w * (d * w).sum(1, keepdim=True) / sum(v * v for v in LUMA)


def _off(start: torch.Tensor, fills: torch.Tensor | None, chroma_only: bool = False) -> torch.Tensor:
    """A start with nothing on the flat fills (where its grain would show), or only its colour part there
    (``chroma_only``), or as it is without fills."""
    if fills is None:
        return start
    return start + fills * (_without_luma(start) - start) if chroma_only else start * (1 - fills)


def _on_fills(d: torch.Tensor, fills: torch.Tensor, smooth: int, chroma_only: bool) -> torch.Tensor:
    """A step ``d`` as the flat fills may take it: box-blurred over ``smooth`` px (a shading field, not grain)
    and/or without its lightness component (grain in colour alone, which the eye resolves far more coarsely than
    grain in lightness)."""
    if smooth:
        d = d + fills * (_box_blur(d, smooth) - d)
    if chroma_only:
        d = d + fills * (_without_luma(d) - d)
    return d


SCHEDULES = ("cosine", "linear", "constant", "photoguard")


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


REFERENCES = ("clean", "transformed")
OPTIMIZERS = ("sign", "l2", "adam")


class _Direction:
    """The step direction from successive gradients: optional MI-FGSM momentum, then sign / l2 / adam.

    Each direction has a per-pixel RMS of about 1 (exactly 1 for ``sign`` and ``l2``), so one step size
    means the same for all three.
    """

    def __init__(self, optimizer: str = "sign", momentum: float = 0.0, coarse: int = 0,
                 betas: tuple[float, float] = (0.9, 0.99)):
        self.optimizer, self.momentum, self.coarse, self.betas = optimizer, momentum, coarse, betas
        self.m: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.t = 0

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        d = self._direction(grad.float())
        if self.coarse > 1:
            # multi-scale: half the step from the gradient's coarse (coarse×coarse block mean) sign, upsampled
            # smoothly, so the perturbation also moves whole blocks, which a JPEG re-save keeps
            k = self.coarse
            low = F.avg_pool2d(grad.float(), k, ceil_mode=True).sign()
            low = F.interpolate(low, scale_factor=k, mode="bilinear", align_corners=False)[..., : d.shape[-2], : d.shape[-1]]
            d = 0.5 * (d + low)
        return d

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        n = g[0].numel()
        # per-image means in a fixed order (device.fixed_order_sum): the step's values, not just its sign, follow them
        mean = lambda t: (fixed_order_sum(t) / n).to(g)  # noqa: E731
        if self.momentum > 0:
            g = g / mean(g.abs()).clamp_min(1e-20)
            self.m = g if self.m is None else self.momentum * self.m + g
            g = self.m
        if self.optimizer == "sign":
            return g.sign()
        if self.optimizer == "l2":
            return g / mean(g.square()).sqrt().clamp_min(1e-20)
        b1, b2 = self.betas
        self.t += 1
        if self.momentum > 0:  # the momentum buffer already averages: Adam's first moment is the gradient
            m1 = g
        else:
            self.m = (1 - b1) * g if self.m is None else b1 * self.m + (1 - b1) * g
            m1 = self.m / (1 - b1**self.t)
        self.v = (1 - b2) * g.square() if self.v is None else b2 * self.v + (1 - b2) * g.square()
        d = m1 / ((self.v / (1 - b2**self.t)).sqrt() + 1e-12 * g.abs().amax())
        return d / mean(d.square()).sqrt().clamp_min(1e-20)


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
        reference: what a transformed step's objective compares against: ``clean`` (the untouched image's
            encoding, set up once) or ``transformed`` (the same transform, with the same random draws, applied
            to the untouched image and set up again: the cloak is then pushed away from what the equally
            purified original gives, which is how the figures judge it; one more forward pass per step).
        fill_smooth: on the image's flat fills (:func:`glazeish.metrics.flat_mask`: where grain shows) every step
            is box-blurred over this many px (odd; 0 = off) and the start is zero there, so the change on a fill
            is a smooth shading field instead of grain.
        fill_chroma: on the flat fills every step (and the random or given start) loses its lightness component
            (:data:`LUMA`): what change the fills get is colour alone, which the eye resolves far more coarsely.
        skip_grad: the skip-gradient factor on the attacked encoders' residual bodies (:class:`glazeish.surrogate.
            SkipGradient`, for transfer to other encoders); 1 = off. The loss is unchanged, only its gradient.
        ghost: the skip-erosion range of :class:`glazeish.surrogate.Ghost` (each step attacks the encoders with
            every residual body scaled by a factor drawn from ``[1 - ghost, 1 + ghost]``); 0 = off.
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
        optimizer: str = "sign",
        momentum: float = 0.0,
        rms: float | None = None,
        coarse: int = 0,
        transform_order: str = "random",
        reference: str = "clean",
        fill_smooth: int = 0,
        skip_grad: float = 1.0,
        ghost: float = 0.0,
        fill_chroma: bool = False,
    ):
        if eps < 0 or steps < 0:
            raise ValueError("eps and steps must be non-negative")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
        if schedule not in SCHEDULES:  # step_sizes would take any other word for cosine
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), not {momentum}")
        if rms is not None and rms < 0:
            raise ValueError("rms must be non-negative")
        if transform_order not in ("random", "cycle"):
            raise ValueError(f"transform_order must be random or cycle, not {transform_order!r}")
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {', '.join(REFERENCES)}, not {reference!r}")
        if fill_smooth < 0 or (fill_smooth and fill_smooth % 2 == 0):
            raise ValueError(f"fill_smooth must be 0 or an odd kernel size in px, not {fill_smooth}")
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
        self.optimizer = optimizer
        self.momentum = float(momentum)
        self.rms = None if rms is None else float(rms)
        self.coarse = int(coarse)
        self.transform_order = transform_order
        self.reference = reference
        self.fill_smooth = int(fill_smooth)
        self.fill_chroma = bool(fill_chroma)
        attacked = [model for model, _ in self.ensemble]
        self.skip_grad = SkipGradient(attacked, skip_grad)
        self.ghost = float(ghost)
        Ghost(attacked, self.ghost)  # (refuses a bad range now, not at the first image)
        if objective.needs_decoder and self.ensemble.mimic is None:
            names = ", ".join(self.ensemble.names)
            raise ValueError(f"objective {objective.name!r} needs a decoder; none of {names} has one")

    def __call__(self, images: torch.Tensor, eps_map: torch.Tensor | None = None,
                 start: torch.Tensor | None = None) -> torch.Tensor:
        """Cloak ``images`` (``B×3×H×W`` in [0,1]); returns the same shape with ``|δ| ≤ eps``.

        ``eps_map`` (broadcastable to ``images``, values in [0, eps]) replaces the flat budget per pixel.
        ``start`` (broadcastable to ``images``, in [-1, 1]: a fraction of the budget, e.g. a learned pattern of
        :mod:`glazeish.warmstart`) replaces the random start: the first iterate is ``project(x + start·eps)``.
        """
        x = channels_last(images.detach().float())  # a copy: see channels_last for why not .contiguous()
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

        with autocast(device, precision):  # (no steps, no loss: a learned start alone needs no forward pass)
            losses = [(self.objective.setup(model, x), w) for model, w in self.ensemble] if self.steps else []

        fills = flat_mask(x) if self.fill_smooth or self.fill_chroma else None
        chroma_start = self.fill_chroma and not self.fill_smooth  # a smoothed fill starts from nothing
        keep = fills if self.fill_chroma else None  # where the projection keeps the change colour-only
        if start is not None:
            x_adv = project(x + _off(start.to(device).float(), fills, chroma_start) * eps, x, eps, self.rms, keep)
        elif self.random_start and self.eps > 0:
            noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(device)
            x_adv = project(x + _off(noise, fills, chroma_start) * eps, x, eps, self.rms, keep)
        else:
            x_adv = x.clone()
        x_adv = x_adv.contiguous(memory_format=torch.channels_last)
        direction = _Direction(self.optimizer, self.momentum, self.coarse)
        ghost = Ghost([model for model, _ in self.ensemble], self.ghost, self.seed)  # its draws restart per call
        paired_losses: dict[int, list] = {}  # a deterministic transform's reference, set up once

        for i, a in enumerate(step_sizes(self.alpha, self.steps, self.schedule)):
            x_adv.requires_grad_(True)
            inp, step_losses = x_adv, losses
            if self.transforms:
                # transforms return plain-layout tensors; the convolutions are ~1.7x faster in channels_last
                t = self.transforms[i % len(self.transforms)] if self.transform_order == "cycle" else rng.choice(self.transforms)
                paired = self.reference == "transformed" and getattr(t, "name", None) != "identity"
                state = rng.getstate() if paired else None
                inp = t(x_adv, rng).contiguous(memory_format=torch.channels_last)
                if paired and id(t) in paired_losses:
                    step_losses = paired_losses[id(t)]
                elif paired:
                    twin = random.Random()
                    twin.setstate(state)  # the same draws (quality, σ, noise) for the untouched image
                    with torch.no_grad():
                        ref = t(x, twin).contiguous(memory_format=torch.channels_last)
                    with autocast(device, precision):
                        step_losses = [(self.objective.setup(model, ref), w) for model, w in self.ensemble]
                    if getattr(t, "deterministic", False):  # the same reference every time: its passes once
                        paired_losses[id(t)] = step_losses
            with autocast(device, precision), self.skip_grad, ghost:
                loss = sum(w * fn(inp).float().sum() for fn, w in step_losses)
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                d = direction(grad)
                if fills is not None:
                    d = _on_fills(d, fills, self.fill_smooth, self.fill_chroma)
                x_adv = project(x_adv - a * scale * d, x, eps, self.rms, keep)
            if self.callback is not None:
                self.callback(i + 1, self.steps, float(loss.detach()) / x.shape[0])
        return x_adv.detach().contiguous()
