"""Differentiable "expectation over transformation" (EOT) transforms.

What a platform or a mimic does to an image between the artist's upload and the diffusion model's
encoder: recompression, rescaling, blur, cropping, noise, an autoencoder round trip. Each is a small
callable class, registered by name in :data:`TRANSFORMS`, called as ``t(x, rng) -> x'`` where ``x`` is
``B×3×H×W`` float in ``[0, 1]`` (usually requiring grad) and ``rng`` a :class:`random.Random` from which
the transform draws its parameters, so that a run is reproducible per seed. The output has the same
shape as ``x``, stays in ``[0, 1]`` and is differentiable with respect to ``x``.

:class:`glazeish.attack.PGD` samples one transform per step (``rng.choice(transforms)(x_adv, rng)``), so
the cloak is optimised for the average over these transforms rather than for the exact pixels, and
survives them better. Build a list with :func:`make_transforms` (``"jpeg,resize,blur,shift"``,
or :data:`DEFAULT_ROBUST`); add one
by subclassing :class:`Transform` and decorating it with :func:`register_transform`.

The heavy lifting is kornia's: its differentiable JPEG codec (Reich et al. 2024) and Gaussian filters are
tested, batched and device-agnostic, and behave the same under autocast. Every transform gives the same
bits on any number of CPU threads (the cloak's bytes must not depend on it): that is why ``resize`` uses
PyTorch's anti-aliased interpolation, not plain bilinear (whose CPU kernel rounds differently with the
thread count).
"""

from __future__ import annotations

import math
import random
from typing import Sequence

import torch
import torch.nn.functional as F
from kornia.enhance import jpeg_codec_differentiable
from kornia.filters import gaussian_blur2d

from .device import autocast, resolve_precision
from .encoders import require_decoder
from .imageio import pad_to_multiple
from .registry import Registered, Registry, split_specs

TRANSFORMS: Registry = Registry("transform")

#: The default EOT set for ``--robust``: what image hosts and scrapers do to every upload (recompress,
#: downscale, soften, crop), plus ``identity`` so that a fifth of the steps still optimise the untouched
#: image, which many sites serve as is (on taef2, 3 paintings at 256 px, 10 steps, adding ``identity``
#: left slightly more effect both on the clean image and after real JPEG/resize/blur). ``noise`` is
#: left out because no platform adds it and, at sigma up to 0.03 (8/255), it is larger than the usual
#: 4/255 budget; ``ae`` because it costs a decoder forward and backward per step. Each entry is one
#: equal-chance draw: repeat a name to weight it (``"jpeg,jpeg,resize"``); ``"jpeg"`` alone is best
#: against JPEG re-saves, and only against those.
DEFAULT_ROBUST = "identity,jpeg,resize,blur,shift"


#: class decorator: register a :class:`Transform` under its ``name``
register_transform = TRANSFORMS.register


def _range(value: float | Sequence[float], what: str) -> tuple[float, float]:
    """A number or a ``(low, high)`` pair -> ``(low, high)``."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ValueError(f"{what}: low {lo} > high {hi}")
    return lo, hi


class Transform(Registered):
    """Base class: ``t(x, rng) -> x'``, same shape, in ``[0, 1]``, differentiable in ``x``."""

    needs_model: bool = False  # built with ``model=`` (a LatentModel or Ensemble with a decoder)
    #: draws nothing from ``rng``: the same input always gives the same output (PGD then sets up the
    #: transformed original's reference once instead of every step)
    deterministic: bool = False

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


@register_transform
class Identity(Transform):
    name = "identity"
    description = "no change (keeps a share of EOT steps on the untouched image)"

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        return x


@register_transform
class JPEG(Transform):
    """Differentiable JPEG (kornia, 4:2:0 chroma, standard tables) at a quality drawn from ``quality``."""

    name = "jpeg"
    description = "differentiable JPEG re-encode, quality uniform in [50, 95]"

    def __init__(self, quality: float | Sequence[float] = (50.0, 95.0)):
        self.quality = _range(quality, "jpeg quality")
        if not 0 <= self.quality[0] <= self.quality[1] <= 100:
            raise ValueError(f"jpeg quality must lie in [0, 100], not {self.quality}")

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        q = rng.uniform(*self.quality)
        # kornia >= 0.7.1 pads internally (with zeros); padding here by replication is what libjpeg does
        # at the border and works with every kornia version.
        xp, (h, w) = pad_to_multiple(x, 16, mode="replicate")
        quality = torch.tensor([q], device=x.device, dtype=torch.float32)
        y = jpeg_codec_differentiable(xp.float(), quality)[..., :h, :w]
        return y.to(x.dtype).clamp(0, 1)


