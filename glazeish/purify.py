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

Purifications that need an (un-attacked) autoencoder set ``needs_model = True`` (the benchmark runs these
slow ones on fewer images) and take it as the constructor's ``model``. Build them by name with
:func:`make_purifications` (``"jpeg75,resize0.5,ae:taesana"``): every constructor gets the keywords it
accepts of ``model``, ``seed``, ``models_dir``, ... (the one registry protocol of :mod:`glazeish.registry`).
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .imageio import pad_to_multiple
from .registry import Registered, Registry, split_specs

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

_ALIASES = {"default": DEFAULT_PURIFICATIONS, "all": ALL_PURIFICATIONS, "quick": QUICK_PURIFICATIONS}


#: class decorator: register a :class:`Purification` under its ``name`` (unique)
register_purification = PURIFICATIONS.register


class Purification(Registered):
    """Base class. Subclasses set ``name``/``description`` and implement :meth:`apply`."""

    needs_model: ClassVar[bool] = False  # model-based (takes a LatentModel with a decoder as ``model``): slow
    needs_pipeline: ClassVar[bool] = False  # needs a diffusers pipeline the user names: never in a default list

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
        if y.shape != x.shape:  # a bug in a purification, not the caller's fault
            raise RuntimeError(f"{self.name}: output shape {tuple(y.shape)} != input shape {tuple(x.shape)}")
        return y.to(device=x.device, dtype=torch.float32).clamp(0, 1).contiguous()

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


def _check_model(model: "LatentModel | None", who: str) -> "LatentModel":
    from .encoders import require_decoder

    return require_decoder(model, f"purification {who!r}")


# ---------------------------------------------------------------------------------------------
# lossy compression (Pillow)


class _JPEG(Purification):
    quality: ClassVar[int] = 75

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        # subsampling=2 is 4:2:0, what photo sites and social platforms use
        return _pil_roundtrip(x, "JPEG", quality=self.quality, subsampling=2, optimize=False)


@register_purification
class JPEG95(_JPEG):
    name = "jpeg95"
    description = "JPEG quality 95, 4:2:0 (Pillow encode/decode)"
    quality = 95


@register_purification
class JPEG75(_JPEG):
    name = "jpeg75"
    description = "JPEG quality 75, 4:2:0 (Pillow encode/decode)"
    quality = 75


@register_purification
class JPEG50(_JPEG):
    name = "jpeg50"
    description = "JPEG quality 50, 4:2:0 (Pillow encode/decode)"
    quality = 50


@register_purification
class WebP(Purification):
    name = "webp"
    description = "lossy WebP quality 80 (Pillow encode/decode)"
    quality: ClassVar[int] = 80

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return _pil_roundtrip(x, "WEBP", quality=self.quality, method=4, lossless=False)


# ---------------------------------------------------------------------------------------------
# resampling and filtering (torch / kornia, on the images' device)


class _Resize(Purification):
    scale: ClassVar[float] = 0.5

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        small = (max(1, round(h * self.scale)), max(1, round(w * self.scale)))
        # torch's antialiased bicubic reproduces Pillow's reducing filter
        y = F.interpolate(x, size=small, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        return F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)


@register_purification
class Resize050(_Resize):
    name = "resize0.5"
    description = "downscale to 50% (antialiased bicubic), bicubic back to the original size"
    scale = 0.5


@register_purification
class Resize075(_Resize):
    name = "resize0.75"
    description = "downscale to 75% (antialiased bicubic), bicubic back to the original size"
    scale = 0.75


class _Blur(Purification):
    sigma: ClassVar[float] = 1.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.filters import gaussian_blur2d

        r = max(1, math.ceil(3 * self.sigma))
        return gaussian_blur2d(x, (2 * r + 1, 2 * r + 1), (self.sigma, self.sigma), border_type=_pad_mode(x, r))


@register_purification
class Blur1(_Blur):
    name = "blur1"
    description = "Gaussian blur, sigma 1 px"
    sigma = 1.0


@register_purification
class Blur2(_Blur):
    name = "blur2"
    description = "Gaussian blur, sigma 2 px"
    sigma = 2.0


@register_purification
class Noise005(Purification):
    name = "noise0.05"
    description = "add Gaussian noise sigma 0.05 (seeded), clamp to [0, 1]"
    sigma: ClassVar[float] = 0.05

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        # drawn on the CPU so that a seed gives the same noise on every device
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x.device)
        return x + self.sigma * noise


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


