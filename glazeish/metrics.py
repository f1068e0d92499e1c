"""Image and latent metrics: plain functions of ``B×C×H×W`` float tensors in ``[0, 1]`` that return one value per
image (a tensor of shape ``B``; :func:`masked_mean` and :func:`flip` a float for one image), computed in float32
without gradients unless the caller enables them. The figures of a cloak are built from these by
:class:`glazeish.evaluation.Evaluator`, the only caller that decides what is compared with what.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from kornia.metrics import ssim as _kornia_ssim
from torch import nn

# Wang et al. 2003 weights for five scales
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _f32(*xs: torch.Tensor) -> list[torch.Tensor]:
    return [x.detach().float() if not x.requires_grad else x.float() for x in xs]


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = _f32(a, b)
    return (a - b).square().flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (``inf`` for identical images)."""
    return 10 * torch.log10(data_range**2 / mse(a, b))


def psnr_of_mse(mean_squared_error: float, data_range: float = 1.0) -> float:
    """PSNR in dB of a mean squared error on values in ``[0, data_range]`` (``inf`` for 0): the formula of
    :func:`psnr` for a figure that was summed elsewhere (over tiles, or in 8-bit levels with ``data_range=255``)."""
    if mean_squared_error <= 0:
        return math.inf
    return 10 * math.log10(data_range**2 / mean_squared_error)


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> torch.Tensor:
    """SSIM map ``B×C×(H−w+1)×(W−w+1)`` (Gaussian window ``w`` = 11 or the image's odd size, σ 1.5, kornia,
    valid part only: no padded border counts)."""
    a, b = _f32(a, b)
    window = min(window, a.shape[-1], a.shape[-2]) | 1
    if window > min(a.shape[-2:]):
        window -= 2
    return _kornia_ssim(a, b, max(window, 1), padding="valid")


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Mean SSIM (see :func:`ssim_map`); 1 for identical images."""
    return ssim_map(a, b, window).flatten(1).mean(1)


def masked_mean(value_map: torch.Tensor, mask: torch.Tensor | None) -> float:
    """Mean of a ``1×C×h×w`` map over the pixels where ``mask`` (``1×1×H×W``, centred crop to ``h×w``) is set;
    the plain mean without a mask (0 where nothing is visible)."""
    if mask is None:
        return float(value_map.mean())
    dh, dw = (mask.shape[-2] - value_map.shape[-2]) // 2, (mask.shape[-1] - value_map.shape[-1]) // 2
    m = mask[..., dh : dh + value_map.shape[-2], dw : dw + value_map.shape[-1]].to(value_map.dtype)
    n = float(m.sum()) * value_map.shape[1]
    return float((value_map * m).sum()) / n if n else 0.0


def flip(test: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean ꟻLIP error (NVIDIA's "how visible is the difference when flipping between two images", LDR, sRGB,
    67 pixels per degree) of ``1×3×H×W`` images in [0, 1], over the pixels where ``mask`` is set; 0 = identical.

    Computed by the ``flip-evaluator`` package (no downloaded weights); images smaller than the metric's
    filters are measured as they are.
    """
    import flip_evaluator

    def arr(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())

    err, _, _ = flip_evaluator.evaluate(arr(reference), arr(test), "LDR", applyMagma=False, computeMeanError=False)
    err = torch.from_numpy(np.ascontiguousarray(err)).permute(2, 0, 1)[None].to(test.device)
    return masked_mean(err, mask)


def _ssim_cs(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    """(SSIM, contrast-structure) means per image, for MS-SSIM."""
    c1, c2 = 0.01**2, 0.03**2
    coords = torch.arange(window, dtype=a.dtype, device=a.device) - window // 2
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = (g / g.sum())
    k = (g[:, None] * g[None, :]).expand(a.shape[1], 1, window, window)

    def blur(t):
        return F.conv2d(t, k, groups=a.shape[1])

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a**2
    sbb = blur(b * b) - mu_b**2
    sab = blur(a * b) - mu_a * mu_b
    cs = (2 * sab + c2) / (saa + sbb + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Multi-scale SSIM; uses as many of the 5 scales as the image size allows (≥ 11 px at the last)."""
    a, b = _f32(a, b)
    weights = []
    vals = []
    for i, w in enumerate(MS_SSIM_WEIGHTS):
        if min(a.shape[-2:]) < 11:
            break
        s, cs = _ssim_cs(a, b)
        weights.append(w)
        vals.append(cs.clamp_min(1e-6))
        last = s.clamp_min(1e-6)
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    if not vals:
        return ssim(a, b)
    vals[-1] = last
    w = torch.tensor(weights, device=a.device)
    w = w / w.sum()
    return torch.stack([v**wi for v, wi in zip(vals, w)]).prod(0)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per image of two ``B×...`` tensors (0 where either is constant)."""
    a, b = _f32(a, b)
    a, b = a.flatten(1), b.flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-12), torch.zeros_like(den))


