"""The noise a cloak is judged against, made into 8-bit images exactly as a saved cloak is.

* :func:`same_psnr_noise` — the headline baseline: Gaussian noise scaled so that, after clipping to the 8-bit
  range and rounding, it has exactly the cloak's mean squared error (the same PSNR) over the visible pixels.
  Uniform noise at the cloak's L∞ budget has about 3 dB *less* energy than a cloak that uses its whole budget,
  which flatters the cloak; equal energy does not.
* :func:`uniform_noise` — uniform noise in ``[-eps, eps]`` (the same L∞ budget), kept as a second column.

Both draw from seeded CPU generators (the same bytes on every device) and leave transparent pixels alone.
"""

from __future__ import annotations

import numpy as np
import torch

from ..imageio import to_tensor, to_uint8

#: offsets that keep the baselines' draws apart from each other and from the attack's random start
UNIFORM_SEED_OFFSET = 7919
GAUSSIAN_SEED_OFFSET = 104_729
SUBSAMPLE = 1 << 20  # values on which σ is searched first, for large images


def _mask(alpha: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    return None if alpha is None else np.broadcast_to((np.asarray(alpha) > 0)[..., None], shape)


def mse_levels(a: np.ndarray, b: np.ndarray, alpha: np.ndarray | None = None) -> float:
    """Mean squared difference of two ``H×W×3`` uint8 images in 8-bit levels², over the visible pixels."""
    d = a.astype(np.float64) - b.astype(np.float64)
    m = _mask(alpha, d.shape)
    sq = np.square(d) if m is None else np.square(d[m])
    return float(sq.mean()) if sq.size else 0.0


def uniform_noise(original: np.ndarray, eps_levels: float, seed: int = 0, alpha: np.ndarray | None = None) -> np.ndarray:
    """``original`` plus uniform noise in ``±eps_levels/255``, rounded within the budget (``H×W×3`` uint8)."""
    eps = float(eps_levels) / 255
    x = to_tensor(original)
    gen = torch.Generator().manual_seed(int(seed) + UNIFORM_SEED_OFFSET)
    noisy = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
    out = to_uint8(noisy, original, eps)
    m = _mask(alpha, out.shape)
    return out if m is None else np.where(m, out, original)


def same_psnr_noise(
    original: np.ndarray, target_mse: float, seed: int = 0, alpha: np.ndarray | None = None, iterations: int = 40
) -> np.ndarray:
    """``original`` plus Gaussian noise whose clipped, rounded result has mean squared error ``target_mse``
    (8-bit levels²) over the visible pixels: the same PSNR as a cloak with that MSE (``H×W×3`` uint8).

    The noise pattern is one seeded standard-normal draw; its scale σ is found by bisection (clipping and
    rounding make the MSE a monotone step function of σ, so the result is the closest σ from below/above).
    """
    if target_mse <= 0:
        return original.copy()
    gen = np.random.Generator(np.random.PCG64(int(seed) + GAUSSIAN_SEED_OFFSET))
    n = gen.standard_normal(original.shape, dtype=np.float32)
    base = original.astype(np.float32)
    m = _mask(alpha, original.shape)
    if m is not None:
        n = np.where(m, n, 0).astype(np.float32)
    count = float(m.sum()) if m is not None else float(original.size)
    if count == 0:
        return original.copy()

    def make(sigma: float, b=base, z=n) -> np.ndarray:
        return np.clip(np.rint(b + sigma * z), 0, 255)

    def search(lo: float, hi: float, b: np.ndarray, z: np.ndarray, cnt: float, steps: int) -> tuple[float, float]:
        def mse(sigma: float) -> float:
            return float(np.square(make(sigma, b, z) - b, dtype=np.float64).sum() / cnt)

        while mse(hi) < target_mse and hi < 1e4:
            lo, hi = hi, hi * 2
        for _ in range(steps):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if mse(mid) < target_mse else (lo, mid)
        return lo, hi

    hi = max(1.0, 2 * float(np.sqrt(target_mse)))
    if original.size > SUBSAMPLE:  # a large image: find σ on every k-th value first, then refine on all of them
        k = original.size // SUBSAMPLE
        b, z = base.reshape(-1)[::k], n.reshape(-1)[::k]
        cnt = float(np.count_nonzero(z)) if m is not None else float(b.size)
        lo, hi = search(0.0, hi, b, z, max(cnt, 1.0), iterations)
        lo, hi = search(lo * 0.95, hi * 1.05, base, n, count, 10)
    else:
        lo, hi = search(0.0, hi, base, n, count, iterations)
    full = {s: float(np.square(make(s) - base, dtype=np.float64).sum() / count) for s in (lo, hi)}
    sigma = min(full, key=lambda s: abs(full[s] - target_mse))
    return make(sigma).astype(np.uint8)


def baselines(original: np.ndarray, cloaked: np.ndarray, eps_levels: float, seed: int = 0,
              alpha: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two baselines of a cloak: ``(same-PSNR Gaussian noise, same-L∞ uniform noise)``, ``H×W×3`` uint8."""
    return (same_psnr_noise(original, mse_levels(cloaked, original, alpha), seed, alpha),
            uniform_noise(original, eps_levels, seed, alpha))
