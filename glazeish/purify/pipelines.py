"""Purifications through a diffusers pipeline (a repo id or a local folder; never in a default list): noisy
upscaling, DiffPure and GrIDPure."""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..imageio import pad_to_multiple
from .base import (
    Purification,
    _from_uint8_arrays,
    _shared_noise,
    _to_uint8_arrays,
    register_purification,
)

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
