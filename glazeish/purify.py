"""Purifications: the counter-measures a cloak has to survive, one class per purification, registered by name.

A purification is built once and called as ``p(x) -> x'``: ``x`` a ``B×3×H×W`` float tensor in ``[0, 1]``
(CPU or CUDA, any H×W, odd sizes included), ``x'`` the same shape, float32, in ``[0, 1]``, on the same
device. These are the *real* operations (JPEG through Pillow's encoder, not a differentiable stand-in) and
they run without gradients. They are deterministic: the same input gives the same output on every call,
and anything random is drawn from a generator seeded by the constructor's ``seed``.

``p.name`` is the stable key a benchmark writes to its CSV (``jpeg75``, ``resize0.5``, ``ae:taef2``);
``p.description`` says in a few words what it does.

Add one by subclassing :class:`Purification`, giving it a unique ``name`` and a ``description``,
implementing ``apply`` and decorating the class with :func:`register_purification`::

    @register_purification
    class Grayscale(Purification):
        name = "gray"
        description = "convert to luma and back to RGB"

        def apply(self, x):
            return (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(x)

Purifications that need an (un-attacked) autoencoder subclass ``_ModelPurification`` (``needs_model``; the
benchmark runs these slow ones on fewer images) and take it as the constructor's ``model``. Build them by name with
:func:`make_purifications` (``"jpeg75,resize0.5,ae:taesana"``): every constructor gets the keywords it
accepts of ``model``, ``seed``, ``models_dir``, ... (the one registry protocol of :mod:`glazeish.registry`). Those that run a diffusers pipeline (``upscale``,
``diffpure``, ``gridpure``) set ``needs_pipeline`` and take it as ``upscaler=`` / ``pipeline=`` (a repo id or a
local folder); they are never in a default list. ``docs/purifiers.md`` compares the purifications taken from
papers (``impress++``, ``upscale``, ``diffpure``, ``gridpure``) with how their authors run them.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import os
from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .imageio import pad_to_multiple, resize_rgb
from .platforms import PLATFORMS, purification_specs
from .registry import Registered, Registry, accepted, split_specs

if TYPE_CHECKING:  # imported lazily at run time: the Pillow/kornia purifications need no model code
    from .encoders import LatentModel

PURIFICATIONS: Registry = Registry("purification")

#: what ``bench run`` measures by default: what platforms and a cheap mimic do to an image
DEFAULT_PURIFICATIONS: list[str] = [
    "jpeg75", "jpeg50", "webp", "resize0.5", "resize0.75", "blur1", "noise0.05", "median3", "tvd",
]
#: a cheap pair for quick checks
QUICK_PURIFICATIONS: list[str] = ["jpeg75", "resize0.75"]
#: every purification that needs nothing but the un-attacked model (``ae``, ``impress``)
ALL_PURIFICATIONS: list[str] = [
    "jpeg95", "jpeg75", "jpeg50", "webp", "resize0.5", "resize0.75", "blur1", "blur2", "noise0.05", "median3",
    "bits5", "tvd", "bilateral", "ae", "impress",
]

#: what every platform that re-encodes its uploads serves (``platforms``: the benchmark's "survives Instagram,
#: X, ..." table); those that serve the uploaded pixels keep a PNG cloak as it is
PLATFORM_PURIFICATIONS: list[str] = list(purification_specs([p for p in PLATFORMS.values() if p.format != "original"]))

_ALIASES = {"default": DEFAULT_PURIFICATIONS, "all": ALL_PURIFICATIONS, "quick": QUICK_PURIFICATIONS,
            "platforms": PLATFORM_PURIFICATIONS}


#: class decorator: register a :class:`Purification` under its ``name`` (unique)
register_purification = PURIFICATIONS.register


class Purification(Registered):
    """Base class. Subclasses set ``name``/``description`` and implement :meth:`apply`."""

    needs_model: ClassVar[bool] = False  # model-based (takes a LatentModel with a decoder as ``model``): slow
    #: the diffusers pipeline it runs, if any: ``"img2img"`` (constructor keyword ``pipeline``) or
    #: ``"upscaler"`` (keyword ``upscaler``); a repo id, a local folder or a built pipeline. Never in a default list
    needs_pipeline: ClassVar[str | None] = None
    #: False for a purification that changes the size (a platform's downscale): its figures are measured at the
    #: size it gives, against :meth:`resized` of the original
    keeps_size: ClassVar[bool] = True

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``B×3×H×W`` float32 in [0, 1] -> same shape (clamped and cast afterwards by ``__call__``)."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return self(x.unsqueeze(0))[0]
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected B×3×H×W images, got shape {tuple(x.shape)}")
        with torch.no_grad():
            y = self.apply(x.detach().to(torch.float32))
        if y.shape[:2] != x.shape[:2] or (self.keeps_size and y.shape != x.shape):  # a bug in a purification
            raise RuntimeError(f"{self.name}: output shape {tuple(y.shape)} != input shape {tuple(x.shape)}")
        return y.to(device=x.device, dtype=torch.float32).clamp(0, 1).contiguous()

    def resized(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` brought to the size :meth:`__call__` gives, with nothing else done to it: the reference a
        size-changing purification's own cost is measured against (``x`` itself where the size is kept)."""
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# ---------------------------------------------------------------------------------------------
# helpers


