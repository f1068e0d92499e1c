"""The noise a cloak is judged against, made into 8-bit images exactly as a saved cloak is.

* :func:`same_psnr_noise` — the headline baseline: Gaussian noise scaled so that, after clipping to the 8-bit
  range and rounding, it has exactly the cloak's mean squared error (the same PSNR) over the visible pixels.
  Uniform noise at the cloak's L∞ budget has about 3 dB *less* energy than a cloak that uses its whole budget,
  which flatters the cloak; equal energy does not.
* :func:`uniform_noise` — uniform noise in ``[-eps, eps]`` (the same L∞ budget), kept as a second column.
* :func:`rescaled_to_mse` — not noise: a given perturbation scaled to a given PSNR (a peer attack at the
  PSNR of glazeish's default, in the benchmark).

Both draw from seeded CPU generators (the same bytes on every device) and leave transparent pixels alone.
"""

from __future__ import annotations

import numpy as np
import torch

from ..imageio import to_tensor, to_uint8

#: offsets that keep the baselines' draws apart from each other and from the attack's random start
UNIFORM_SEED_OFFSET = 7919
GAUSSIAN_SEED_OFFSET = 104_729
DITHER_SEED_OFFSET = 15_485_863
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
    m = _mask(alpha, original.shape)
    if m is not None:
        n = np.where(m, n, 0).astype(np.float32)
    count = float(m.sum()) if m is not None else float(original.size)
    if count == 0:
        return original.copy()
    return _scaled_to_mse(original, n, target_mse, count, m is not None, iterations)


def rescaled_to_mse(original: np.ndarray, perturbed: np.ndarray, target_mse: float, seed: int = 0,
                    iterations: int = 40) -> np.ndarray:
    """``original`` plus the perturbation ``perturbed - original`` scaled by the one factor that gives mean
    squared error ``target_mse`` (8-bit levels²) once clipped and rounded: the same perturbation at another
    PSNR (``H×W×3`` uint8).

    ``perturbed`` is ``H×W×3`` in 8-bit levels: an attack's unrounded output (float) or a saved image (uint8).
    Values are rounded after adding a fixed dither (one seeded uniform draw in (-½, ½) per value), so that the
    MSE is a fine-grained monotone function of the scale: a sign-gradient attack's δ sits at ±eps almost
    everywhere, and plain rounding would move all of its values up or down a level at once.
    """
    delta = perturbed.astype(np.float32) - original.astype(np.float32)
    if target_mse <= 0 or not delta.any():
        return original.copy()
    gen = np.random.Generator(np.random.PCG64(int(seed) + DITHER_SEED_OFFSET))
    dither = ((gen.random(original.shape, dtype=np.float32) - 0.5) * 0.999).astype(np.float32)
    return _scaled_to_mse(original, delta, target_mse, float(original.size), False, iterations, dither)


def _scaled_to_mse(original: np.ndarray, pattern: np.ndarray, target_mse: float, count: float, masked: bool,
                   iterations: int, dither: np.ndarray | None = None) -> np.ndarray:
    """``original + s·pattern`` clipped to 8 bits and rounded (after adding ``dither`` to ``s·pattern``, when
    given), with the scale ``s`` whose MSE over ``count`` values is closest to ``target_mse``; ``masked``: the
    pattern is 0 outside the visible pixels, which a subsample counts by its non-zero values."""
    base = original.astype(np.float32)

    def make(s: float, b=base, z=pattern, u=dither) -> np.ndarray:
        return np.clip(np.rint(b + s * z) if u is None else b + np.rint(s * z + u), 0, 255)

    def search(lo: float, hi: float, b: np.ndarray, z: np.ndarray, u: np.ndarray | None, cnt: float,
               steps: int) -> tuple[float, float]:
        def mse(s: float) -> float:
            return float(np.square(make(s, b, z, u) - b, dtype=np.float64).sum() / cnt)

        while mse(hi) < target_mse and hi < 1e4:
            lo, hi = hi, hi * 2
        for _ in range(steps):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if mse(mid) < target_mse else (lo, mid)
        return lo, hi

    hi = max(1.0, 2 * float(np.sqrt(target_mse)))
    if original.size > SUBSAMPLE:  # a large image: find the scale on every k-th value first, then refine on all
        k = original.size // SUBSAMPLE
        b, z = base.reshape(-1)[::k], pattern.reshape(-1)[::k]
        u = None if dither is None else dither.reshape(-1)[::k]
        cnt = float(np.count_nonzero(z)) if masked else float(b.size)
        lo, hi = search(0.0, hi, b, z, u, max(cnt, 1.0), iterations)
        lo, hi = search(lo * 0.95, hi * 1.05, base, pattern, dither, count, 10)
    else:
        lo, hi = search(0.0, hi, base, pattern, dither, count, iterations)
    full = {s: float(np.square(make(s) - base, dtype=np.float64).sum() / count) for s in (lo, hi)}
    scale = min(full, key=lambda s: abs(full[s] - target_mse))
    return make(scale).astype(np.uint8)


def baselines(original: np.ndarray, cloaked: np.ndarray, eps_levels: float, seed: int = 0,
              alpha: np.ndarray | None = None, uniform: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The two baselines of a cloak: ``(same-PSNR Gaussian noise, same-L∞ uniform noise)``, ``H×W×3`` uint8;
    the second None unless ``uniform`` (the quick figures leave it out)."""
    return (same_psnr_noise(original, mse_levels(cloaked, original, alpha), seed, alpha),
            uniform_noise(original, eps_levels, seed, alpha) if uniform else None)
