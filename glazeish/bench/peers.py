"""The peers, run as their authors ran them, and the same attacks at the PSNR of glazeish's default.

* ``photoguard-encoder-style`` — PhotoGuard's encoder attack (Salman et al. 2023, MadryLab/photoguard), as its
  img2img notebook runs it: minimise ``‖E(x')‖₂`` (pull the latent to the zero latent), L∞ 0.06 on the
  [-1, 1] scale (7.65/255), sign steps of 0.02 (2.55/255) decaying linearly toward 1/100 of that, 1000
  iterations, a uniform random start. ``photoguard-encoder-style:grey`` is their demo app's variant: toward
  the latent of a grey image, L∞ 0.12 (15.3/255), steps of 0.01, 200 iterations.
* ``mist-textural-style`` — Mist's textural mode (Liang et al. 2023, psyker-team/mist, ``mode`` 1): minimise the
  summed squared distance between ``E(x')`` and the latent of a target image resized to the image, L∞ 16/255,
  constant sign steps of 1/255, 100 iterations, advertorch's uniform random start. The target is the user's
  (``--mist-target``: Mist's own ``MIST.png`` is GPL-3.0 and not shipped here); without one, glazeish's
  built-in decoy pattern stands in and the protection is named ``mist-textural-style:decoy``.
* ``psnr-matched:<protection>`` — the wrapped protection at the PSNR that ``glazeish-default`` has on each
  image: a peer's attack is run again at the L∞ budget that reaches that PSNR (step size scaled with the
  budget), then its δ is scaled to the exact mean squared error
  (:func:`glazeish.evaluation.rescaled_to_mse`); any other protection's δ is only scaled.

Names say ``-style``: the model attacked is the benchmark's encoder (TAEF2 by default), not Stable Diffusion's
VAE. Both peers are built from explicit :class:`PeerSettings` and call :class:`~glazeish.attack.PGD` directly —
never a :class:`~glazeish.config.ProtectConfig` — so no glazeish preset's JPEG simulation, budget map, step
schedule or step count reaches them; they run in float32 on the whole image (no tiles). ``docs/peers.md``
gives every setting with the file and line it comes from, and where glazeish differs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..objectives import Objective
from .protections import PROTECTIONS, BenchContext, Protection, _Wrapper, image_seed, register_protection


@dataclass(frozen=True)
class PeerSettings:
    """A peer attack's published settings, in glazeish's units (fractions of the [0, 1] range)."""

    eps: float  # L∞ budget
    alpha: float  # (first) step size; the step keeps this ratio to eps when the budget is changed
    steps: int
    schedule: str  # see glazeish.attack.step_sizes
    target: str  # what the latent is pulled toward: "zero", "grey" or "image"
    squared: bool  # loss: summed squared distance (Mist) or the distance itself (PhotoGuard's ‖·‖₂)
    random_start: bool = True


#: PhotoGuard (MadryLab/photoguard 686bea7), notebooks/demo_simple_attack_img2img.ipynb, lines of the stored file:
#: 141-157 ``pgd`` (random start, the step decay, ``(model(X_adv).latent_dist.mean).norm()``, sign descent, clip to
#: the eps ball then to [-1, 1]); 196-208 the call: eps=0.06, step_size=0.02, iters=1000 on the [-1, 1] scale
PHOTOGUARD_IMG2IMG = PeerSettings(eps=0.06 / 2, alpha=0.02 / 2, steps=1000, schedule="photoguard", target="zero",
                                  squared=False)
#: PhotoGuard, demo/app.py: 28-46 the same ``pgd`` toward ``targets``; 50-55 a grey test card resized to 512²;
#: 57-75 ``immunize_fn``: eps=0.12, step_size=0.01, iters=200
PHOTOGUARD_DEMO = PeerSettings(eps=0.12 / 2, alpha=0.01 / 2, steps=200, schedule="photoguard", target="grey",
                               squared=False)
#: Mist (psyker-team/mist 70a2956): mist_v3.py 102 ``nn.MSELoss(reduction="sum")``, 143-147 mode 1 = textural
#: (``fn(zx, zy)``), 152-205 ``init`` (epsilon=16, steps=100, alpha=1, each ``/255 * 2`` on [-1, 1]), 255
#: ``LinfPGDAttack(..., clip_min=-1.0, targeted=True)``; Masked_PGD.py 63-78 the update (sign step, clip δ to eps,
#: clip x+δ to the range), 175-181 the random start (advertorch: uniform in the eps box, clipped to the range);
#: mist_utils.py 36-51 the defaults, 141-156 the target resized with PIL's bicubic filter
MIST_TEXTURAL = PeerSettings(eps=16 / 255, alpha=1 / 255, steps=100, schedule="constant", target="image",
                             squared=True)
GREY = 0.5  # the demo's target is a grey test card fetched from the web; a flat mid-grey stands in for it


class TowardLatent(Objective):
    """Pull ``E(x')`` toward a fixed latent: PhotoGuard's ``‖E(x') − z_t‖₂`` or Mist's ``Σ(E(x') − z_t)²``.

    ``target`` is an image of ``x``'s shape (``B×3×H×W`` in [0, 1]) whose latent is ``z_t``, or ``None`` for the
    zero latent. Not registered: a peer's loss, used only by :class:`Peer` (glazeish's own objectives are
    normalised and tiled; these are the authors' losses as they wrote them).
    """

    name = "toward-latent"

    def __init__(self, target: torch.Tensor | None = None, squared: bool = False):
        self.target = target
        self.squared = squared

    def setup(self, model, x: torch.Tensor):
        with torch.no_grad():
            z_t = torch.zeros_like(model.encode(x).float()) if self.target is None else \
                model.encode(self.target.to(x.device, x.dtype)).float()

        def loss(xa: torch.Tensor) -> torch.Tensor:
            d = (model.encode(xa).float() - z_t).flatten(1)
            return d.square().sum(1) if self.squared else d.norm(dim=1)

        return loss


class Peer(Protection):
    """A published attack with explicit settings (subclasses set ``settings`` and ``variants``)."""

    settings: ClassVar[PeerSettings]
    variants: ClassVar[dict[str, PeerSettings]] = {}

    def __init__(self, ctx: BenchContext, variant: str | None = None):
        super().__init__(ctx)
        if variant is not None:
            if variant not in self.variants:
                known = ", ".join(f"{self.name}:{v}" for v in self.variants) or "none"
                raise ValueError(f"unknown variant {self.name}:{variant}; known: {known}")
            self.settings = self.variants[variant]  # type: ignore[misc]
            self.name = f"{type(self).name}:{variant}"  # type: ignore[misc]  # per-instance key
        steps = self.settings.steps if ctx.attack_steps is None else int(ctx.attack_steps)
        self.settings = replace(self.settings, steps=steps)  # type: ignore[misc]
        self._models = None

    @classmethod
    def from_spec(cls, arg: str | None = None, ctx: BenchContext | None = None, **_):
        return cls(ctx, arg)

    @property
    def eps_levels(self) -> float:
        return round(self.settings.eps * 255, 6)  # 7.65, not 7.6499999...

    def target_id(self) -> str:
        """What the latent is pulled toward, for the cache key."""
        return self.settings.target

    @property
    def cache_key(self) -> str:
        from ..config import digest
        from ..device import resolve_device

        c = self.ctx
        return digest({"peer": self.name, **asdict(self.settings), "target": self.target_id(), "encoder": c.encoder,
                       "seed": c.seed, "device": str(resolve_device(c.device)), "precision": "fp32"})[:12]

    @property
    def models(self):
        if self._models is None:
            from ..device import resolve_device
            from ..encoders import load_encoders

            c = self.ctx
            self._models = c.ensemble or load_encoders(c.encoder, c.models_dir, resolve_device(c.device))
        return self._models

    def target_image(self, rgb: np.ndarray) -> torch.Tensor | None:
        """``1×3×H×W`` in [0, 1] at the image's size, or ``None`` for the zero latent."""
        if self.settings.target == "grey":
            return torch.full((1, 3, *rgb.shape[:2]), GREY)
        return None

    def attack(self, rgb: np.ndarray, key: str, eps: float | None = None) -> torch.Tensor:
        """The attack's unrounded output (``1×3×H×W`` in [0, 1]); ``eps`` (fraction of [0, 1]) replaces the
        published budget, the step size keeping its published ratio to it."""
        from ..attack import PGD
        from ..imageio import pad_to_multiple, to_tensor

        s = self.settings
        eps = s.eps if eps is None else float(eps)
        models = self.models
        m, device = models.multiple, models.device
        x, (h, w) = pad_to_multiple(to_tensor(rgb).to(device), m)
        target = self.target_image(rgb)
        if target is not None:
            target = pad_to_multiple(target.to(device), m)[0]
        pgd = PGD(models, TowardLatent(target, s.squared), eps=eps, steps=s.steps, alpha=s.alpha * eps / s.eps,
                  schedule=s.schedule, random_start=s.random_start, seed=image_seed(self.ctx.seed, key),
                  precision="fp32")
        return pgd(x)[..., :h, :w].cpu()

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        from ..imageio import to_uint8

        return to_uint8(self.attack(rgb, key), rgb, self.settings.eps)

    def at_mse(self, rgb: np.ndarray, key: str, target_mse: float, runs: int = 3) -> torch.Tensor:
        """The attack run again at the L∞ budget whose output reaches ``target_mse`` (8-bit levels²) or just
        more: first at ``1.1·√target_mse`` levels (a sign attack's δ sits near ±eps, so its RMS is a little under
        eps), then, while short of the target, at the budget scaled by the RMS still missing (up to ``runs``)."""
        from ..evaluation import mse_levels
        from ..imageio import to_uint8

        eps = 1.1 * math.sqrt(max(target_mse, 0.0)) / 255
        for _ in range(runs):
            adv = self.attack(rgb, key, eps)
            got = mse_levels(to_uint8(adv), rgb)
            if got >= target_mse:
                break
            eps *= 1.05 * math.sqrt(target_mse / max(got, 1e-6))
        return adv


@register_protection
class PhotoGuardEncoder(Peer):
    name = "photoguard-encoder-style"
    description = ("PhotoGuard's encoder attack as its img2img notebook runs it: minimise ||E(x')|| (zero latent), "
                   "L-inf 7.65/255, 1000 sign steps from 2.55/255 decaying linearly, random start; no EOT, fp32 "
                   "(':grey': their demo app's grey target, 15.3/255, 200 steps)")
    settings = PHOTOGUARD_IMG2IMG
    variants = {"grey": PHOTOGUARD_DEMO}


@register_protection
class MistTextural(Peer):
    """Mist's textural mode toward ``ctx.mist_target`` (resized to the image, bicubic, as Mist resizes its
    ``MIST.png``), or toward glazeish's built-in decoy pattern (``mist-textural-style:decoy``) when none is given."""

    name = "mist-textural-style"
    description = ("Mist's textural mode: minimise the summed squared latent distance to a target image's latent "
                   "(--mist-target, resized), L-inf 16/255, 100 sign steps of 1/255, random start; no EOT, fp32 "
                   "(without a target: glazeish's decoy pattern, named mist-textural-style:decoy)")
    settings = MIST_TEXTURAL
    variants = {"decoy": MIST_TEXTURAL}

    def __init__(self, ctx: BenchContext, variant: str | None = None):
        from PIL import Image

        from ..imageio import read_image

        if variant is None and not ctx.mist_target:
            variant = "decoy"
        super().__init__(ctx, variant)
        self.target, self.target_sha = None, None
        if variant != "decoy":  # read once: the pixels attacked toward are the ones the cache key names
            path = Path(ctx.mist_target)
            if not path.is_file():
                raise ValueError(f"--mist-target {path}: no such file")
            self.target_sha = hashlib.sha256(path.read_bytes()).hexdigest()
            self.target = Image.fromarray(read_image(path).rgb)

    def target_id(self) -> str:
        return "glazeish-decoy" if self.target is None else f"sha256:{self.target_sha}"

    def target_image(self, rgb: np.ndarray) -> torch.Tensor:
        from PIL import Image

        from ..imageio import to_tensor
        from ..objectives import default_target

        h, w = rgb.shape[:2]
        if self.target is None:
            return default_target(h, w).unsqueeze(0)
        return to_tensor(np.array(self.target.resize((w, h), resample=Image.BICUBIC)))


@register_protection
class PSNRMatched(_Wrapper):
    """The wrapped protection at ``glazeish-default``'s PSNR on each image (fair to both sides: a peer gets its
    own attack at that budget, not a shrunken copy of a larger one)."""

    name = "psnr-matched"
    description = ("the wrapped protection at glazeish-default's PSNR on each image: a peer attack re-run at the "
                   "budget that reaches it, then scaled to the exact MSE; any other protection's change only "
                   "scaled: psnr-matched:<protection>")
    reference_name: ClassVar[str] = "glazeish-default"

    def __init__(self, ctx: BenchContext, inner: Protection):
        super().__init__(ctx, inner)
        self.reference = PROTECTIONS.build(self.reference_name, ctx=ctx)

    @property
    def cache_key(self) -> str | None:
        from ..config import digest

        if self.inner.cache_key is None:
            return None
        return digest([self.name, self.inner.cache_key, self.reference.cache_key])[:12]

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        from ..evaluation import mse_levels, rescaled_to_mse

        target = mse_levels(self.reference.protect(rgb, key), rgb)
        if isinstance(self.inner, Peer):
            perturbed = self.inner.at_mse(rgb, key, target)[0].permute(1, 2, 0).numpy() * 255
        else:
            perturbed = self.inner.protect(rgb, key)
        return rescaled_to_mse(rgb, perturbed, target, image_seed(self.ctx.seed, key))
