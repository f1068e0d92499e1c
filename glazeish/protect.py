"""The cloaking pipeline that the CLI, the web UI and the benchmarks share.

:class:`Protector` loads the encoders once and cloaks any number of images at their full size: it pads to
the encoders' multiple (reflection, cropped off again), runs :class:`~glazeish.attack.PGD`, quantises to
8 bits within the budget, and measures the result next to same-budget uniform noise.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import metrics
from .attack import PGD, StepCallback, resolve_device
from .encoders import Ensemble, load_encoders
from .imageio import Artwork, read_image, to_tensor, to_uint8
from .objectives import make_objective


@dataclass(frozen=True)
class Preset:
    """A documented (eps, steps, objective) triple; eps in 1/255 units."""

    eps: float
    steps: int
    objective: str
    summary: str


PRESETS: dict[str, Preset] = {
    "low": Preset(3, 5, "mimic", "lightest touch (PSNR ~39-40 dB); weakest protection"),
    "default": Preset(4, 6, "mimic", "near-invisible (PSNR ~37-39 dB); changes what a mimic reproduces"),
    "high": Preset(6, 12, "mimic", "strongest; faint grain may show on flat colour (PSNR ~34-36 dB)"),
}


@dataclass
class ProtectConfig:
    """Everything that decides a cloak. ``None`` fields take the intensity preset's value."""

    intensity: str = "default"
    eps: float | None = None  # L∞ budget in 1/255 units
    steps: int | None = None
    objective: str | None = None
    encoder: str = "taef2"
    target: str | None = None  # path of a target/decoy pattern image
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    models_dir: str | None = None

    def __post_init__(self):
        if self.intensity not in PRESETS:
            raise ValueError(f"unknown intensity {self.intensity!r}; choose from {', '.join(PRESETS)}")
        p = PRESETS[self.intensity]
        self.eps = p.eps if self.eps is None else float(self.eps)
        self.steps = p.steps if self.steps is None else int(self.steps)
        self.objective = self.objective or p.objective
        if not 0 <= self.eps <= 64:
            raise ValueError(f"eps must be between 0 and 64 (in 1/255 units), not {self.eps}")
        if self.steps < 0:
            raise ValueError("steps must be ≥ 0")


@dataclass
class Result:
    """One cloaked image: pixels (``H×W×3`` uint8), optional figures, and timings in seconds."""

    rgb: np.ndarray
    seconds: float
    figures: dict = field(default_factory=dict)


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``B×C×H×W`` on the bottom/right to multiples of ``m`` (reflect where possible)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def uniform_noise(x: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    """The baseline every figure is compared with: ``x`` plus uniform noise in ``[-eps, eps]``."""
    gen = torch.Generator().manual_seed(seed + 7919)
    noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device) * eps
    return (x + noise).clamp(0, 1)


