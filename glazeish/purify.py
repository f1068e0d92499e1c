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

Purifications that need an (un-attacked) autoencoder set ``needs_model = True`` and take it as the
constructor's ``model``; :func:`make_purification` passes it.
"""

from __future__ import annotations

import inspect
import io
import math
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .registry import registrar

if TYPE_CHECKING:  # imported lazily at run time: the Pillow/kornia purifications need no model code
    from .encoders import LatentModel

PURIFICATIONS: dict[str, type["Purification"]] = {}

#: every purification of a full benchmark (``ae`` and ``impress`` need the un-attacked model)
DEFAULT_PURIFICATIONS: list[str] = [
    "jpeg95",
    "jpeg75",
    "jpeg50",
    "webp",
    "resize0.5",
    "resize0.75",
    "blur1",
    "blur2",
    "noise0.05",
    "median3",
    "bits5",
    "tvd",
    "bilateral",
    "ae",
    "impress",
]
#: a cheap pair for quick checks
QUICK_PURIFICATIONS: list[str] = ["jpeg75", "resize0.75"]

_ALIASES = {"default": DEFAULT_PURIFICATIONS, "all": DEFAULT_PURIFICATIONS, "quick": QUICK_PURIFICATIONS}


#: class decorator: register a :class:`Purification` under its ``name`` (unique)
register_purification = registrar(PURIFICATIONS, "purification")


class Purification:
    """Base class. Subclasses set ``name``/``description`` and implement :meth:`apply`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_model: ClassVar[bool] = False  # takes a LatentModel with a decoder as ``model``

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


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad bottom/right to a multiple of ``multiple`` (reflect where possible); returns the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    if h > ph and w > pw:
        return F.pad(x, (0, pw, 0, ph), mode="reflect"), (h, w)
    return F.pad(x, (0, pw, 0, ph), mode="replicate"), (h, w)


def _model_device(model: torch.nn.Module, fallback: torch.device) -> torch.device:
    for p in model.parameters():
        return p.device
    return fallback


def _check_model(model: "LatentModel | None", who: str) -> "LatentModel":
    if model is None:
        raise ValueError(f"purification {who!r} needs a model: an un-attacked LatentModel with a decoder")
    if not getattr(model, "has_decoder", False):
        raise ValueError(f"purification {who!r} needs a model with a decoder; {getattr(model, 'name', model)!r} has none")
    return model


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

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        dev = _model_device(self.model, x.device)
        xp, (h, w) = _pad_to_multiple(x.to(dev), self.model.multiple)
        return self.model.decode(self.model.encode(xp))[..., :h, :w]


