"""Purifications on the pixels alone: lossy re-saves (JPEG, WebP, a platform's post) through Pillow, and
resampling and filters (torch / kornia, on the images' device)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..imageio import resize_rgb
from ..registry import accepted
from .base import (
    Purification,
    _from_uint8_arrays,
    _pad_mode,
    _pil_roundtrip,
    _shared_noise,
    _to_uint8_arrays,
    register_purification,
)


class _Setting(Purification):
    """A purification with one numeric setting, given as ``name:value`` (``jpeg:60``, ``resize:0.5``); built
    without one it takes ``default``. Its instance name is ``name`` + the value (``jpeg60``, ``resize0.5``): the
    stable key of the benchmark's rows, and the old names of the common settings (``jpeg75``) are aliases."""

    unit: ClassVar[type] = float
    default: ClassVar[float] = 0.0
    low: ClassVar[float] = 0.0  # the setting lies in (low, high], or [low, high] where ``closed``
    high: ClassVar[float] = math.inf
    closed: ClassVar[bool] = True
    what: ClassVar[str] = ""  # the description, with {} for the value

    def __init__(self, value: float | None = None, seed: int = 0):
        super().__init__(seed)
        v = self.default if value is None else value
        if not (self.low <= v if self.closed else self.low < v) or v > self.high:
            bound = (f"lie in {'[' if self.closed else '('}{self.low:g}, {self.high:g}]" if math.isfinite(self.high)
                     else f"be {'at least' if self.closed else 'above'} {self.low:g}")
            raise ValueError(f"purification {type(self).name!r}: the setting must {bound}, not {v:g}")
        self.value = self.unit(v)
        self.name = f"{type(self).name}{self.value:g}"
        self.description = self.what.format(self.value)

    @classmethod
    def from_spec(cls, arg: str | None = None, **context):
        try:
            value = None if arg is None else float(arg)
        except ValueError:
            raise ValueError(f"purification {cls.name!r}: {arg!r} is not a number (e.g. {cls.name}:{cls.default:g})") \
                from None
        if value is not None and cls.unit is int and not value.is_integer():
            raise ValueError(f"purification {cls.name!r}: the setting must be a whole number, not {arg}")
        return cls(value, **accepted(cls, context))


@register_purification
class JPEG(_Setting):
    name = "jpeg"
    description = "JPEG re-save at quality Q, 4:2:0 (Pillow encode/decode): jpeg:Q, default 75"
    unit, default, low, high, what = int, 75, 1, 100, "JPEG quality {}, 4:2:0 (Pillow encode/decode)"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        # subsampling=2 is 4:2:0, what photo sites and social platforms use
        return _pil_roundtrip(x, "JPEG", quality=self.value, subsampling=2, optimize=False)


@register_purification
class WebP(_Setting):
    """Lossy WebP through Pillow: ``webp`` at quality 80 (named ``webp``, the key the benchmark's rows have
    always used), ``webp:Q`` at quality Q (named ``webpQ``)."""

    name = "webp"
    description = "lossy WebP at quality Q (Pillow encode/decode): webp:Q, default 80"
    unit, default, low, high, what = int, 80, 1, 100, "lossy WebP quality {} (Pillow encode/decode)"
    quality: ClassVar[int] = 80  # the default's quality (the web page names the default export by it)

    def __init__(self, value: float | None = None, seed: int = 0):
        super().__init__(value, seed)
        if self.value == self.default:
            self.name = "webp"  # type: ignore[misc]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return _pil_roundtrip(x, "WEBP", quality=self.value, method=4, lossless=False)


@register_purification
class PlatformPost(Purification):
    """``platform:NAME``: what a platform serves after an upload (:func:`glazeish.platforms.post`): scaled down to
    its size with its filter, re-encoded as JPEG/WebP at its quality. The output is at the posted size."""

    name = "platform"
    description = "what a platform serves: platform:NAME (instagram, x, bluesky, ...) scales and re-encodes as it does"
    keeps_size = False

    def __init__(self, platform: str = "instagram", seed: int = 0):
        from ..platforms import get_platform

        super().__init__(seed)
        self.platform = get_platform(platform)
        self.name = f"platform:{self.platform.name}"
        # the verdict reads "After posting on Instagram (at most 1080 px wide, JPEG q80 4:2:0, ...): ..."
        self.description = f"posting on {self.platform.title} ({self.platform.describe().split(': ', 1)[1]})"

    @classmethod
    def from_spec(cls, arg: str | None = None, **context):
        from ..platforms import named_in_spec

        return cls(named_in_spec(arg, "purification").name, **accepted(cls, context))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        from ..platforms import post

        return _from_uint8_arrays([post(a, self.platform) for a in _to_uint8_arrays(x)], x)

    def resized(self, x: torch.Tensor) -> torch.Tensor:
        size = self.platform.posted_size(x.shape[-1], x.shape[-2])
        return _from_uint8_arrays([resize_rgb(a, size, self.platform.resample) for a in _to_uint8_arrays(x)], x)