@register_transform
class Resize(Transform):
    """Downscale by a factor drawn from ``factor`` (anti-aliased bilinear, as Pillow does), then bilinear back up."""

    name = "resize"
    description = "anti-aliased downscale by a factor in [0.5, 1], bilinear back to the same size"

    def __init__(self, factor: float | Sequence[float] = (0.5, 1.0)):
        self.factor = _range(factor, "resize factor")
        if not 0 < self.factor[0] <= self.factor[1] <= 1:
            raise ValueError(f"resize factor must lie in (0, 1], not {self.factor}")

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        f = rng.uniform(*self.factor)
        h, w = x.shape[-2:]
        size = (max(1, round(h * f)), max(1, round(w * f)))
        if size == (h, w):
            return x
        # antialias=True both ways: the triangle filter widened to the scale (Pillow's BILINEAR) going down,
        # plain bilinear going up (within 2e-6), and unlike mode="bilinear" alone the same bits on any
        # number of threads
        small = F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)
        return F.interpolate(small, (h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


@register_transform
class Blur(Transform):
    """Gaussian blur with sigma drawn from ``sigma`` (kernel ``2·ceil(3σ)+1``, reflected border)."""

    name = "blur"
    description = "Gaussian blur, sigma uniform in [0.5, 1.5] px"

    def __init__(self, sigma: float | Sequence[float] = (0.5, 1.5)):
        self.sigma = _range(sigma, "blur sigma")
        if self.sigma[0] <= 0:
            raise ValueError(f"blur sigma must be positive, not {self.sigma}")

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        s = rng.uniform(*self.sigma)
        k = 2 * math.ceil(3 * s) + 1
        return gaussian_blur2d(x, (k, k), (s, s), border_type="reflect").clamp(0, 1)


@register_transform
class Shift(Transform):
    """Translate by whole pixels (up to ``max_shift`` each way): reflect-pad, then crop the shifted window.

    Whole-pixel shifts are exact (no resampling blur) and are what matters for a patch encoder: a shift
    that is not a multiple of its downscale factor moves the image against the latent grid, which is what
    a crop on upload or in a training pipeline does.
    """

    name = "shift"
    description = "crop/shift by up to 8 px each way (reflected border), same size"

    def __init__(self, max_shift: int = 8):
        if max_shift < 0:
            raise ValueError("max_shift must be non-negative")
        self.max_shift = int(max_shift)

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = min(self.max_shift, h - 1, w - 1)  # reflect padding needs pad < size
        dy, dx = rng.randint(-m, m), rng.randint(-m, m)
        if m <= 0 or (dx == 0 and dy == 0):
            return x
        xp = F.pad(x, (m, m, m, m), mode="reflect")
        return xp[..., m + dy : m + dy + h, m + dx : m + dx + w]


@register_transform
class Noise(Transform):
    """Additive Gaussian noise, sigma drawn from ``sigma``; the noise itself is drawn from a generator
    seeded off ``rng``, so it too is reproducible."""

    name = "noise"
    description = "additive Gaussian noise, sigma uniform in [0, 0.03]"

    def __init__(self, sigma: float | Sequence[float] = (0.0, 0.03)):
        self.sigma = _range(sigma, "noise sigma")
        if self.sigma[0] < 0:
            raise ValueError(f"noise sigma must be non-negative, not {self.sigma}")

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        s = rng.uniform(*self.sigma)
        gen = torch.Generator(device="cpu").manual_seed(rng.getrandbits(63))
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(device=x.device, dtype=x.dtype)
        return (x + s * noise).clamp(0, 1)


@register_transform
class AutoencoderRoundTrip(Transform):
    """Autoencoder purification ``D(E(x))`` through a :class:`~glazeish.encoders.LatentModel` with a decoder.

    A mimic can "wash" an image through a VAE before training; optimising through the round trip makes
    the cloak survive it. Deterministic (``rng`` is unused). Pads by replication to the model's
    ``multiple`` and crops back. Costs an encoder and a decoder pass, forward and backward.
    """

    name = "ae"
    description = "autoencoder purification D(E(x)) with a model that has a decoder (needs a model)"
    needs_model = True
    deterministic = True

    def __init__(self, model=None):
        self._model = require_decoder(model, "transform 'ae'")
        self.model = self._model.name

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        return self._model.round_trip(x).to(x.dtype).clamp(0, 1)


@register_transform
class Purify(Transform):
    """The adaptive mimic's purification as an EOT transform: IMPRESS++, shortened, with a straight-through gradient.

    IMPRESS++ (Hönig et al. 2024; :class:`glazeish.purify.ImpressPlusPlus`) adds Gaussian noise, then moves the
    image so that the autoencoder reproduces it (``‖D(E(x')) − x'‖²`` down, within ``eps`` of the noised image):
    that undoes what a cloak does to the mimic's view. Here: noise of a σ drawn from ``noise`` (the noise itself
    from a generator seeded off ``rng``), then ``steps`` signed-gradient steps of ``eps / steps`` on the same
    consistency loss, each projected back within ``eps`` of the noised image and into [0, 1].

    The consistency steps are not differentiated through (that would need second derivatives of the whole
    autoencoder): their change is added with its gradient stopped, so the attack sees the purified image and its
    gradient reaches ``x`` as if that change were constant (BPDA, Athalye et al. 2018); the noise is added
    normally. Needs a model with a decoder (the attacked one: the mimic purifies with the autoencoder it will
    train). Cost: ``steps`` encoder+decoder passes, forward and backward, per use, on top of the step's own.
    ``precision`` is that of those passes (``auto``: as :func:`glazeish.device.resolve_precision`).
    """

    name = "purify"
    description = ("IMPRESS++-style purification: Gaussian noise σ ≤ 0.05, then 2 consistency steps within 4/255 "
                   "(needs a model)")
    needs_model = True

    def __init__(self, model=None, noise: float | Sequence[float] = (0.0, 0.05), eps: float = 4 / 255,
                 steps: int = 2, precision: str = "auto"):
        self._model = require_decoder(model, "transform 'purify'")
        self.model = self._model.name
        self._noising = Noise(noise)  # step 1 is the ``noise`` transform: the same draws, the same checks
        self.noise = self._noising.sigma
        if eps < 0 or steps < 0:
            raise ValueError(f"purify eps and steps must be non-negative, not {eps}, {steps}")
        self.eps, self.steps = float(eps), int(steps)
        self.precision = precision

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        xn = self._noising(x, rng)
        if not self.steps or not self.eps:
            return xn
        base = xn.detach().float()
        lo, hi = (base - self.eps).clamp(min=0), (base + self.eps).clamp(max=1)
        xp = base.clone()
        device = x.device
        precision = resolve_precision(self.precision, device)
        with torch.enable_grad():
            for _ in range(self.steps):
                xp.requires_grad_(True)
                with autocast(device, precision):
                    loss = self._model.reconstruction_error(xp).sum()
                (grad,) = torch.autograd.grad(loss, xp)
                with torch.no_grad():
                    xp = torch.maximum(torch.minimum(xp - self.eps / self.steps * grad.sign(), hi), lo)
        return xn + (xp - base).to(x.dtype)


@register_transform
class PlatformChain(Transform):
    """``platform:NAME``: what a platform does to an upload (:data:`glazeish.platforms.PLATFORMS`), differentiable.

    The image is scaled down to the size the platform serves for an upload of the size the image will be
    written at (``upload``: ``(width, height)``, default the image's own size; antialiased bicubic, close to
    Pillow's Lanczos), re-encoded by the differentiable JPEG at the platform's quality (kornia's codec is 4:2:0:
    a 4:4:4 platform loses less colour than this; WebP is stood in for by JPEG at the same quality), and scaled
    back up (bilinear) so that the output has the input's shape. A platform that serves the uploaded pixels
    (``original``) only scales. Deterministic: ``rng`` is unused.
    """

    name = "platform"
    description = "what a platform does to an upload, platform:NAME (needs the name: instagram, x, bluesky, ...)"
    deterministic = True

    def __init__(self, platform: str = "instagram", upload: tuple[int, int] | None = None):
        from .platforms import get_platform

        self._platform = get_platform(platform)
        self.platform = self._platform.name
        self.upload = upload
        self._jpeg = None if self._platform.format == "original" else JPEG(self._platform.quality)

    @classmethod
    def from_spec(cls, arg: str | None = None, **context):
        from .platforms import named_in_spec

        return cls(named_in_spec(arg, "transform").name)

    def __call__(self, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
        h, w = x.shape[-2:]
        uw, uh = self.upload or (w, h)
        pw, ph = self._platform.posted_size(uw, uh)
        size = (max(1, round(h * ph / uh)), max(1, round(w * pw / uw)))  # the posted scale, applied to this crop
        y = x if size == (h, w) else F.interpolate(x, size, mode="bicubic", align_corners=False, antialias=True)
        if self._jpeg is not None:
            y = self._jpeg(y.clamp(0, 1), rng)
        if size != (h, w):
            y = F.interpolate(y, (h, w), mode="bilinear", align_corners=False, antialias=True)
        return y.clamp(0, 1)


def make_transforms(names: str | Sequence[str], model=None, precision: str = "auto") -> list[Transform]:
    """Build transforms from ``"jpeg,resize,blur"`` or ``["jpeg", "resize"]`` (default parameters).

    ``model`` (a LatentModel or Ensemble) is needed only by ``ae`` and ``purify``; ``precision`` goes to the
    transforms that run a model (a job passes the one it resolved, so that ``--precision fp32`` holds inside
    them too). An empty string gives ``[]``. Raises ValueError naming any unknown transform.
    """
    return TRANSFORMS.build_all([n.lower() for n in split_specs(names)], model=model, precision=precision)