def _to_uint8_arrays(x: torch.Tensor) -> list[np.ndarray]:
    """``B×3×H×W`` [0,1] -> list of ``H×W×3`` uint8 arrays (rounded, as saving a PNG would)."""
    u8 = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(a) for a in u8]


def _from_uint8_arrays(arrays: list[np.ndarray], like: torch.Tensor) -> torch.Tensor:
    t = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    return t.to(like.device)


def _pil_roundtrip(x: torch.Tensor, fmt: str, **save_kw) -> torch.Tensor:
    """Encode every image with Pillow in ``fmt`` and decode it again."""
    out = []
    for a in _to_uint8_arrays(x):
        buf = io.BytesIO()
        Image.fromarray(a, "RGB").save(buf, format=fmt, **save_kw)
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(np.asarray(im.convert("RGB")))
    return _from_uint8_arrays(out, x)


def _pad_mode(x: torch.Tensor, pad: int) -> str:
    """``reflect`` where the image is large enough for it, else ``replicate``."""
    return "reflect" if min(x.shape[-2:]) > pad else "replicate"


def _shared_noise(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Standard Gaussian noise like ``x``, drawn on the CPU from ``seed`` (the same on every device), one draw
    shared by every image of the batch. The figures purify the original, the cloak and its baselines in one
    batch: with one draw they are purified alike (a paired comparison, as the pipeline purifications' per-image
    generators already are), so what differs afterwards is the cloak's doing, not two noise draws' (on 128²
    crops, independent draws left the mimic's views of every version ~26 dB from the purified original's and
    buried the cloak's effect under that floor). A batch of one gets the draw it always got."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn((1, *x.shape[1:]), generator=gen, dtype=torch.float32).to(x.device).expand_as(x)


def _check_model(model: "LatentModel | None", who: str) -> "LatentModel":
    from .encoders import require_decoder

    return require_decoder(model, f"purification {who!r}")


# ---------------------------------------------------------------------------------------------
# lossy compression (Pillow)


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
class WebP(Purification):
    name = "webp"
    description = "lossy WebP quality 80 (Pillow encode/decode)"
    quality: ClassVar[int] = 80

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return _pil_roundtrip(x, "WEBP", quality=self.quality, method=4, lossless=False)


@register_purification
class PlatformPost(Purification):
    """``platform:NAME``: what a platform serves after an upload (:func:`glazeish.platforms.post`): scaled down to
    its size with its filter, re-encoded as JPEG/WebP at its quality. The output is at the posted size."""

    name = "platform"
    description = "what a platform serves: platform:NAME (instagram, x, bluesky, ...) scales and re-encodes as it does"
    keeps_size = False

    def __init__(self, platform: str = "instagram", seed: int = 0):
        from .platforms import get_platform

        super().__init__(seed)
        self.platform = get_platform(platform)
        self.name = f"platform:{self.platform.name}"
        # the verdict reads "After posting on Instagram (at most 1080 px wide, JPEG q80 4:2:0, ...): ..."
        self.description = f"posting on {self.platform.title} ({self.platform.describe().split(': ', 1)[1]})"

    @classmethod
    def from_spec(cls, arg: str | None = None, **context):
        from .platforms import named_in_spec

        return cls(named_in_spec(arg, "purification").name, **accepted(cls, context))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        from .platforms import post

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


# ---------------------------------------------------------------------------------------------
# model-based purifications


class _ModelPurification(Purification):
    """A purification through an autoencoder: ``name`` uses the ``model`` it is given, ``name:<encoder>`` loads
    that encoder (``models_dir``)."""

    needs_model = True

    @classmethod
    def from_spec(cls, arg: str | None = None, **context):
        return super().from_spec(None, **_model_for(cls.name, arg, context))


@register_purification
class AutoencoderPurification(_ModelPurification):
    """``decode(encode(x))`` through an autoencoder that was not attacked (the bench passes it)."""

    name = "ae"
    description = "autoencoder round trip decode(encode(x)) with an un-attacked model"

    def __init__(self, model: "LatentModel | None" = None, seed: int = 0):
        super().__init__(seed)
        self.model = _check_model(model, "ae")
        self.name = f"ae:{self.model.name}"  # type: ignore[misc]  # per-instance key, e.g. "ae:taef2"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.round_trip(x.to(self.model.device))


@register_purification
class Impress(_ModelPurification):
    """IMPRESS-style consistency purification (Cao et al., 2023), without LPIPS: glazeish's quick variant.

    Optimises ``x'`` (from ``x``) with Adam to minimise ``‖D(E(x')) − x'‖² + lam·‖x' − x‖²``
    (per-pixel means, summed over the batch), clamping ``x'`` to [0, 1] after each step. A cloak makes
    the autoencoder's round trip inconsistent; pulling the image back to a point the autoencoder
    reproduces tends to strip it while ``lam`` keeps the image close to what it was.
    ``ssim_weight`` optionally adds ``ssim_weight·(1 − SSIM(x', x))/2`` as a structural closeness term.

    How it differs from the authors' IMPRESS (their released code and experiment script: start from ``x``
    plus Gaussian noise σ 0.1 on the [-1, 1] scale, 3000 Adam steps at lr 0.01 with cosine decay,
    closeness term ``0.1·max(LPIPS(x', x) − 0.1, 0)``): no LPIPS (its VGG weights are a download) but a
    squared-error closeness term, no initial noise, 20 constant-lr steps. It is cheap enough for the
    default benchmark list. For the version Hönig et al. (2024) run, with their Gaussian noising and an
    ℓ∞ bound in place of LPIPS, use ``impress++`` (:class:`ImpressPlusPlus`).

    ``lam = 3`` was picked on 128×128 crops (a painting, a flat cel image) cloaked with an 8/255 taef2
    texture attack: it left the purified image closest to the clean one (≈32–33 dB, vs ≈31–32 for the
    cloak), while ``lam = 1`` smooths the picture away (the round trip's blur wins) and ``lam ≥ 10``
    barely moves it. 20 steps cost 20 encoder+decoder forward/backward passes.
    """

    name = "impress"
    description = "IMPRESS consistency purification: 20 Adam steps on |D(E(x'))-x'|^2 + 3|x'-x|^2"

    def __init__(
        self,
        model: "LatentModel | None" = None,
        steps: int = 20,
        lr: float = 0.01,
        lam: float = 3.0,
        ssim_weight: float = 0.0,
        seed: int = 0,
    ):
        super().__init__(seed)
        self.model = _check_model(model, "impress")
        self.steps = int(steps)
        self.lr = float(lr)
        self.lam = float(lam)
        self.ssim_weight = float(ssim_weight)

    def consistency(self, x: torch.Tensor) -> torch.Tensor:
        """``‖D(E(x)) − x‖²`` per image (mean over pixels), differentiable in ``x``."""
        return self.model.reconstruction_error(x).flatten(1).mean(1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        x0 = x.to(self.model.device)
        xp = x0.clone().requires_grad_(True)
        opt = torch.optim.Adam([xp], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                loss = self.consistency(xp) + self.lam * (xp - x0).square().flatten(1).mean(1)
                if self.ssim_weight:
                    from kornia.losses import ssim_loss

                    loss = loss + self.ssim_weight * ssim_loss(xp, x0, 11, reduction="none").flatten(1).mean(1)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
                with torch.no_grad():
                    xp.clamp_(0, 1)
        return xp.detach()


@register_purification
class ImpressPlusPlus(_ModelPurification):
    """IMPRESS++ (Hönig et al., 2024, "Adversarial Perturbations Cannot Reliably Protect Artists From
    Generative AI"): Gaussian noising, then IMPRESS's consistency optimisation with an ℓ∞ bound in place
    of LPIPS.

    1. ``x_n = clip(x + N(0, noise²))``, rounded to 8 bits (their noising script writes PNGs).
    2. From ``x' = x_n``: Adam (lr ``lr``, Adam ε 1e-5, cosine decay to ``lr_min`` over ``steps``) on the
       consistency loss ``‖D(E(x')) − x'‖²`` (mean over pixels, on the [-1, 1] scale IMPRESS uses), and after
       every step ``x'`` is projected back onto ``‖x' − x_n‖∞ ≤ eps`` and into [0, 1].

    What the authors did, and where this differs:

    * The paper describes IMPRESS++ as IMPRESS with the reverse-encoding loss changed from patch similarity
      (LPIPS) to ℓ∞, plus Gaussian noising before it and two steps at sampling time (negative prompting, and
      post-processing of the generated images). Their released images "only include gaussian noising and
      reverse optimization", the sampling-time steps act on what a fine-tuned model generates, not on the
      training images, so they are not part of a purification and are not here.
    * Their IMPRESS++ code is not released. The optimiser settings are those of the IMPRESS code (Cao et
      al., 2023): Adam lr 0.01 with ε 1e-5, cosine annealing to 1e-5, 3000 iterations, start from the noised
      image. ``noise = 0.05`` is Hönig et al.'s Gaussian-noising σ (their ``--gaussian_noise 0.05`` on the
      [0, 1] scale), the same as IMPRESS's initial noise (0.1 on the [-1, 1] scale).
    * The bound is a hard projection (projected gradient descent). A hinge ``max(‖x' − x_n‖∞ − eps, 0)`` in
      the loss, the literal stand-in for IMPRESS's ``max(LPIPS − Δ, 0)``, only ever pushes on the one pixel
      at the maximum and does not keep the image within the bound. ``eps = 4/255`` is glazeish's choice
      (the paper's value was not available to us). On two 128×128 painting crops cloaked with the ``high``
      preset (6/255), 200 steps with taef2: at 4/255 the purified cloak was at 25.94 and 25.74 dB PSNR to
      the clean crop (Gaussian noising alone: 25.45, 25.43) and kept 0.824 and 0.863 of the cloak's taef2-latent
      shift (noising alone: 0.827, 0.860); at 0.1 it drifted to 25.11 and 23.93 dB and kept 1.123 and 1.168.
      No LPIPS anywhere: it needs downloaded VGG/AlexNet weights, and the ℓ∞ bound replaces it in IMPRESS++
      in any case.
    * The autoencoder is the un-attacked ``model`` given (taef2 in the benchmark), not a Stable Diffusion VAE.

    Cost: ``steps`` encoder+decoder forward/backward passes per batch, 3000 by default, 150 times the
    quick ``impress`` (pass ``steps=`` for a quicker check). Not in the default list for that reason.
    """

    name = "impress++"
    description = "IMPRESS++: Gaussian noise 0.05, then 3000 Adam steps on |D(E(x'))-x'|^2, |x'-x_noisy|_inf<=4/255"

    def __init__(
        self,
        model: "LatentModel | None" = None,
        noise: float = 0.05,
        eps: float = 4 / 255,
        steps: int = 3000,
        lr: float = 0.01,
        lr_min: float = 1e-5,
        seed: int = 0,
    ):
        super().__init__(seed)
        self.model = _check_model(model, "impress++")
        self.noise = float(noise)
        self.eps = float(eps)
        self.steps = int(steps)
        self.lr = float(lr)
        self.lr_min = float(lr_min)

    def consistency(self, x: torch.Tensor) -> torch.Tensor:
        """``‖D(E(x)) − x‖²`` per image on the [-1, 1] scale (mean over pixels), differentiable in ``x``."""
        return self.model.reconstruction_error(x, scale=2).flatten(1).mean(1)

    def noised(self, x: torch.Tensor) -> torch.Tensor:
        """Step 1: Gaussian noise (drawn on the CPU from ``seed``, one draw for the batch), clipped, rounded to 8
        bits."""
        return torch.round((x + self.noise * _shared_noise(x, self.seed)).clamp(0, 1) * 255) / 255

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        xn = self.noised(x.to(self.model.device))
        lo, hi = (xn - self.eps).clamp(min=0), (xn + self.eps).clamp(max=1)
        xp = xn.clone().requires_grad_(True)
        # IMPRESS's settings are for images on the [-1, 1] scale: there Adam moves a pixel by about lr a step,
        # here by lr/2 (gradients are twice as large, so Adam's epsilon doubles too)
        opt = torch.optim.Adam([xp], lr=self.lr / 2, eps=2e-5)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, self.steps), eta_min=self.lr_min / 2)
        with torch.enable_grad():
            for _ in range(self.steps):
                loss = self.consistency(xp)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    xp.copy_(torch.maximum(torch.minimum(xp, hi), lo))
        return xp.detach()


# ---------------------------------------------------------------------------------------------
# purifications through a diffusers pipeline (a repo id or a local folder; never in the default list)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def load_pipeline(spec, who: str, kind: str = "img2img", dtype: str | torch.dtype | None = None):
    """A diffusers pipeline from a repo id or a local folder (or one already built), progress bars off.

    ``kind``: ``img2img`` loads through ``AutoPipelineForImage2Image`` (any img2img-capable pipeline: SD 1.x/2.x,
    SDXL, ...); ``upscaler`` through ``DiffusionPipeline``. The safety checker is left out where there is one.
    """
    if spec is None or (isinstance(spec, (str, os.PathLike)) and not str(spec).strip()):
        what = "an img2img-capable diffusers pipeline" if kind == "img2img" else "a diffusers upscaler pipeline"
        key = "pipeline" if kind == "img2img" else "upscaler"
        example = ("stabilityai/stable-diffusion-xl-base-1.0" if kind == "img2img"
                   else "stabilityai/stable-diffusion-x4-upscaler")
        raise ValueError(f"purification {who!r} needs {key}=PATH: {what} (a local folder or repo id, e.g. {example})")
    if isinstance(spec, (str, os.PathLike)):
        import diffusers

        loader = diffusers.AutoPipelineForImage2Image if kind == "img2img" else diffusers.DiffusionPipeline
        kw = {"torch_dtype": _DTYPES.get(dtype, dtype)} if dtype is not None else {}
        try:
            pipe = loader.from_pretrained(str(spec), safety_checker=None, **kw)
        except (TypeError, ValueError):  # pipelines without a safety_checker argument
            pipe = loader.from_pretrained(str(spec), **kw)
    else:
        pipe = spec
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe


def _call_params(pipe) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(pipe.__call__).parameters)


def _size_multiple(pipe) -> int:
    """What H and W are padded to: the pipeline's pixel-per-latent factor, and at least 8."""
    proc = getattr(pipe, "image_processor", None)
    f = int(getattr(getattr(proc, "config", None), "vae_scale_factor", 0) or getattr(pipe, "vae_scale_factor", 8) or 8)
    return f * max(1, math.ceil(8 / f))


def _pad_array(a: np.ndarray, multiple: int) -> np.ndarray:
    """:func:`~glazeish.imageio.pad_to_multiple` for an ``H×W×3`` uint8 array (what a pipeline is given)."""
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    return pad_to_multiple(t, multiple)[0][0].permute(1, 2, 0).to(torch.uint8).numpy()


def _prompt_for(prompt, image: Image.Image) -> str:
    return str(prompt(image)) if callable(prompt) else str(prompt)


@contextlib.contextmanager
def _low_res_noise_at(pipe, level: int | None):
    """Make an SD ×4 upscaler noise its low-resolution input at timestep ``level`` instead of ``noise_level``.

    The authors' fork of diffusers adds ``noise_level_sub`` to the upscaler: the UNet is told ``noise_level``
    but the image is noised at ``noise_level - noise_level_sub``. Stock diffusers has no such argument; this
    wraps ``pipe.low_res_scheduler.add_noise`` for the duration of one call (``None``: stock behaviour).
    """
    sched = getattr(pipe, "low_res_scheduler", None)
    if level is None or sched is None:
        yield
        return
    own = "add_noise" in vars(sched)  # an instance attribute already (someone else's wrapper): put it back
    orig = sched.add_noise

    def add_noise(original, noise, timesteps):
        return orig(original, noise, torch.full_like(timesteps, int(level)))

    sched.add_noise = add_noise
    try:
        yield
    finally:
        if own:
            sched.add_noise = orig
        else:
            del sched.add_noise


class _PipelinePurification(Purification):
    """Shared by the purifications that run a diffusers pipeline on each image (one call per image)."""

    def __init__(self, pipeline, kind: str, device: str | torch.device | None, dtype, seed: int):
        super().__init__(seed)
        self.pipe = load_pipeline(pipeline, self.name, kind, dtype)
        self.params = _call_params(self.pipe)
        self.device = torch.device(device) if device is not None else None
        self.multiple = _size_multiple(self.pipe)

    def _to(self, x: torch.Tensor) -> torch.device:
        """Move the pipeline to ``device`` (default: the images' device) and return it."""
        dev = self.device or x.device
        if getattr(self.pipe, "device", None) != dev:
            self.pipe.to(dev)
        return dev

    def _default(self, key: str, fallback):
        p = self.params.get(key)
        return p.default if p is not None and p.default is not inspect.Parameter.empty and p.default is not None \
            else fallback

    def _kw(self, **kw) -> dict:
        """Only the keywords the pipeline's ``__call__`` takes (and no ``None`` values)."""
        return {k: v for k, v in kw.items() if v is not None and k in self.params}


@register_purification
class NoisyUpscale(_PipelinePurification):
    """Noisy upscaling as Hönig et al. (2024) run it: Gaussian noise, the SD ×4 upscaler, back to the size.

    Their code (``noise.py`` then ``upscale.py``), and what glazeish does:

    * Noise: ``clip(x + N(0, σ²))`` with σ = 0.1 (their noisy-upscaling example, ``--gaussian_noise 0.1``;
      scikit-image's ``random_noise``), written as an 8-bit PNG. Here: the same, the noise drawn from ``seed``.
    * Upscaler: ``stabilityai/stable-diffusion-x4-upscaler`` called with ``noise_level=320`` and, through
      their fork of diffusers, ``noise_level_sub=320``: the UNet is conditioned on noise level 320 but the
      pipeline noises the low-resolution image at level 320 − 320 = 0 (the Gaussian noise already added plays
      that part). Stock diffusers lacks ``noise_level_sub``; glazeish gets the same effect by wrapping the
      pipeline's ``low_res_scheduler.add_noise`` for the call (``added_noise_level=0``; ``None`` gives stock
      behaviour, noising at ``noise_level``). Steps and guidance are the pipeline's defaults they ran with:
      75 steps, guidance 9.0, no negative prompt.
    * Prompt: each image's BLIP-2 caption (``Salesforce/blip2-opt-2.7b`` prompted with "An illustration of"),
      from the protected image. Here ``prompt`` is one string for all images (default ``""``) or a captioner
      ``f(PIL image) -> str`` called on the input image; glazeish ships no captioner (it is a 2.7B download).
    * Size: they keep the ×4 output and their fine-tuning resizes it to 512 (bilinear, PIL). A purification
      returns the input's size, so the 8-bit ×4 output is resized back with PIL's (antialiased) bilinear filter.
      Odd sizes are padded (reflect) to a multiple of 8 first and the padding is cropped at the ×4 scale.

    Any diffusers upscaler pipeline works (repo id, local folder or a built pipeline as ``upscaler=``); the
    keywords a pipeline does not take (``noise_level`` for a latent upscaler, say) are left out. One pipeline
    call per image. Not in the default list: it needs the pipeline.
    """

    name = "upscale"
    description = "noisy upscaling: Gaussian noise 0.1, diffusers x4 upscaler (noise level 320, none added), resize"
    needs_pipeline = "upscaler"

    def __init__(
        self,
        upscaler=None,
        noise: float = 0.1,
        noise_level: int = 320,
        added_noise_level: int | None = 0,
        steps: int = 75,
        guidance: float = 9.0,
        prompt: str | Callable[[Image.Image], str] = "",
        negative_prompt: str | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        seed: int = 0,
    ):
        if not upscaler:
            raise ValueError(
                "purification 'upscale' needs --upscaler PATH: a diffusers upscaler pipeline "
                "(a local folder or repo id, e.g. stabilityai/stable-diffusion-x4-upscaler)"
            )
        super().__init__(upscaler, "upscaler", device, dtype, seed)
        self.upscaler = upscaler if isinstance(upscaler, (str, os.PathLike)) else type(upscaler).__name__
        self.noise = float(noise)
        self.noise_level = int(noise_level)
        self.added_noise_level = None if added_noise_level is None else int(added_noise_level)
        self.steps = int(steps)
        self.guidance = float(guidance)
        self.prompt = prompt
        self.negative_prompt = negative_prompt

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        self._to(x)
        noisy = x + self.noise * _shared_noise(x, self.seed)
        out = []
        for a, n in zip(_to_uint8_arrays(x), _to_uint8_arrays(noisy.clamp(0, 1))):
            prompt = _prompt_for(self.prompt, Image.fromarray(a, "RGB"))
            padded = _pad_array(n, self.multiple)
            kw = self._kw(prompt=prompt, negative_prompt=self.negative_prompt, num_inference_steps=self.steps,
                          guidance_scale=self.guidance, noise_level=self.noise_level)
            with _low_res_noise_at(self.pipe, self.added_noise_level):
                up = self.pipe(image=Image.fromarray(padded, "RGB"), output_type="np",
                               generator=torch.Generator(device="cpu").manual_seed(self.seed), **kw).images[0]
            up = (np.clip(np.asarray(up, dtype=np.float32), 0, 1) * 255).round().astype(np.uint8)  # their PNG
            sh, sw = up.shape[0] / padded.shape[0], up.shape[1] / padded.shape[1]
            up = up[: round(h * sh), : round(w * sw)]  # the padding, at the upscaler's scale
            back = Image.fromarray(np.ascontiguousarray(up), "RGB").resize((w, h), Image.BILINEAR)
            out.append(np.asarray(back))
        return _from_uint8_arrays(out, x)


@register_purification
class DiffPure(_PipelinePurification):
    """DiffPure (Nie et al., 2022) through a latent-diffusion img2img pipeline: noise the image's latent to
    ``t* = strength`` and denoise it, as Hönig et al. (2024) run it against style-mimicry protections.

    * Nie et al.: a pixel-space score model (ImageNet 256×256 guided diffusion), diffuse to t* (0.15 on
      ImageNet, 0.1 on CIFAR-10, their released scripts) and solve the reverse SDE. GrIDPure's baseline
      DiffPure: the same model, DDPM, t = 100 of 1000 steps on the image resized to 256×256.
    * Hönig et al. (paper; their DiffPure code is not released): SDXL's img2img at strength 0.2, prompted with
      the image's caption. That is the default here: ``strength=0.2``, through whatever img2img pipeline
      ``pipeline=`` names (repo id, local folder, or a built pipeline) and its own scheduler.
    * ``steps`` is diffusers' ``num_inference_steps`` (the length of the full schedule; img2img runs
      ``int(steps·strength)`` of them, at least one or the constructor refuses); default: the pipeline's own
      (50 for SD/SDXL, so 10 denoising steps at 0.2). ``guidance`` default: the pipeline's own.
    * ``prompt``: one string (default ``""``) or a captioner ``f(PIL image) -> str`` (the paper's captions
      came from BLIP-2; glazeish ships no captioner).
    * The image goes in at its own size (padded, reflect, to the pipeline's multiple and cropped back),
      as an 8-bit image; the denoised image comes back in float. One pipeline call per image, each with a
      generator seeded by ``seed``, so a batch gives the same result as its images one at a time.
    """

    name = "diffpure"
    description = "DiffPure via diffusers img2img: noise the latent to t*=0.2, denoise (Hoenig et al.'s setting)"
    needs_pipeline = "img2img"

    def __init__(
        self,
        pipeline=None,
        strength: float = 0.2,
        steps: int | None = None,
        prompt: str | Callable[[Image.Image], str] = "",
        negative_prompt: str | None = None,
        guidance: float | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        seed: int = 0,
    ):
        super().__init__(pipeline, "img2img", device, dtype, seed)
        if "strength" not in self.params:
            raise ValueError(f"purification {self.name!r}: {type(self.pipe).__name__} takes no strength; it needs an "
                             "img2img pipeline")
        self.strength = float(strength)
        if not 0 < self.strength <= 1:
            raise ValueError(f"purification {self.name!r}: strength (t*) must be in (0, 1], got {strength}")
        self.steps = int(steps) if steps is not None else int(self._default("num_inference_steps", 50))
        if int(self.steps * self.strength) < 1:
            raise ValueError(f"purification {self.name!r}: {self.steps} steps at strength {self.strength} run no "
                             "denoising step (img2img runs int(steps*strength)); raise steps or strength")
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.guidance = None if guidance is None else float(guidance)

    def purify_array(self, a: np.ndarray, gen: torch.Generator, prompt: str) -> np.ndarray:
        """One img2img pass over an ``H×W×3`` uint8 array; returns ``H×W×3`` float32 in [0, 1]."""
        h, w = a.shape[:2]
        padded = _pad_array(a, self.multiple)
        ph, pw = padded.shape[:2]
        size = {"height": ph, "width": pw} if "height" in self.params and "width" in self.params else {}
        kw = self._kw(prompt=prompt, negative_prompt=self.negative_prompt, guidance_scale=self.guidance, **size)
        res = self.pipe(image=Image.fromarray(padded, "RGB"), strength=self.strength, num_inference_steps=self.steps,
                        generator=gen, output_type="np", **kw).images[0]
        res = np.asarray(res, dtype=np.float32)
        if res.shape[:2] != (ph, pw):  # a pipeline that resized: back to the padded size
            t = torch.from_numpy(np.ascontiguousarray(res)).permute(2, 0, 1)[None]
            res = F.interpolate(t, size=(ph, pw), mode="bicubic", antialias=True, align_corners=False)[0]
            res = res.permute(1, 2, 0).numpy()
        return np.clip(res[:h, :w], 0, 1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self._to(x)
        out = []
        for a in _to_uint8_arrays(x):
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            out.append(self.purify_array(a, gen, _prompt_for(self.prompt, Image.fromarray(a, "RGB"))))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device)


@register_purification
class GrIDPure(DiffPure):
    """GrIDPure (Zhao et al., 2024): DiffPure on overlapping grids, merged, blended with the input, repeated.

    Their code (``gridpure.py``: ``--pure_steps 10 --pure_iter_num 20 --gamma 0.1``), and glazeish's:

    * Each iteration cuts the image into ``grid``×``grid`` tiles (256) at a stride of half a tile (128), the
      last row/column of tiles flush with the edge, plus one extra tile made of the image's four corners
      (each ``grid/2`` square, put together); purifies every tile; averages the overlaps (so the corners,
      covered once by the grid, get a second pass too); blends ``(1 − gamma)·purified + gamma·input`` with
      ``gamma = 0.1``; and stores the result as an 8-bit image (we round where their ``ToPILImage``
      truncates). ``iterations = 20``. Images smaller than a tile use tiles of the image's own size.
    * Each tile's purification: theirs is DiffPure with the unconditional pixel-space ImageNet 256×256 guided
      diffusion model, DDPM, t = 10 of 1000 steps (noise to t = 10, ten ancestral steps back). Here it is
      img2img through the given pipeline with ``strength = 0.01`` and ``steps = 1000``, so also noised to the
      10th of 1000 steps and 10 denoising steps, but in the pipeline's latent space with its scheduler; empty
      prompt and ``guidance = 1`` (no classifier-free guidance), the nearest to an unconditional model.
    * Every tile draws its noise from one generator seeded by ``seed`` per image, in a fixed order.

    Cost: ``iterations × (tiles + 1)`` pipeline calls per image (200 for a 512×512 image with the defaults).
    """

    name = "gridpure"
    description = "GrIDPure: img2img at t*=0.01 on 256px grids (stride 128) + corners, gamma 0.1 blend, 20 iterations"

    def __init__(
        self,
        pipeline=None,
        strength: float = 0.01,
        steps: int | None = 1000,
        iterations: int = 20,
        gamma: float = 0.1,
        grid: int = 256,
        stride: int | None = None,
        prompt: str | Callable[[Image.Image], str] = "",
        negative_prompt: str | None = None,
        guidance: float | None = 1.0,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        seed: int = 0,
    ):
        super().__init__(pipeline, strength=strength, steps=steps, prompt=prompt, negative_prompt=negative_prompt,
                         guidance=guidance, device=device, dtype=dtype, seed=seed)
        self.iterations = int(iterations)
        self.gamma = float(gamma)
        self.grid = int(grid)
        self.stride = int(stride) if stride is not None else max(1, self.grid // 2)
        if self.grid < 2 or self.stride < 1:
            raise ValueError(f"purification {self.name!r}: grid must be >= 2 and stride >= 1")

    @staticmethod
    def starts(size: int, tile: int, stride: int) -> list[int]:
        """Tile offsets along one axis: every ``stride``, and the last tile flush with the edge."""
        out = list(range(0, size - tile + 1, stride))
        if out[-1] != size - tile:
            out.append(size - tile)
        return out

    def grid_pass(self, a: np.ndarray, gen: torch.Generator, prompt: str) -> np.ndarray:
        """One iteration over an ``H×W×3`` uint8 array: purified tiles and corners, averaged (float32)."""
        h, w = a.shape[:2]
        th, tw = min(self.grid, h), min(self.grid, w)
        acc = np.zeros((h, w, 3), dtype=np.float64)
        cnt = np.zeros((h, w, 1), dtype=np.float64)
        for top in self.starts(h, th, min(self.stride, th)):
            for left in self.starts(w, tw, min(self.stride, tw)):
                acc[top:top + th, left:left + tw] += self.purify_array(a[top:top + th, left:left + tw], gen, prompt)
                cnt[top:top + th, left:left + tw] += 1
        ch, cw = th // 2, tw // 2
        if ch and cw:
            rows = (slice(0, ch), slice(h - ch, h))
            cols = (slice(0, cw), slice(w - cw, w))
            corners = np.concatenate([np.concatenate([a[r, c] for c in cols], axis=1) for r in rows], axis=0)
            pur = self.purify_array(np.ascontiguousarray(corners), gen, prompt)
            for i, r in enumerate(rows):
                for j, c in enumerate(cols):
                    acc[r, c] += pur[i * ch:(i + 1) * ch, j * cw:(j + 1) * cw]
                    cnt[r, c] += 1
        return (acc / cnt).astype(np.float32)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self._to(x)
        out = []
        for a in _to_uint8_arrays(x):
            prompt = _prompt_for(self.prompt, Image.fromarray(a, "RGB"))
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            for _ in range(self.iterations):
                merged = self.grid_pass(a, gen, prompt)
                blended = (1 - self.gamma) * merged + self.gamma * (a.astype(np.float32) / 255)
                a = (np.clip(blended, 0, 1) * 255).round().astype(np.uint8)
            out.append(a)
        return _from_uint8_arrays(out, x)


# ---------------------------------------------------------------------------------------------
# construction by name


def _model_for(name: str, arg: str | None, context: dict) -> dict:
    """The context with ``model`` set for ``name:<encoder>``: that encoder, loaded unless it was passed in."""
    model = context.get("model")
    if arg:
        from .encoders import first_with_decoder, load_encoder

        given = first_with_decoder(model)
        if given is None or given.name != arg:
            model = load_encoder(arg, context.get("models_dir"))
            device = getattr(given, "device", None)
            model = model.to(device) if device is not None else model
    return {**context, "model": model}


#: the names the common settings had before they became arguments (rows and scripts use them)
for _old, _spec in {"jpeg95": "jpeg:95", "jpeg75": "jpeg:75", "jpeg50": "jpeg:50", "resize0.5": "resize:0.5",
                    "resize0.75": "resize:0.75", "blur1": "blur:1", "blur2": "blur:2", "noise0.05": "noise:0.05"}.items():
    PURIFICATIONS.alias(_old, _spec)


def expand(names: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"quick,blur1"`` -> the names, aliases (``default``, ``quick``, ``all``, ``platforms``) expanded, ``none`` dropped,
    duplicates removed, every name checked (ValueError listing the known ones)."""
    out: list[str] = []
    for n in split_specs(names):
        if n.lower() != "none":
            out.extend(_ALIASES.get(n.lower(), [n]))
    out = list(dict.fromkeys(out))
    for n in out:
        PURIFICATIONS[n]
    return out


def make_purification(name: str, model: "LatentModel | None" = None, **kw) -> Purification:
    """Build one purification by name (``ae:<encoder>`` loads that encoder); keywords go to the constructor
    where it takes them (``seed``, ``steps``, ``upscaler``, ``models_dir``, ...)."""
    return PURIFICATIONS.build(name, model=model, **kw)


def make_purifications(names: str | list[str], model: "LatentModel | None" = None, **kw) -> list[Purification]:
    """Build a list from ``"jpeg75,resize0.5,ae"`` (or a list of names; ``quick``/``default``/``all`` expand).

    Unknown names raise ``ValueError`` listing the known ones before anything is built. Duplicates are
    dropped (also ``ae`` and ``ae:taef2`` when the model is taef2).
    """
    out: dict[str, Purification] = {}
    for n in expand(names):
        p = make_purification(n, model=model, **kw)
        out.setdefault(p.name, p)
    return list(out.values())