class Protector:
    """Cloak images with one configuration; models are loaded once, in the constructor.

    Example::

        p = Protector(ProtectConfig(intensity="default", models_dir="../shared/models"))
        result = p.protect(read_image("art.png"))
    """

    def __init__(self, config: ProtectConfig | None = None, ensemble: Ensemble | None = None):
        self.config = config or ProtectConfig()
        self.device = resolve_device(self.config.device)
        t0 = time.perf_counter()
        self.ensemble = ensemble or load_encoders(self.config.encoder, self.config.models_dir, self.device)
        self.load_seconds = time.perf_counter() - t0
        target = None
        if self.config.target:
            target = read_image(self.config.target).tensor()[0]
        self.objective = make_objective(self.config.objective, target)

    @property
    def eps(self) -> float:
        return self.config.eps / 255

    def attack(self, callback: StepCallback | None = None) -> PGD:
        c = self.config
        return PGD(
            self.ensemble, self.objective, eps=self.eps, steps=c.steps, seed=c.seed,
            precision=c.precision, callback=callback,
        )

    def cloak(
        self, x: torch.Tensor, alpha: torch.Tensor | None = None, callback: StepCallback | None = None
    ) -> torch.Tensor:
        """``1×3×H×W`` in [0,1] (any H, W) -> cloaked, same shape, ``|δ| ≤ eps``.

        ``alpha`` (``1×1×H×W`` in [0,1]): fully transparent pixels get no perturbation.
        """
        x = x.to(self.device)
        xp, (h, w) = pad_to_multiple(x, self.ensemble.multiple)
        eps_map = None
        if alpha is not None:
            a, _ = pad_to_multiple(alpha.to(self.device).float(), self.ensemble.multiple)
            eps_map = (a > 0).float() * self.eps
        out = self.attack(callback)(xp, eps_map)
        return out[..., :h, :w]

    def protect(self, art: Artwork, evaluate: bool = True, callback: StepCallback | None = None) -> Result:
        """Cloak an :class:`Artwork`; returns 8-bit pixels (within budget) and, if asked, the figures."""
        t0 = time.perf_counter()
        x = art.tensor()
        alpha = None if art.alpha is None else torch.from_numpy(art.alpha)[None, None].float() / 255
        x_adv = self.cloak(x, alpha, callback)
        rgb = to_uint8(x_adv, art.rgb, self.eps)
        seconds = time.perf_counter() - t0
        figures = self.evaluate(art.rgb, rgb) if evaluate else {}
        return Result(rgb=rgb, seconds=seconds, figures=figures)

    @torch.no_grad()
    def evaluate(self, original: np.ndarray, cloaked: np.ndarray) -> dict:
        """Visibility and damage of ``cloaked`` vs ``original`` (``H×W×3`` uint8), next to same-budget noise.

        Keys: ``psnr``, ``ssim``, ``linf`` (in 1/255), and per encoder ``latent_displacement`` and (with a
        decoder) ``mimic_psnr`` — PSNR between the mimic's view of the image and of the original — each
        as ``{"cloak": v, "random": v}``. A lower mimic PSNR means a bigger change in what a model learns.
        """
        x = to_tensor(original).to(self.device)
        xa = to_tensor(cloaked).to(self.device)
        xr = to_tensor(to_uint8(uniform_noise(x, self.eps, self.config.seed), original, self.eps)).to(self.device)
        out: dict = {
            "psnr": {"cloak": float(metrics.psnr(xa, x)), "random": float(metrics.psnr(xr, x))},
            "ssim": {"cloak": float(metrics.ssim(xa, x)), "random": float(metrics.ssim(xr, x))},
            "linf": int(np.abs(cloaked.astype(np.int16) - original.astype(np.int16)).max()),  # 1/255 levels
            "encoders": {},
        }
        batch, _ = pad_to_multiple(torch.cat([x, xa, xr]), self.ensemble.multiple)
        h, w = x.shape[-2:]
        for model in self.ensemble.models:
            z = model.encode(batch)
            fig = {
                "latent_displacement": {
                    "cloak": float(metrics.relative_l2(z[1:2], z[0:1])),
                    "random": float(metrics.relative_l2(z[2:3], z[0:1])),
                }
            }
            if model.has_decoder:
                v = model.decode(z)[..., :h, :w]
                fig["mimic_psnr"] = {
                    "cloak": float(metrics.psnr(v[1:2], v[0:1])),
                    "random": float(metrics.psnr(v[2:3], v[0:1])),
                }
            out["encoders"][model.name] = fig
        return out

    def describe(self) -> dict:
        c = asdict(self.config)
        c["encoders"] = self.ensemble.names
        c["device"] = str(self.device)
        return c


def output_path(src: Path, outdir: Path, fmt: str = "png") -> Path:
    """``OUTDIR/<stem>.protected.<ext>``."""
    from .imageio import FORMATS

    return Path(outdir) / f"{Path(src).stem}.protected{FORMATS[fmt][1]}"
