"""Purifications through an autoencoder the cloak did not attack: the round trip, IMPRESS and IMPRESS++."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .base import (
    Purification,
    _check_model,
    _shared_noise,
    register_purification,
)

if TYPE_CHECKING:  # imported lazily: building a purification needs no model code until it runs
    from ..encoders import LatentModel


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


def _model_for(name: str, arg: str | None, context: dict) -> dict:
    """The context with ``model`` set for ``name:<encoder>``: that encoder, loaded unless it was passed in."""
    model = context.get("model")
    if arg:
        from ..encoders import first_with_decoder, load_encoder

        given = first_with_decoder(model)
        if given is None or given.name != arg:
            model = load_encoder(arg, context.get("models_dir"))
            device = getattr(given, "device", None)
            model = model.to(device) if device is not None else model
    return {**context, "model": model}


class _LowRankDelta(torch.nn.Module):
    """A LoRA-style parametrisation of a convolution's weight: ``W + (alpha/r)·B·A`` (``A`` Gaussian, ``B`` zero,
    so training starts from the model as it is; peft's ``init_lora_weights="gaussian"``)."""

    def __init__(self, weight: torch.Tensor, rank: int, gen: torch.Generator):
        super().__init__()
        out_ch, fan_in = weight.shape[0], weight[0].numel()
        self.shape = weight.shape
        self.a = torch.nn.Parameter(torch.randn(rank, fan_in, generator=gen) / rank)
        self.b = torch.nn.Parameter(torch.zeros(out_ch, rank))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (self.b @ self.a).view(self.shape).to(w.dtype)  # alpha = r: the scale is 1


@register_purification
class CAT(_ModelPurification):
    """CAT-style purification (Peng et al., 2025, "CAT: Contrastive Adversarial Training for Evaluating the
    Robustness of Protective Perturbations in Latent Diffusion Models"): low-rank adapters trained into the
    autoencoder until it reproduces the protected image, whose reconstruction the mimic then learns from.

    Per image: a copy of the autoencoder gets a LoRA-style adapter on every convolution of ``target``
    (``encoder``, ``decoder`` or ``both``; rank ``rank``, ``alpha = rank``, Gaussian ``A``, zero ``B``), trained
    with AdamW (lr ``lr``, weight decay 0.01, cosine decay, gradients clipped at norm 1) for ``steps`` steps on
    ``‖D'(E'(x)) − x‖²`` on the [-1, 1] scale; the output is ``D'(E'(x))``: what a model fine-tuned on the
    adapted latents reproduces, so the figures compare these outputs as the mimic's views themselves
    (``gives_view``): through the un-adapted model again, an adapter that reproduces the cloaked image well
    would hand the cloak back to the very encoder it fools. An image the autoencoder already reproduces (the clean original) changes
    little; a cloak that works by throwing the encoder off is undone once the adapter has learnt it.

    What the authors run (their released ``train_cat_adapter.py``): Stable Diffusion 2.1's VAE, rank 128 on
    the convolutions and attention projections of encoder and decoder (``--target_module=both``), 10,000 steps
    at lr 1e-4 (cosine), batch 4, 512 px, over the protected images of one subject, then DreamBooth or LoRA
    fine-tuning on the adapted latents. Here: the model the figures use (TAEF2 has no attention), one image
    at a time (each version of a picture gets its own adapter), and ``steps``/``lr`` scaled to what a CPU
    affords (default 200 steps at lr 1e-3): a weaker purifier than theirs, so survival here is an upper bound.
    """

    name = "cat"
    description = "CAT-style: LoRA adapters trained into the autoencoder to reproduce the image, 200 AdamW steps"
    gives_view = True  # D'(E'(x)) is the copy: taking it through the un-adapted model again would re-cloak it

    def __init__(self, model: "LatentModel | None" = None, steps: int = 200, lr: float = 1e-3, rank: int = 128,
                 target: str = "both", seed: int = 0):
        super().__init__(seed)
        self.model = _check_model(model, "cat")
        if target not in ("encoder", "decoder", "both"):
            raise ValueError(f"cat target must be encoder, decoder or both, not {target!r}")
        if steps < 0 or rank < 1 or lr <= 0:
            raise ValueError(f"cat needs steps ≥ 0, rank ≥ 1 and lr > 0 (got {steps}, {rank}, {lr})")
        self.steps, self.lr, self.rank, self.target = int(steps), float(lr), int(rank), target

    def _adapted(self, gen: torch.Generator) -> tuple["LatentModel", list[torch.nn.Parameter]]:
        """A copy of the model with an adapter on every convolution of ``target``, and the adapters' parameters."""
        import copy

        from torch.nn.utils import parametrize

        model = copy.deepcopy(self.model).float()
        model.requires_grad_(False)
        parts = [model.encoder, model.decoder] if self.target == "both" else [getattr(model, self.target)]
        params: list[torch.nn.Parameter] = []
        for part in parts:
            for conv in [m for m in part.modules() if isinstance(m, torch.nn.Conv2d)]:
                delta = _LowRankDelta(conv.weight, self.rank, gen).to(conv.weight.device)
                parametrize.register_parametrization(conv, "weight", delta)
                params += [delta.a, delta.b]
        return model, params

    def _purify_one(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        model, params = self._adapted(gen)
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=1e-2)  # the authors' optimiser and decay
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, self.steps))
        with torch.enable_grad():
            for _ in range(self.steps):
                loss = model.reconstruction_error(x, scale=2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
        return model.round_trip(x).detach()

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.model.device)
        # every image gets the same adapter initialisation: the seed, not its place in the batch, decides it
        return torch.cat([self._purify_one(xi[None], torch.Generator().manual_seed(self.seed)) for xi in x])
