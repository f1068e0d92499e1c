"""Tiny AutoEncoder (TAE) modules: TAEF2 encoder/decoder and the TAESANA encoder.

Rebuilt from the architecture description shipped with the weights (madebyollin/taesd, MIT).
State-dict keys follow the ``nn.Sequential`` indices, so the upstream ``.pth`` files load as-is.

Conventions: images are float RGB in ``[0, 1]``, ``B×3×H×W``; TAEF2 latents are ``B×32×H/8×W/8``
(values roughly in ``[-3, 3]``), TAESANA latents ``B×32×H/32×W/32``.
"""

from __future__ import annotations

import torch
from torch import nn


def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class GlobalPool(nn.Module):
    """Per-pixel MLP whose GroupNorm takes statistics over the whole map (what makes it global)."""

    def __init__(self, ch: int = 64, hidden: int = 256):
        super().__init__()
        self.pool = nn.Sequential(
            nn.Conv2d(ch, hidden, 1, bias=False),
            nn.GroupNorm(4, hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, ch, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class Block(nn.Module):
    """relu(body(x) + skip(x)); optionally x = x + pool(x) first (TAEF2's lowest resolution)."""

    def __init__(self, n_in: int, n_out: int, use_pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        if use_pool:
            # registered as direct children so the keys read `pool.0`, `pool.1`, `pool.3`
            self.pool = GlobalPool(n_in).pool
        else:
            self.pool = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


class SoftClamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


def taef2_encoder(latent_channels: int = 32, ch: int = 64) -> nn.Sequential:
    """Image ``B×3×H×W`` in [0,1] (H, W multiples of 8) -> FLUX.2 latent ``B×32×H/8×W/8``."""
    return nn.Sequential(
        conv(3, ch), Block(ch, ch),
        conv(ch, ch, stride=2, bias=False), Block(ch, ch), Block(ch, ch), Block(ch, ch),
        conv(ch, ch, stride=2, bias=False), Block(ch, ch), Block(ch, ch), Block(ch, ch),
        conv(ch, ch, stride=2, bias=False),
        Block(ch, ch, use_pool=True), Block(ch, ch, use_pool=True), Block(ch, ch, use_pool=True),
        conv(ch, latent_channels),
    )


def taef2_decoder(latent_channels: int = 32, ch: int = 64) -> nn.Sequential:
    """FLUX.2 latent ``B×32×h×w`` -> image ``B×3×8h×8w`` (clamp the output to [0, 1] yourself)."""
    return nn.Sequential(
        SoftClamp(), conv(latent_channels, ch), nn.ReLU(),
        Block(ch, ch, use_pool=True), Block(ch, ch, use_pool=True), Block(ch, ch, use_pool=True),
        nn.Upsample(scale_factor=2), conv(ch, ch, bias=False),
        Block(ch, ch), Block(ch, ch), Block(ch, ch),
        nn.Upsample(scale_factor=2), conv(ch, ch, bias=False),
        Block(ch, ch), Block(ch, ch), Block(ch, ch),
        nn.Upsample(scale_factor=2), conv(ch, ch, bias=False),
        Block(ch, ch), conv(ch, 3),
    )


def taesana_encoder(latent_channels: int = 32) -> nn.Sequential:
    """Image ``B×3×H×W`` in [0,1] (H, W multiples of 32) -> Sana DC-AE latent ``B×32×H/32×W/32``."""
    return nn.Sequential(
        conv(3, 32, stride=2), nn.ReLU(), conv(32, 64, stride=2), nn.ReLU(), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, latent_channels),
    )