def relative_l2(z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    """``‖z − z_ref‖₂ / ‖z_ref‖₂`` per image: how far a latent moved, independent of latent scale."""
    z, z_ref = _f32(z, z_ref)
    return (z - z_ref).flatten(1).norm(dim=1) / z_ref.flatten(1).norm(dim=1).clamp_min(1e-8)


def gram(f: torch.Tensor) -> torch.Tensor:
    """Normalised Gram matrix of a feature map ``B×C×H×W`` -> ``B×C×C``."""
    flat = f.float().flatten(2)
    return flat @ flat.transpose(1, 2) / flat.shape[2]


class StyleFeatures(nn.Module):
    """Intermediate activations of an encoder given as ``nn.Sequential`` (e.g. TAESANA), for a style
    distance measured by a network the cloak did not attack.
    """

    def __init__(self, net: nn.Sequential, layers: tuple[int, ...] | None = None):
        super().__init__()
        self.net = net
        # default: the output of each resolution stage (after its residual blocks)
        self.layers = layers or tuple(i for i in range(len(net) - 1) if not isinstance(net[i + 1], type(net[i])))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        h = x.float()
        for i, layer in enumerate(self.net):
            h = layer(h)
            if i in self.layers:
                feats.append(h)
        return feats


def style_distance(feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> torch.Tensor:
    """Gram + channel mean/std distance summed over layers (per image); 0 for identical features."""
    total = 0
    for fa, fb in zip(feats_a, feats_b):
        fa, fb = fa.float(), fb.float()
        total = total + (gram(fa) - gram(fb)).square().flatten(1).mean(1)
        total = total + (fa.mean((2, 3)) - fb.mean((2, 3))).square().mean(1)
        total = total + (fa.std((2, 3)) - fb.std((2, 3))).square().mean(1)
    return total


#: a pixel is on a flat fill when, in its 5×5 neighbourhood, no channel of the original varies by more than this
#: (1/255 units: a cel's fill, paper; JPEG-scanned paper still counts)
FLAT_RANGE_LEVELS = 3.0


def flat_mask(x: torch.Tensor, window: int = 5, range_levels: float = FLAT_RANGE_LEVELS) -> torch.Tensor:
    """``B×1×H×W`` float mask of the pixels of ``x`` (``B×3×H×W`` in [0, 1]) whose ``window``² neighbourhood is
    flat (max − min of every channel ≤ ``range_levels``/255): where any grain added to the image shows."""
    x = x.detach().float()
    pad = window // 2
    xp = F.pad(x, (pad,) * 4, mode="replicate")
    spread = F.max_pool2d(xp, window, 1) + F.max_pool2d(-xp, window, 1)
    return (spread.amax(1, keepdim=True) <= range_levels / 255 + 1e-6).float()


def high_pass(d: torch.Tensor, window: int = 5) -> torch.Tensor:
    """``d`` minus its ``window``² box mean (edges replicated): the grain of a change, without its smooth part."""
    pad = window // 2
    return d - F.avg_pool2d(F.pad(d, (pad,) * 4, mode="replicate"), window, 1)


def match_colour_stats(v: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``v`` with each channel's mean and standard deviation moved to ``ref``'s (``B×C×H×W``): what is left of a
    change once a global tint and contrast shift are taken out (Reinhard-style colour transfer, in RGB)."""
    v, ref = _f32(v, ref)
    mu_v, mu_r = v.mean((2, 3), keepdim=True), ref.mean((2, 3), keepdim=True)
    sd_v, sd_r = v.std((2, 3), keepdim=True), ref.std((2, 3), keepdim=True)
    return ((v - mu_v) * (sd_r / sd_v.clamp_min(1e-6)) + mu_r).clamp(0, 1)
