"""Image and latent metrics. All take ``B×C×H×W`` float tensors in ``[0, 1]`` and return one value per
image (a tensor of shape ``B``), computed in float32 without gradients unless the caller enables them.
"""

from __future__ import annotations

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
    """Peak signal-to-noise ratio in dB (``inf`` for identical images)."""
    return 10 * torch.log10(data_range**2 / mse(a, b))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Mean SSIM (Gaussian window 11, σ 1.5, kornia); 1 for identical images."""
    a, b = _f32(a, b)
    window = min(window, a.shape[-1], a.shape[-2]) | 1
    return _kornia_ssim(a, b, window, padding="valid").flatten(1).mean(1)


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


def linf(delta: torch.Tensor) -> torch.Tensor:
    return delta.detach().float().abs().flatten(1).amax(1)


def l2(delta: torch.Tensor) -> torch.Tensor:
    return delta.detach().float().flatten(1).norm(dim=1)


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
