"""Full diffusion pipelines, for users who have one: img2img and a short LoRA fine-tune.

The mimic's-view figures of :mod:`glazeish.evaluation` stand in for what a pipeline does with an image; these run the
pipeline itself and report the same figures on the images it generates:

* **img2img** (:class:`Img2ImgMeasurer`): ``pipe(prompt, image=v, strength=s)`` for every strength, with a
  fixed seed, so that the image generated from a variant is compared with the image generated from the
  original under the same noise. Metrics (per strength ``s``): ``img2img@s:psnr`` / ``:ssim`` (vs the image
  generated from the clean original), ``:psnr_orig`` (vs the original artwork), ``:style`` / ``:style_orig``
  (style distance on the un-attacked encoder's features), ``:decoy_corr`` (correlation of the change with the
  direction to the decoy pattern). The harness adds them to its rows.
* **LoRA** (:func:`lora_mimic`): fine-tune a LoRA on the UNet of a Stable-Diffusion-style pipeline
  (``UNet2DConditionModel`` + CLIP text encoder) on a *set* of images (clean, same-budget noise, protected),
  sample a few images from the prompt with fixed seeds, and compare the samples of each set with the samples
  of the clean set (same seeds) and with the originals' style.

Any diffusers pipeline named by repo id or local path works for img2img (``AutoPipelineForImage2Image``);
LoRA needs ``peft`` and an SD-1.x/2.x-style pipeline. Run for real, e.g. on a GPU::

    pip install "glazeish[bench-pipelines]"
    glazeish bench run --images art/ --out bench-sd15 --pipeline stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --strengths 0.3,0.45,0.6 --lora-steps 400 --prompt "a painting in the style of sks" --device cuda

The test suite runs the same code end to end with tiny randomly initialised components.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import metrics
from ..metrics import pearson
from ..objectives import fit_target


@dataclass
class PipelineConfig:
    """Settings of the pipeline measurements.

    ``strengths``: img2img strengths (0.3–0.6 is the range mimics use to keep the composition).
    ``lora_steps``: 0 turns the LoRA fine-tune off. ``resolution``: LoRA training/sampling size (default: the
    pipeline's native size). ``dtype``: ``fp32``, ``fp16`` or ``bf16`` for the pipeline's weights.
    """

    pipeline: str
    prompt: str = "a painting"
    strengths: tuple[float, ...] = (0.3, 0.45, 0.6)
    steps: int = 30
    guidance: float = 7.5
    seed: int = 0
    device: str = "cpu"
    dtype: str = "fp32"
    lora_steps: int = 0
    lora_rank: int = 4
    lora_lr: float = 1e-4
    lora_batch: int = 1
    lora_samples: int = 4
    resolution: int | None = None
    purifications: list[str] = field(default_factory=lambda: ["none"])


def load_pipeline(cfg: PipelineConfig):
    """An img2img pipeline from a repo id or local folder (``AutoPipelineForImage2Image``), on ``cfg.device``."""
    from ..purify import load_pipeline as load

    return load(cfg.pipeline, "bench --pipeline", "img2img", cfg.dtype).to(cfg.device)


def to_pil(x: torch.Tensor) -> list[Image.Image]:
    """``B×3×H×W`` in [0,1] -> PIL images (rounded to 8 bits, as a file would be)."""
    a = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(i), "RGB") for i in a]


def from_np(images, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Pipeline ``output_type="np"`` images -> ``B×3×H×W`` float32, resized to ``size`` (H, W) if given."""
    t = torch.from_numpy(np.asarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    if size is not None and tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=size, mode="bicubic", antialias=True, align_corners=False)
    return t.clamp(0, 1)


def _round8(n: int, m: int = 8) -> int:
    return max(m, n // m * m)


class Img2ImgMeasurer:
    """img2img metrics for the harness: ``measure(x, v, cache)`` per batch of versions of the original ``x``.

    ``style``: a :class:`glazeish.metrics.StyleFeatures` of an un-attacked encoder (``None`` skips the style
    distances). Generation uses one seed for every variant of an image, so differences come from the input.
    """

    def __init__(self, cfg: PipelineConfig, style: metrics.StyleFeatures | None = None, pipe=None):
        self.cfg = cfg
        self.pipe = pipe if pipe is not None else load_pipeline(cfg)
        self.style = style

    @property
    def metric_names(self) -> list[str]:
        names = []
        for s in self.cfg.strengths:
            ms = ["psnr", "ssim", "psnr_orig", "decoy_corr"] + (["style", "style_orig"] if self.style else [])
            names += [f"img2img@{s:g}:{m}" for m in ms]
        return names

    @torch.no_grad()
    def generate(self, x: torch.Tensor, strength: float) -> torch.Tensor:
        """img2img of ``B×3×H×W`` in [0,1]; returns the generated images at the input size, float32 on CPU."""
        h, w = x.shape[-2:]
        # diffusers runs int(steps * strength) denoising steps: keep at least one at low strengths
        steps = max(self.cfg.steps, math.ceil(1 / max(strength, 1e-3)))
        # SD-style img2img takes the size from the image; others (FLUX) want it spelled out
        params = inspect.signature(self.pipe.__call__).parameters
        size = {"height": _round8(h), "width": _round8(w)} if "height" in params and "width" in params else {}
        out = []
        for img in to_pil(x):
            gen = torch.Generator(device="cpu").manual_seed(self.cfg.seed)
            res = self.pipe(prompt=self.cfg.prompt, image=img, strength=strength, num_inference_steps=steps,
                            guidance_scale=self.cfg.guidance, generator=gen, output_type="np", **size)
            out.append(from_np(res.images, (h, w)))
        return torch.cat(out)

    def _feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        assert self.style is not None
        dev = next(self.style.parameters()).device
        return [f.float() for f in self.style(x.to(dev))]

    @torch.no_grad()
    def measure(self, x: torch.Tensor, v: torch.Tensor, cache: dict | None = None) -> list[dict[str, float]]:
        """img2img figures of every version in ``v`` (``B×3×H×W``) against the images generated from the
        original ``x`` (``1×3×H×W``, generated once per ``cache``: pass the same dict for every version)."""
        cache = {} if cache is None else cache
        x = x.detach().cpu().float()
        if "img2img" not in cache:
            cache["img2img"] = {s: self.generate(x, s) for s in self.cfg.strengths}
        gens = cache["img2img"]
        b = v.shape[0]
        target = fit_target(None, x).cpu()
        rows: list[dict[str, float]] = [{} for _ in range(b)]
        fx = self._feats(x) if self.style else None
        for s in self.cfg.strengths:
            g0 = gens[s]
            g = self.generate(v.detach().cpu(), s)
            g0b, xb, tb = g0.expand_as(g), x.expand_as(g), target.expand_as(g)
            figs = {
                "psnr": metrics.psnr(g, g0b), "ssim": metrics.ssim(g, g0b), "psnr_orig": metrics.psnr(g, xb),
                "decoy_corr": pearson(g - g0b, tb - g0b),
            }
            if self.style:
                fg, f0 = self._feats(g), self._feats(g0)
                figs["style"] = metrics.style_distance(fg, [f.expand_as(q).to(q.device) for f, q in zip(f0, fg)])
                figs["style_orig"] = metrics.style_distance(fg, [f.expand_as(q).to(q.device) for f, q in zip(fx, fg)])
            for i in range(b):
                for m, t in figs.items():
                    rows[i][f"img2img@{s:g}:{m}"] = float(t[i])
        return rows


# ---------------------------------------------------------------------------------------------
# LoRA fine-tune (set level)


def _square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` and centre-crop: ``1×3×H×W`` -> ``1×3×size×size``."""
    h, w = x.shape[-2:]
    s = size / min(h, w)
    y = F.interpolate(x, size=(max(size, round(h * s)), max(size, round(w * s))), mode="bicubic", antialias=True,
                      align_corners=False)
    top, left = (y.shape[-2] - size) // 2, (y.shape[-1] - size) // 2
    return y[..., top:top + size, left:left + size].clamp(0, 1)


def _resolution(pipe, cfg: PipelineConfig) -> int:
    if cfg.resolution:
        return int(cfg.resolution)
    sample = int(getattr(pipe.unet.config, "sample_size", 64))
    return sample * int(getattr(pipe, "vae_scale_factor", 8))


def _encode_prompt(pipe, prompt: str, device) -> torch.Tensor:
    tok = pipe.tokenizer([prompt], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    return pipe.text_encoder(tok.input_ids.to(device))[0]


def train_lora(pipe, images: list[torch.Tensor], cfg: PipelineConfig, adapter: str) -> list[float]:
    """Add LoRA adapter ``adapter`` to ``pipe.unet`` and fine-tune it on ``images`` (``1×3×H×W`` in [0,1]) with
    the standard noise-prediction loss; returns the loss per step. Only the LoRA weights are trained."""
    from peft import LoraConfig

    device = pipe.unet.device
    dtype = pipe.unet.dtype
    res = _resolution(pipe, cfg)
    data = torch.cat([_square(x.float(), res) for x in images]).to(device)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    pipe.unet.add_adapter(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_rank, init_lora_weights="gaussian",
                                     target_modules=["to_k", "to_q", "to_v", "to_out.0"]), adapter_name=adapter)
    pipe.unet.set_adapter(adapter)
    params = [p for n, p in pipe.unet.named_parameters() if "lora" in n and adapter in n]
    for p in params:
        p.requires_grad_(True)
        p.data = p.data.float()  # train the adapter in float32 even when the pipeline is fp16
    opt = torch.optim.AdamW(params, lr=cfg.lora_lr)
    sched = pipe.scheduler
    n_train = int(sched.config.num_train_timesteps)
    with torch.no_grad():
        cond = _encode_prompt(pipe, cfg.prompt, device)
        scale = float(getattr(pipe.vae.config, "scaling_factor", 1.0))
        latents_all = pipe.vae.encode((data * 2 - 1).to(pipe.vae.dtype)).latent_dist.mean * scale
    losses = []
    pipe.unet.train()
    for _ in range(cfg.lora_steps):
        idx = torch.randint(0, data.shape[0], (cfg.lora_batch,), generator=gen)
        lat = latents_all[idx].float()
        noise = torch.randn(lat.shape, generator=gen).to(device)
        t = torch.randint(0, n_train, (lat.shape[0],), generator=gen).to(device)
        noisy = sched.add_noise(lat, noise, t)
        target = noise if sched.config.prediction_type == "epsilon" else sched.get_velocity(lat, noise, t)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            pred = pipe.unet(noisy.to(dtype), t, cond.expand(lat.shape[0], -1, -1).to(dtype)).sample
        loss = F.mse_loss(pred.float(), target.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    pipe.unet.eval()
    for p in params:
        p.requires_grad_(False)
    return losses


@torch.no_grad()
def sample(pipe, cfg: PipelineConfig) -> torch.Tensor:
    """``cfg.lora_samples`` text-to-image samples of the prompt with seeds ``seed..seed+k-1``: ``K×3×R×R``."""
    import diffusers

    t2i = diffusers.AutoPipelineForText2Image.from_pipe(pipe)
    t2i.set_progress_bar_config(disable=True)
    res = _resolution(pipe, cfg)
    out = []
    for k in range(cfg.lora_samples):
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed + k)
        r = t2i(prompt=cfg.prompt, height=res, width=res, num_inference_steps=cfg.steps,
                guidance_scale=cfg.guidance, generator=gen, output_type="np")
        out.append(from_np(r.images))
    return torch.cat(out)


@dataclass
class LoraResult:
    """Samples of the LoRA trained on one set, and the training loss curve."""

    name: str
    samples: torch.Tensor  # K×3×R×R in [0,1]
    losses: list[float]


def lora_mimic(pipe, sets: dict[str, list[torch.Tensor]], cfg: PipelineConfig) -> dict[str, LoraResult]:
    """Train one LoRA per set (``{"clean": [...], "noise@4": [...], "glazeish-default": [...]}``), sample each.

    Every LoRA starts from the same base weights (the adapter is deleted after sampling) and uses the same
    seeds, so differences between sets come from the training images alone.
    """
    out = {}
    for i, (name, images) in enumerate(sets.items()):
        adapter = f"glz{i}"
        losses = train_lora(pipe, images, cfg, adapter)
        out[name] = LoraResult(name, sample(pipe, cfg), losses)
        pipe.unet.delete_adapters(adapter)
    return out


def lora_metrics(result: LoraResult, clean: LoraResult, originals: list[torch.Tensor],
                 style: metrics.StyleFeatures | None = None) -> list[dict[str, float]]:
    """Per sample: ``lora:psnr``/``lora:ssim`` against the clean-set LoRA's sample with the same seed,
    ``lora:decoy_corr`` of the change, and (with ``style``) ``lora:style`` against that sample and
    ``lora:style_orig``, the mean style distance to the original images (each resized to the sample size)."""
    s, c = result.samples.float(), clean.samples.float()
    res = s.shape[-1]
    target = fit_target(None, s)
    figs = {"lora:psnr": metrics.psnr(s, c), "lora:ssim": metrics.ssim(s, c),
            "lora:decoy_corr": pearson(s - c, target - c)}
    if style is not None:
        dev = next(style.parameters()).device
        fs, fc = style(s.to(dev)), style(c.to(dev))
        figs["lora:style"] = metrics.style_distance(fs, fc)
        dist = torch.zeros(s.shape[0], device=dev)
        for o in originals:
            fo = style(_square(o.float(), res).to(dev))
            dist = dist + metrics.style_distance(fs, [f.expand_as(q) for f, q in zip(fo, fs)])
        figs["lora:style_orig"] = dist / max(1, len(originals))
    return [{k: float(v[i]) for k, v in figs.items()} for i in range(s.shape[0])]