# ---------------------------------------------------------------------------------------------
# resampling and filtering (torch / kornia, on the images' device)


@register_purification
class Resize(_Setting):
    name = "resize"
    description = "downscale by F (antialiased bicubic), bicubic back to the original size: resize:F, default 0.5"
    default, low, high, closed = 0.5, 0.0, 1.0, False
    what = "downscale to {:.0%} (antialiased bicubic), bicubic back to the original size"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        small = (max(1, round(h * self.value)), max(1, round(w * self.value)))
        # torch's antialiased bicubic reproduces Pillow's reducing filter
        y = F.interpolate(x, size=small, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        return F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)


@register_purification
class Blur(_Setting):
    name = "blur"
    description = "Gaussian blur of sigma S px: blur:S, default 1"
    default, low, closed, what = 1.0, 0.0, False, "Gaussian blur, sigma {:g} px"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.filters import gaussian_blur2d

        r = max(1, math.ceil(3 * self.value))
        return gaussian_blur2d(x, (2 * r + 1, 2 * r + 1), (self.value, self.value), border_type=_pad_mode(x, r))


@register_purification
class Noise(_Setting):
    name = "noise"
    description = "add Gaussian noise of sigma S (seeded), clamp to [0, 1]: noise:S, default 0.05"
    default, low, high, what = 0.05, 0.0, 1.0, "add Gaussian noise sigma {:g} (seeded), clamp to [0, 1]"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.value * _shared_noise(x, self.seed)


@register_purification
class Median3(Purification):
    name = "median3"
    description = "3x3 median filter"
    size: ClassVar[int] = 3

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.filters import median_blur

        return median_blur(x, self.size, border_type=_pad_mode(x, self.size // 2))


@register_purification
class Bits5(Purification):
    name = "bits5"
    description = "bit-depth reduction to 5 bits per channel (32 levels)"
    bits: ClassVar[int] = 5

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2**self.bits - 1
        return torch.round(x.clamp(0, 1) * levels) / levels


@register_purification
class TVDenoise(Purification):
    """Chambolle's projection algorithm for ``min_u ½‖u − x‖² + weight·TV(u)``, per channel.

    The same iteration as ``skimage.restoration.denoise_tv_chambolle`` (isotropic TV, fixed number of
    iterations so that the cost is known in advance).
    """

    name = "tvd"
    description = "total-variation denoise (Chambolle, weight 0.05, 50 iterations)"

    def __init__(self, weight: float = 0.05, iterations: int = 50, seed: int = 0):
        super().__init__(seed)
        self.weight = float(weight)
        self.iterations = int(iterations)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        tau = 0.25  # 1 / (2 * ndim): the step that makes the projection converge
        px = torch.zeros_like(x)
        py = torch.zeros_like(x)
        out = x
        for _ in range(self.iterations):
            # out = x - div(p), with backward differences and p = 0 past the last row/column
            d = -px - py
            d[..., :, 1:] += px[..., :, :-1]
            d[..., 1:, :] += py[..., :-1, :]
            out = x + d
            gx = torch.zeros_like(x)
            gy = torch.zeros_like(x)
            gx[..., :, :-1] = out[..., :, 1:] - out[..., :, :-1]
            gy[..., :-1, :] = out[..., 1:, :] - out[..., :-1, :]
            norm = torch.sqrt(gx.square() + gy.square()) * (tau / self.weight) + 1
            px = (px - tau * gx) / norm
            py = (py - tau * gy) / norm
        return out


@register_purification
class Bilateral(Purification):
    name = "bilateral"
    description = "bilateral filter, 5x5, sigma_color 0.1, sigma_space 1.5 px"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.filters import bilateral_blur

        return bilateral_blur(x, 5, 0.1, (1.5, 1.5), border_type=_pad_mode(x, 2))