@register_purification
class AutoencoderPurification(Purification):
    """``decode(encode(x))`` through an autoencoder that was not attacked (the bench passes it)."""

    name = "ae"
    description = "autoencoder round trip decode(encode(x)) with an un-attacked model"
    needs_model = True

    def __init__(self, model: "LatentModel | None" = None, seed: int = 0):
        super().__init__(seed)
        self.model = _check_model(model, "ae")
        self.name = f"ae:{self.model.name}"  # type: ignore[misc]  # per-instance key, e.g. "ae:taef2"

    @classmethod
    def from_spec(cls, arg: str | None = None, **context):
        """``ae`` uses the ``model`` it is given; ``ae:<encoder>`` loads that encoder (``models_dir``)."""
        return super().from_spec(None, **_model_for(cls.name, arg, context))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.round_trip(x.to(self.model.device))


@register_purification
class Impress(Purification):
    """IMPRESS-style consistency purification (Cao et al., 2023), without LPIPS.

    Optimises ``x'`` (from ``x``) with Adam to minimise ``‖D(E(x')) − x'‖² + lam·‖x' − x‖²``
    (per-pixel means, summed over the batch), clamping ``x'`` to [0, 1] after each step. A cloak makes
    the autoencoder's round trip inconsistent; pulling the image back to a point the autoencoder
    reproduces tends to strip it while ``lam`` keeps the image close to what it was.
    ``ssim_weight`` optionally adds ``ssim_weight·(1 − SSIM(x', x))/2`` as a structural closeness term.

    ``lam = 3`` was picked on 128×128 crops (a painting, a flat cel image) cloaked with an 8/255 taef2
    texture attack: it left the purified image closest to the clean one (≈32–33 dB, vs ≈31–32 for the
    cloak), while ``lam = 1`` smooths the picture away (the round trip's blur wins) and ``lam ≥ 10``
    barely moves it. 20 steps cost 20 encoder+decoder forward/backward passes.
    """

    name = "impress"
    description = "IMPRESS consistency purification: 20 Adam steps on |D(E(x'))-x'|^2 + 3|x'-x|^2"
    needs_model = True

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

    @classmethod
    def from_spec(cls, arg: str | None = None, **context):
        """``impress`` uses the ``model`` it is given; ``impress:<encoder>`` loads that encoder."""
        return super().from_spec(None, **_model_for(cls.name, arg, context))

    def consistency(self, x: torch.Tensor) -> torch.Tensor:
        """``‖D(E(x)) − x‖²`` per image (mean over pixels), differentiable in ``x``."""
        return (self.model.round_trip(x) - x).square().flatten(1).mean(1)

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
class NoisyUpscale(Purification):
    """Noisy upscaling (Hönig et al., 2024): add Gaussian noise, run a diffusers upscaler, resize back.

    Needs a diffusers upscaler pipeline (e.g. a local copy of ``stabilityai/stable-diffusion-x4-upscaler``);
    it is not part of the default list.
    """

    name = "upscale"
    description = "noisy upscaling: Gaussian noise sigma 0.1, diffusers upscaler, resize back"
    needs_pipeline = True

    def __init__(
        self,
        upscaler: str | None = None,
        noise: float = 0.1,
        steps: int = 20,
        prompt: str = "",
        seed: int = 0,
    ):
        super().__init__(seed)
        if not upscaler:
            raise ValueError(
                "purification 'upscale' needs --upscaler PATH: a diffusers upscaler pipeline "
                "(a local folder or repo id, e.g. stabilityai/stable-diffusion-x4-upscaler)"
            )
        import diffusers

        self.upscaler = str(upscaler)
        self.noise = float(noise)
        self.steps = int(steps)
        self.prompt = prompt
        self.pipe = diffusers.DiffusionPipeline.from_pretrained(self.upscaler)
        self.pipe.set_progress_bar_config(disable=True)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noisy = (x + self.noise * torch.randn(x.shape, generator=gen).to(x.device)).clamp(0, 1)
        noisy, _ = pad_to_multiple(noisy, 8)
        self.pipe.to(x.device)
        images = [Image.fromarray(a, "RGB") for a in _to_uint8_arrays(noisy)]
        out = self.pipe(
            prompt=[self.prompt] * len(images),
            image=images,
            num_inference_steps=self.steps,
            generator=torch.Generator(device="cpu").manual_seed(self.seed),
            output_type="np",
        ).images
        up = torch.from_numpy(np.asarray(out, dtype=np.float32)).permute(0, 3, 1, 2).to(x.device)
        # crop the padding away at the upscaler's scale, then back to the original size
        sh, sw = up.shape[-2] / noisy.shape[-2], up.shape[-1] / noisy.shape[-1]
        up = up[..., : round(h * sh), : round(w * sw)]
        return F.interpolate(up, size=(h, w), mode="bicubic", antialias=True, align_corners=False)


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


def expand(names: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"quick,blur1"`` -> the names, aliases (``default``, ``quick``, ``all``) expanded, ``none`` dropped,
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