@register_purification
class Impress(Purification):
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

    def consistency(self, x: torch.Tensor) -> torch.Tensor:
        """``‖D(E(x)) − x‖²`` per image (mean over pixels), differentiable in ``x``."""
        xp, (h, w) = _pad_to_multiple(x, self.model.multiple)
        rec = self.model.decode(self.model.encode(xp))[..., :h, :w]
        return (rec - x).square().flatten(1).mean(1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        dev = _model_device(self.model, x.device)
        x0 = x.to(dev)
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
class ImpressPlusPlus(Purification):
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
      at the maximum and does not keep the image within the bound. ``eps = 0.1`` on the [0, 1] scale is
      glazeish's choice (the paper's value was not available to us): enough room to undo a cloak of
      8–16/255 on top of the noise. No LPIPS anywhere: it needs downloaded VGG/AlexNet weights, and the ℓ∞
      bound replaces it in IMPRESS++ in any case.
    * The autoencoder is the un-attacked ``model`` given (glazeish's taef2 by default), not SD 2.1's VAE.

    Cost: ``steps`` encoder+decoder forward/backward passes per batch; the authors' 3000 steps take hours
    on a CPU at 512×512 (pass ``steps=`` for a quicker check). Not in the default list for that reason.
    """

    name = "impress++"
    description = "IMPRESS++: Gaussian noise 0.05, then 3000 Adam steps on |D(E(x'))-x'|^2 within |x'-x_noisy|_inf<=0.1"
    needs_model = True

    def __init__(
        self,
        model: "LatentModel | None" = None,
        noise: float = 0.05,
        eps: float = 0.1,
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
        xp, (h, w) = _pad_to_multiple(x, self.model.multiple)
        rec = self.model.decode(self.model.encode(xp))[..., :h, :w]
        return (2 * (rec - x)).square().flatten(1).mean(1)

    def noised(self, x: torch.Tensor) -> torch.Tensor:
        """Step 1: Gaussian noise (drawn on the CPU from ``seed``), clipped, rounded to 8 bits."""
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x.device)
        return torch.round((x + self.noise * noise).clamp(0, 1) * 255) / 255

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        dev = _model_device(self.model, x.device)
        xn = self.noised(x.to(dev))
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


@register_purification
class NoisyUpscale(Purification):
    """Noisy upscaling (Hönig et al., 2024): add Gaussian noise, run a diffusers upscaler, resize back.

    Needs a diffusers upscaler pipeline (e.g. a local copy of ``stabilityai/stable-diffusion-x4-upscaler``);
    it is not part of the default list.
    """

    name = "upscale"
    description = "noisy upscaling: Gaussian noise sigma 0.1, diffusers upscaler, resize back"

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
        noisy, _ = _pad_to_multiple(noisy, 8)
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


def needs_model(name: str) -> bool:
    """Whether the registered purification ``name`` (``ae:<encoder>`` allowed) needs a model."""
    return _lookup(name)[0].needs_model


def _lookup(name: str) -> tuple[type[Purification], str | None]:
    key, sep, arg = name.strip().partition(":")
    cls = PURIFICATIONS.get(key)
    if cls is None:
        raise ValueError(f"unknown purification {name.strip()!r}; known: {', '.join(PURIFICATIONS)}")
    return cls, (arg.strip() if sep else None)


def make_purification(name: str, model: "LatentModel | None" = None, **kw) -> Purification:
    """Build a registered purification by name.

    ``model`` goes to those that need one (``ae``, ``impress``) and is ignored by the others.
    ``ae:<encoder>`` / ``impress:<encoder>`` with no ``model`` load that encoder (``models_dir=`` in ``kw``).
    Other keywords go to the constructor (``seed``, ``steps``, ``upscaler``, ...).
    """
    cls, arg = _lookup(name)
    models_dir = kw.pop("models_dir", None)
    if not cls.needs_model:
        if arg is not None:
            raise ValueError(f"purification {cls.name!r} takes no ':<encoder>' part (got {name!r})")
        return cls(**kw)
    if model is None and arg:
        from .encoders import load_encoder

        model = load_encoder(arg, models_dir)
    elif model is not None and arg and arg != getattr(model, "name", None):
        raise ValueError(f"purification {name!r} asks for encoder {arg!r} but was given {model.name!r}")
    return cls(model=model, **kw)


def _split_names(names: str | list[str] | tuple[str, ...]) -> list[str]:
    parts = [names] if isinstance(names, str) else list(names)
    out: list[str] = []
    for part in parts:
        for n in str(part).split(","):
            n = n.strip()
            if not n or n.lower() == "none":
                continue
            out.extend(_ALIASES.get(n.lower(), [n]))
    return list(dict.fromkeys(out))


def make_purifications(names: str | list[str], model: "LatentModel | None" = None, **kw) -> list[Purification]:
    """Build a list from ``"jpeg75,resize0.5,ae"`` (or a list of names; ``quick``/``default`` expand).

    Unknown names raise ``ValueError`` listing the known ones. Keywords go to each constructor that
    accepts them (``seed=1`` to all, ``upscaler=PATH`` to ``upscale``). Duplicates are dropped.
    """
    wanted = _split_names(names)
    for n in wanted:  # validate every name before building anything (some are slow to build)
        _lookup(n)
    out: list[Purification] = []
    seen: set[str] = set()
    for n in wanted:
        cls, _ = _lookup(n)
        params = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        own = {k: v for k, v in kw.items() if takes_any or k in params or k == "models_dir"}
        p = make_purification(n, model=model, **own)
        if p.name not in seen:
            seen.add(p.name)
            out.append(p)
    return out


def describe() -> list[dict[str, str]]:
    """``[{"name", "description", "needs_model"}]`` for every registered purification (for ``--help``)."""
    return [
        {"name": c.name, "description": c.description, "needs_model": str(c.needs_model).lower()}
        for c in PURIFICATIONS.values()
    ]
