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
from .attack import PGD, StepCallback, resolve_device, resolve_precision
from .encoders import Ensemble, load_encoders
from .imageio import Artwork, read_image, to_tensor, to_uint8
from .objectives import make_objective
from .tiling import Tile, cloak_tiled, plan_tiles
from .transforms import make_transforms
from .budget import budget_map


@dataclass(frozen=True)
class Preset:
    """A documented setting, chosen on the measured frontier (``benchmarks/frontier/RESULTS.md``).

    ``eps`` in 1/255 units; ``robust`` = the EOT transforms sampled per step ("" = none).
    """

    eps: float
    steps: int
    objective: str
    robust: str
    summary: str


PRESETS: dict[str, Preset] = {
    "low": Preset(3, 6, "mimic", "", "lightest touch (PSNR ~39-41 dB); a JPEG re-save removes most of it"),
    "default": Preset(4, 6, "mimic", "identity,jpeg",
                      "near-invisible (PSNR ~38-39 dB); optimised to survive a JPEG re-save"),
    "high": Preset(6, 12, "mimic", "identity,jpeg", "strongest; faint grain may show on flat colour (PSNR ~35-36 dB)"),
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
    robust: str | None = None  # EOT transforms sampled per step, e.g. "identity,jpeg"; "" = none (glazeish.transforms)
    budget: str = "flat"  # "flat" L∞ ball, or "perceptual": less in flat areas, up to eps on texture/edges
    budget_floor: float = 0.25  # perceptual budget: fraction of eps that flat areas keep
    tile: int = 512  # images larger than this are cloaked in overlapping tiles (flat memory)
    overlap: int = 64

    def __post_init__(self):
        if self.intensity not in PRESETS:
            raise ValueError(f"unknown intensity {self.intensity!r}; choose from {', '.join(PRESETS)}")
        p = PRESETS[self.intensity]
        self.eps = p.eps if self.eps is None else float(self.eps)
        self.steps = p.steps if self.steps is None else int(self.steps)
        self.objective = self.objective or p.objective
        self.robust = p.robust if self.robust is None else self.robust
        if not 0 <= self.eps <= 64:
            raise ValueError(f"eps must be between 0 and 64 (in 1/255 units), not {self.eps}")
        if self.steps < 0:
            raise ValueError("steps must be ≥ 0")
        if self.budget not in ("flat", "perceptual"):
            raise ValueError(f"budget must be flat or perceptual, not {self.budget!r}")


@dataclass
class Result:
    """One cloaked image: pixels (``H×W×3`` uint8), optional figures, and timings in seconds."""

    rgb: np.ndarray
    seconds: float  # the cloak: attack + 8-bit rounding
    figures: dict = field(default_factory=dict)
    figure_seconds: float = 0.0  # measuring the figures next to noise (0 when not asked)


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
        target = None
        if self.config.target:
            target = read_image(self.config.target).tensor()[0]
        self.objective = make_objective(self.config.objective, target)
        self.transforms = make_transforms(self.config.robust, self.ensemble) if self.config.robust else []
        self.precision = resolve_precision(self.config.precision, self.device)  # may time fp32 vs bf16 once
        self.load_seconds = time.perf_counter() - t0

    @property
    def eps(self) -> float:
        return self.config.eps / 255

    def attack(
        self, callback: StepCallback | None = None, seed: int | None = None, origin: tuple[int, int] = (0, 0)
    ) -> PGD:
        """The configured :class:`PGD`; ``origin`` = where the attacked image sits in a larger one (tiles)."""
        c = self.config
        return PGD(
            self.ensemble, self.objective.at(*origin), eps=self.eps, steps=c.steps, seed=c.seed if seed is None else seed,
            precision=self.precision, transforms=self.transforms, callback=callback,
        )

    def n_tiles(self, height: int, width: int) -> int:
        m = self.ensemble.multiple
        return len(plan_tiles(-(-height // m) * m, -(-width // m) * m, self._tile(), self.config.overlap, m))

    def _tile(self) -> int:
        m = self.ensemble.multiple
        return max(m, self.config.tile // m * m)

    def cloak(
        self, x: torch.Tensor, alpha: torch.Tensor | None = None, callback: StepCallback | None = None
    ) -> torch.Tensor:
        """``1×3×H×W`` in [0,1] (any H, W) -> cloaked, same shape, ``|δ| ≤ eps``.

        ``alpha`` (``1×1×H×W`` in [0,1]): fully transparent pixels get no perturbation. Images larger
        than ``config.tile`` are cloaked in overlapping tiles; ``callback`` then counts steps over all tiles.
        """
        x = x.to(self.device)
        xp, (h, w) = pad_to_multiple(x, self.ensemble.multiple)
        c = self.config
        eps_map = None
        a = None if alpha is None else pad_to_multiple(alpha.to(self.device).float(), self.ensemble.multiple)[0]
        if c.budget == "perceptual":
            eps_map = budget_map(xp, self.eps, floor=c.budget_floor, alpha=a)
        elif a is not None:
            eps_map = (a > 0).float() * self.eps
        n_tiles = self.n_tiles(h, w)

        def attack_tiles(xs: torch.Tensor, es: torch.Tensor | None, index: int, tile: Tile) -> torch.Tensor:
            progress = None
            if callback is not None:
                progress = lambda i, n, loss: callback(index * n + i, n * n_tiles, loss)  # noqa: E731
            return self.attack(progress, seed=c.seed + 1009 * index, origin=(tile.top, tile.left))(xs, es)

        out = cloak_tiled(attack_tiles, xp, eps_map, self.eps, self._tile(), c.overlap, self.ensemble.multiple)
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
        return Result(rgb=rgb, seconds=seconds, figures=figures, figure_seconds=time.perf_counter() - t0 - seconds)

    def evaluate(self, original: np.ndarray, cloaked: np.ndarray) -> dict:
        """Figures of ``cloaked`` vs ``original`` next to same-budget noise; see :func:`evaluate`."""
        return evaluate(self.ensemble, original, cloaked, self.eps, self.config.seed, self.device, self._tile())

    def describe(self) -> dict:
        c = asdict(self.config)
        c["encoders"] = self.ensemble.names
        c["device"] = str(self.device)
        return c


def json_row(src, dest, art: Artwork, config: ProtectConfig, result: Result, load_seconds: float,
             image_seconds: float) -> dict:
    """The ``protect --json`` row of one image (the CLI and the Ray workers print the same rows).

    ``seconds`` is the cloak, ``figure_seconds`` the figures next to noise, ``image_seconds`` everything for
    this image (read, cloak, figures, write); ``load_seconds`` the one-off model loading.
    """
    return {"input": str(src), "output": str(dest), "width": art.size[0], "height": art.size[1],
            "encoder": config.encoder, "objective": config.objective, "intensity": config.intensity,
            "eps": config.eps, "steps": config.steps, "robust": config.robust, "seed": config.seed,
            "seconds": round(result.seconds, 3), "figure_seconds": round(result.figure_seconds, 3),
            "image_seconds": round(image_seconds, 3), "load_seconds": round(load_seconds, 3), **result.figures}


def noise_image(original: np.ndarray, eps: float, seed: int = 0) -> np.ndarray:
    """The same-budget baseline as 8-bit pixels (``H×W×3`` uint8), rounded within the budget exactly as a
    saved cloak is, so both are compared as the files they would be. ``eps`` is a fraction (``4/255``)."""
    return to_uint8(uniform_noise(to_tensor(original), eps, seed), original, eps)


def linf_levels(original: np.ndarray, cloaked: np.ndarray) -> int:
    """Largest change of any colour value, in 8-bit levels (1/255), computed exactly on the uint8 pixels."""
    return int(np.abs(cloaked.astype(np.int16) - original.astype(np.int16)).max())


@torch.no_grad()
def compare(ensemble: Ensemble, x: torch.Tensor, versions: dict[str, torch.Tensor], tile: int = 512) -> dict:
    """Visibility and damage of each version of ``x`` (all ``1×3×H×W`` in [0, 1], on the ensemble's device).

    Returns ``psnr`` and ``ssim`` against ``x``, and per encoder ``latent_displacement`` (relative L2 to
    ``x``'s latent) and, with a decoder, ``mimic_psnr`` (PSNR of the mimic's view ``D(E(v))`` against
    ``D(E(x))``), each as ``{version: value}``. A larger displacement or a lower mimic PSNR means a bigger
    change in what a model learns. Measured in tiles of ``tile`` px so memory stays flat: sums of squares
    add up exactly; SSIM is averaged weighted by pixels.
    """
    m = ensemble.multiple
    tile = max(m, tile // m * m)
    sums: dict = {}

    def add(key, value) -> None:
        sums[key] = sums.get(key, 0.0) + float(value)

    for t in plan_tiles(*x.shape[-2:], tile, 0):
        xt = t.slice(x).float()
        vt = {name: t.slice(v).float() for name, v in versions.items()}
        npx = t.h * t.w
        add("px", npx)
        for name, v in vt.items():
            add(("sq", name), metrics.mse(v, xt) * npx)
            add(("ssim", name), metrics.ssim(v, xt) * npx)
        batch, _ = pad_to_multiple(torch.cat([xt, *vt.values()]), m)
        batch = batch.contiguous(memory_format=torch.channels_last)  # ~1.5x faster convolutions on CPU
        for model in ensemble.models:
            z = model.encode(batch).float()
            add((model.name, "zz"), z[0].square().sum())
            views = model.decode(z)[..., : t.h, : t.w].float() if model.has_decoder else None
            for i, name in enumerate(vt, 1):
                add((model.name, "dz", name), (z[i] - z[0]).square().sum())
                if views is not None:
                    add((model.name, "dv", name), (views[i] - views[0]).square().mean() * npx)

    def db(sq: float) -> float:
        return float(10 * np.log10(sums["px"] / sq)) if sq > 0 else float("inf")

    out: dict = {
        "psnr": {n: db(sums[("sq", n)]) for n in versions},
        "ssim": {n: sums[("ssim", n)] / sums["px"] for n in versions},
        "encoders": {},
    }
    for model in ensemble.models:
        zz = max(sums[(model.name, "zz")], 1e-12)
        fig = {"latent_displacement": {n: (sums[(model.name, "dz", n)] / zz) ** 0.5 for n in versions}}
        if model.has_decoder:
            fig["mimic_psnr"] = {n: db(sums[(model.name, "dv", n)]) for n in versions}
        out["encoders"][model.name] = fig
    return out


def evaluate(
    ensemble: Ensemble,
    original: np.ndarray,
    cloaked: np.ndarray,
    eps: float,
    seed: int = 0,
    device: torch.device | str | None = None,
    tile: int = 512,
) -> dict:
    """Figures of a cloak next to uniform noise of the same budget.

    ``original``, ``cloaked``: ``H×W×3`` uint8; ``eps``: the noise's budget as a fraction (``4/255``).
    Keys: ``psnr``, ``ssim``, ``encoders`` (see :func:`compare`, versions ``cloak`` and ``random``) and
    ``linf`` (1/255 levels).
    """
    device = torch.device(device) if device is not None else ensemble.device
    x = to_tensor(original).to(device)
    versions = {"cloak": to_tensor(cloaked).to(device), "random": to_tensor(noise_image(original, eps, seed)).to(device)}
    return {**compare(ensemble, x, versions, tile), "linf": linf_levels(original, cloaked)}


def output_path(src: Path, outdir: Path, fmt: str = "png") -> Path:
    """``OUTDIR/<stem>.protected.<ext>``."""
    from .imageio import FORMATS

    return Path(outdir) / f"{Path(src).stem}.protected{FORMATS[fmt][1]}"
