"""``glazeish bench mimic``: does a generative model trained on cloaked images lose the artist's style?

The mimic's-view figures of :mod:`.measure` are a proxy (what one encode/decode round trip shows). This
module runs the real thing at CPU size: for every *version* of one artist's set (clean, cloaked, noised
at the same L∞ budget, imported from another tool, ...) it

1. encodes the full images with the TAEF2 encoder (the encoder the cloak attacks) and caches the latents;
2. trains a small rectified-flow (flow-matching) U-Net from scratch on random latent crops (horizontal
   flips), with the same architecture, steps and seed for every version — everything it learns comes
   from that version of the artist's images;
3. samples ``N`` latent crops (Euler steps from noise), decodes them with the TAEF2 decoder, and compares
   them with crops of the *clean* paintings by statistics of an encoder the cloak did not attack
   (TAESANA Gram / channel statistics), colour histograms, a gradient-magnitude texture histogram, and a
   classifier two-sample test (a ridge classifier on TAESANA channel statistics, cross-validated).

Every distance is a *set* distance (statistics averaged over the set, then compared), so it is 0 for a set
against itself. Confidence intervals are a hierarchical bootstrap: seeds with replacement, then samples
with replacement within each drawn seed (the reference crops are held fixed). The headline is
``distance(cloak-trained) / distance(clean-trained)`` next to the same ratio for same-budget noise.

Layout: results (small, to keep) go to ``OUT``: ``results.csv`` (long format), ``summary.csv``,
``results.md``, ``training_curves.png``, ``samples_grid.png``, ``samples_<protection>.png`` and
``runs/<protection>/seed<k>/{losses.csv,metrics.json}``. Caches (protected PNGs, latents, checkpoints,
decoded samples) go to ``WORK`` (default ``OUT/work``; point it at a git-ignored folder). A finished
version (``metrics.json`` with the same settings and its samples in ``WORK``) is skipped; an unfinished
one resumes from its last checkpoint, bit-for-bit (the RNG state is checkpointed too).

This is a toy-scale model on a CPU. With real diffusers weights the same question is answered by
fine-tuning a LoRA of a full pipeline on each version (see :mod:`glazeish.bench.pipelines`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..imageio import ImageError, read_image, save_image, to_tensor
from ..metadata import MetadataOptions
from ..metrics import StyleFeatures, gram
from .harness import at_least, check_eps

NONE = "none"
METRICS = ("style", "colour", "texture", "c2st")
METRIC_INFO = {
    "style": "Gram + channel mean/std distance of TAESANA features (set averages; 0 = same statistics)",
    "colour": "total-variation distance of 8x8x8 RGB histograms (0 = same colours, 1 = disjoint)",
    "texture": "total-variation distance of luminance gradient-magnitude histograms (0 = same, 1 = disjoint)",
    "c2st": "cross-validated accuracy of a ridge classifier telling the set from real crops (0.5 = cannot)",
}
Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# configuration


@dataclass
class MimicConfig:
    """One ``bench mimic`` run. Sizes are in pixels (``crop``) and optimiser steps (``steps``)."""

    images: list[str]
    out: str
    protections: list[str] = field(default_factory=lambda: ["none", "random", "glazeish-default"])
    external: dict[str, str] = field(default_factory=dict)  # protection label -> folder
    work: str | None = None  # caches and checkpoints (default OUT/work)
    models_dir: str | None = None
    eps_levels: float = 4.0  # budget (1/255) of `random` etc.; glazeish presets keep their own (default: 4)
    protect_seed: int = 0  # seed of the protections (noise draw, attack start): the same for every model seed
    draws: int = 1  # independent draws of every seeded protection (protect seeds protect_seed, +1, ...)
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 400
    batch: int = 16
    crop: int = 128  # training / sample crop in pixels (a multiple of 8 * 2**(len(mults) - 1))
    width: int = 48
    mults: tuple[int, ...] = (1, 2, 2)
    lr: float = 1e-3
    samples: int = 32
    sample_steps: int = 30
    n_ref: int = 64  # real crops every set is compared with
    limit: int | None = None  # at most this many images per folder
    bootstrap: int = 1000
    ckpt_every: int = 100
    device: str = "cpu"

    @classmethod
    def quick(cls, images: list[str], out: str, **overrides) -> "MimicConfig":
        """Toy size for tests and smoke runs: 64 px crops, a 16-wide two-level U-Net, few steps."""
        base = dict(steps=40, batch=8, crop=64, width=16, mults=(1, 2), samples=4, sample_steps=10, n_ref=16,
                    limit=4, bootstrap=200, ckpt_every=20)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(images=images, out=out, **base)

    def __post_init__(self):
        self.mults = tuple(int(m) for m in self.mults)
        unit = 8 * 2 ** (len(self.mults) - 1)
        if self.crop % unit or self.crop < unit:
            raise ValueError(f"--crop must be a positive multiple of {unit} for this U-Net, not {self.crop}")
        if self.crop % 32:
            raise ValueError(f"--crop must be a multiple of 32 (the TAESANA style encoder's), not {self.crop}")
        if not self.seeds:
            raise ValueError("at least one seed")
        if self.steps < 1 or self.samples < 2 or self.batch < 1 or self.draws < 1:
            raise ValueError("steps ≥ 1, samples ≥ 2, batch ≥ 1 and draws ≥ 1 are required")
        check_eps(self.eps_levels)
        for option, value, low in (("--limit", self.limit, 1), ("--sample-steps", self.sample_steps, 1),
                                   ("--bootstrap", self.bootstrap, 1), ("--width", self.width, 1),
                                   ("n_ref", self.n_ref, 2), ("ckpt_every", self.ckpt_every, 1)):
            at_least(option, value, low)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a positive number, not {self.lr:g}")

    def train_key(self) -> dict:
        """The settings that decide a trained model and its samples (a finished version is reused only
        when these match)."""
        keys = ("steps", "batch", "crop", "width", "mults", "lr", "samples", "sample_steps", "eps_levels", "protect_seed")
        return {k: getattr(self, k) for k in keys}


# ---------------------------------------------------------------------------------------------
# the model: a small U-Net over latents, trained with rectified flow


def _groups(c: int) -> int:
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv ×2 with the time embedding added in between; ``B×cin×h×w -> B×cout×h×w``."""

    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.n1 = nn.GroupNorm(_groups(cin), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, cout)
        self.n2 = nn.GroupNorm(_groups(cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.c2.weight)  # each block starts as the identity: stable from step 0
        nn.init.zeros_(self.c2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x))) + self.t(emb)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of ``t`` (``B``, in [0, 1]) -> ``B×dim``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * 1000 * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1)


class TinyUNet(nn.Module):
    """Velocity model ``v(x_t, t)`` over latent crops: ``B×C×h×w`` (h, w multiples of 2**(levels-1)) and
    ``t`` (``B``, in [0, 1]) -> ``B×C×h×w``. One residual block per level down, two up, skip connections."""

    def __init__(self, channels: int = 32, width: int = 64, mults: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        self.width = width
        tdim = 4 * width
        self.temb = nn.Sequential(nn.Linear(width, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        chans = [width * m for m in mults]
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        c = width
        for i, co in enumerate(chans):
            self.down.append(ResBlock(c, co, tdim))
            c = co
            if i < len(chans) - 1:
                self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, tdim)
        self.up = nn.ModuleList()
        self.unpool = nn.ModuleList()
        for i, co in reversed(list(enumerate(chans))):
            self.up.append(ResBlock(c + co, co, tdim))
            c = co
            if i > 0:
                self.unpool.append(nn.Conv2d(c, chans[i - 1], 3, padding=1))
                c = chans[i - 1]
        self.out = nn.Sequential(nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.temb(timestep_embedding(t, self.width))
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        h = self.mid(h, emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], 1), emb)
            if i < len(self.unpool):
                h = self.unpool[i](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(h)


def flow_loss(model: nn.Module, x0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rectified-flow loss: ``x_t = (1−t)·x0 + t·ε``, target velocity ``ε − x0``; ``t`` logit-normal."""
    b = x0.shape[0]
    t = torch.sigmoid(torch.randn(b, generator=gen))
    noise = torch.randn(x0.shape, generator=gen)
    tt = t[:, None, None, None]
    xt = (1 - tt) * x0 + tt * noise
    return F.mse_loss(model(xt, t), noise - x0)


@torch.no_grad()
def sample_flow(model: nn.Module, n: int, shape: tuple[int, int, int], steps: int, gen: torch.Generator,
                batch: int = 16) -> torch.Tensor:
    """``n`` samples ``n×C×h×w`` by Euler integration of the velocity from ``t = 1`` (noise) to ``t = 0``."""
    out = []
    ts = torch.linspace(1, 0, steps + 1)
    for i in range(0, n, batch):
        x = torch.randn((min(batch, n - i), *shape), generator=gen)
        for k in range(steps):
            v = model(x, ts[k].expand(x.shape[0]))
            x = x + (ts[k + 1] - ts[k]) * v
        out.append(x)
    return torch.cat(out)


@dataclass
class LatentSet:
    """A version's training data: full-image latents (each ``C×h×w``) and their per-channel statistics
    (``C``), computed on the version itself so that nothing is borrowed from another version."""

    latents: list[torch.Tensor]
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, latents: list[torch.Tensor]) -> "LatentSet":
        flat = torch.cat([z.flatten(1) for z in latents], 1)
        return cls(latents, flat.mean(1), flat.std(1).clamp_min(1e-3))

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean[:, None, None]) / self.std[:, None, None]

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std[:, None, None] + self.mean[:, None, None]

    def crops(self, n: int, size: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` random normalised ``C×size×size`` crops, each flipped left-right with probability 1/2."""
        idx = torch.randint(len(self.latents), (n,), generator=gen).tolist()
        out = []
        for i in idx:
            z = self.latents[i]
            y = int(torch.randint(z.shape[1] - size + 1, (1,), generator=gen))
            x = int(torch.randint(z.shape[2] - size + 1, (1,), generator=gen))
            c = z[:, y:y + size, x:x + size]
            if bool(torch.rand(1, generator=gen) < 0.5):
                c = c.flip(-1)
            out.append(c)
        return self.normalise(torch.stack(out))


def _lr_at(step: int, total: int, lr: float) -> float:
    """Linear warm-up over 5% of the steps, then cosine decay to 10% of ``lr``."""
    warm = max(1, total // 20)
    if step < warm:
        return lr * (step + 1) / warm
    p = (step - warm) / max(1, total - warm)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def train(data: LatentSet, cfg: MimicConfig, seed: int, ckpt: Path | None = None,
          log: Log | None = None) -> tuple[nn.Module, list[float]]:
    """Train a :class:`TinyUNet` from scratch on ``data``; returns the model and the loss of every step.

    Deterministic for a seed (initialisation and batches come from seeded generators); with ``ckpt``, the
    state (weights, optimiser, RNG, losses) is saved every ``cfg.ckpt_every`` steps and a run resumes from it.
    """
    size = cfg.crop // 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyUNet(data.latents[0].shape[0], cfg.width, cfg.mults)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(10_007 * seed + 1)
    losses: list[float] = []
    start = 0
    state = None
    if ckpt is not None and ckpt.is_file():
        try:  # weights_only: a file on disk is data, never code to run
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as e:  # a torn, foreign or planted file: start over rather than trust it
            if log:
                log(f"ignoring checkpoint {ckpt}: not a plain weights file ({type(e).__name__})")
    if isinstance(state, dict):
        if state.get("key") == cfg.train_key():
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            gen.set_state(state["gen"])
            losses = list(state["losses"])
            start = len(losses)
            if log:
                log(f"resuming from step {start} ({ckpt})")
    model.train()
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg.steps, cfg.lr)
        loss = flow_loss(model, data.crops(cfg.batch, size, gen), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        done = step + 1
        if ckpt is not None and (done % cfg.ckpt_every == 0 or done == cfg.steps):
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                        "losses": losses, "key": cfg.train_key()}, tmp)
            os.replace(tmp, ckpt)
        if log and (done % max(1, cfg.steps // 10) == 0):
            rate = (time.perf_counter() - t0) / (done - start)
            log(f"step {done}/{cfg.steps} loss {np.mean(losses[-max(1, cfg.steps // 10):]):.4f} ({rate:.2f} s/step)")
    model.eval()
    return model, losses


# ---------------------------------------------------------------------------------------------
# statistics and set distances


@dataclass
class ImageStats:
    """Per-image statistics of a set of ``N`` images (all tensors have ``N`` first).

    ``grams``/``means``/``stds``: per TAESANA layer, ``N×C×C`` / ``N×C`` / ``N×C``; ``colour``: ``N×512``
    (8×8×8 RGB histogram); ``texture``: ``N×16`` (gradient-magnitude histogram); ``features``: ``N×D``
    (channel means and log-stds of every layer, the two-sample classifier's input).
    """

    grams: list[torch.Tensor]
    means: list[torch.Tensor]
    stds: list[torch.Tensor]
    colour: torch.Tensor
    texture: torch.Tensor
    features: torch.Tensor

    def __len__(self) -> int:
        return self.colour.shape[0]

    def take(self, idx: torch.Tensor) -> "ImageStats":
        return ImageStats([g[idx] for g in self.grams], [m[idx] for m in self.means], [s[idx] for s in self.stds],
                          self.colour[idx], self.texture[idx], self.features[idx])

    @staticmethod
    def cat(parts: list["ImageStats"]) -> "ImageStats":
        n = len(parts[0].grams)
        return ImageStats([torch.cat([p.grams[i] for p in parts]) for i in range(n)],
                          [torch.cat([p.means[i] for p in parts]) for i in range(n)],
                          [torch.cat([p.stds[i] for p in parts]) for i in range(n)],
                          torch.cat([p.colour for p in parts]), torch.cat([p.texture for p in parts]),
                          torch.cat([p.features for p in parts]))


def colour_histogram(x: torch.Tensor, levels: int = 8) -> torch.Tensor:
    """``B×3×H×W`` in [0, 1] -> ``B×levels³`` joint RGB histogram, each row summing to 1."""
    q = (x.clamp(0, 1) * levels).long().clamp_max(levels - 1)
    idx = (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]
    out = torch.stack([torch.bincount(i.flatten(), minlength=levels**3) for i in idx]).float()
    return out / out.sum(1, keepdim=True)


def texture_histogram(x: torch.Tensor, bins: int = 16, top: float = 0.4) -> torch.Tensor:
    """``B×3×H×W`` in [0, 1] -> ``B×bins`` histogram of luminance gradient magnitude on ``[0, top]`` (the
    last bin takes everything above): how much fine brushwork / grain / flat area an image has."""
    y = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).float()
    gx = y[:, :-1, 1:] - y[:, :-1, :-1]
    gy = y[:, 1:, :-1] - y[:, :-1, :-1]
    mag = (gx.square() + gy.square()).sqrt()
    idx = (mag / top * bins).long().clamp_max(bins - 1)
    out = torch.stack([torch.bincount(i.flatten(), minlength=bins) for i in idx]).float()
    return out / out.sum(1, keepdim=True)


@torch.no_grad()
def image_stats(images: torch.Tensor, style: StyleFeatures, batch: int = 16) -> ImageStats:
    """Statistics of ``images`` (``N×3×H×W`` in [0, 1], H and W multiples of 32)."""
    parts = []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].float()
        feats = style(x)
        means = [f.mean((2, 3)) for f in feats]
        stds = [f.std((2, 3)) for f in feats]
        features = torch.cat([torch.cat([m, s.clamp_min(1e-6).log()], 1) for m, s in zip(means, stds)], 1)
        parts.append(ImageStats([gram(f) for f in feats], means, stds, colour_histogram(x), texture_histogram(x),
                                features))
    return ImageStats.cat(parts)


def set_distances(a: ImageStats, b: ImageStats) -> dict[str, float]:
    """Distances between two sets, from their averaged statistics: ``style`` (the set version of
    :func:`glazeish.metrics.style_distance`: per layer, MSE of mean Gram + of mean channel means + of mean
    channel stds, summed), ``colour`` and ``texture`` (total-variation distance of the mean histograms)."""
    style = 0.0
    for ga, gb, ma, mb, sa, sb in zip(a.grams, b.grams, a.means, b.means, a.stds, b.stds):
        style += float((ga.mean(0) - gb.mean(0)).square().mean())
        style += float((ma.mean(0) - mb.mean(0)).square().mean())
        style += float((sa.mean(0) - sb.mean(0)).square().mean())
    return {
        "style": style,
        "colour": 0.5 * float((a.colour.mean(0) - b.colour.mean(0)).abs().sum()),
        "texture": 0.5 * float((a.texture.mean(0) - b.texture.mean(0)).abs().sum()),
    }


def c2st_accuracy(fa: torch.Tensor, fb: torch.Tensor, folds: int = 5, seed: int = 0, ridge: float = 1.0) -> float:
    """Classifier two-sample test: cross-validated accuracy of a ridge classifier telling ``fa`` (``N×D``)
    from ``fb`` (``M×D``), on ``min(N, M)`` rows of each (balanced). 0.5 = the sets cannot be told apart.

    The folds pair row ``i`` of ``fa`` with row ``i`` of ``fb`` (same fold), and ties score one half, so two
    identical sets give exactly 0.5. The classifier is fitted in its dual form (features may outnumber rows)
    on features standardised with the training fold's statistics; ``ridge`` is scaled by the row count.
    """
    n = min(len(fa), len(fb))
    fa, fb = fa[:n].double(), fb[:n].double()
    k = max(2, min(folds, n))
    gen = torch.Generator().manual_seed(seed)
    fold = torch.empty(n, dtype=torch.long)
    fold[torch.randperm(n, generator=gen)] = torch.arange(n) % k
    score = 0.0
    for f in range(k):
        tr, te = fold != f, fold == f
        x = torch.cat([fa[tr], fb[tr]])
        y = torch.cat([-torch.ones(int(tr.sum())), torch.ones(int(tr.sum()))]).double()
        mu, sd = x.mean(0), x.std(0, correction=0).clamp_min(1e-8)
        xs = (x - mu) / sd
        gram_m = xs @ xs.T + ridge * len(xs) * torch.eye(len(xs), dtype=xs.dtype)
        alpha = torch.linalg.solve(gram_m, y - y.mean())
        w = xs.T @ alpha
        for rows, label in ((fa[te], -1.0), (fb[te], 1.0)):
            s = ((rows - mu) / sd) @ w + y.mean()
            score += float((torch.sign(s) == label).double().sum() + 0.5 * (s == 0).double().sum())
    return score / (2 * n)


def bootstrap_distance(per_unit: list[ImageStats], ref: ImageStats, resamples: int, seed: int = 0,
                       paired_with: list[ImageStats] | None = None,
                       pair_index: list[int] | None = None) -> np.ndarray:
    """Bootstrap draws (``resamples×3``: style, colour, texture) of the set distance to ``ref``: units (one per
    training seed and protection draw) with replacement, then samples with replacement within each drawn unit.

    With ``paired_with`` (another version's per-unit stats; unit ``i`` is paired with ``paired_with[
    pair_index[i]]``, default the same index), each draw is the *ratio* distance(set) / distance(paired set)
    with the same drawn units and the same drawn sample indices: sample ``j`` of a training seed starts from
    the same noise in every version (same initialisation and batches too), so the samples are paired one to one.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((resamples, 3))
    keys = ("style", "colour", "texture")
    pair_index = pair_index if pair_index is not None else list(range(len(per_unit)))
    for r in range(resamples):
        units = rng.integers(len(per_unit), size=len(per_unit))
        idx = [torch.from_numpy(rng.integers(len(per_unit[u]), size=len(per_unit[u]))) for u in units]

        def draw(sets: list[ImageStats], index: list[int]) -> ImageStats:
            return ImageStats.cat([sets[index[u]].take(i % len(sets[index[u]])) for u, i in zip(units, idx)])

        d = set_distances(draw(per_unit, list(range(len(per_unit)))), ref)
        if paired_with is not None:
            d0 = set_distances(draw(paired_with, pair_index), ref)
            d = {k: d[k] / d0[k] if d0[k] > 0 else float("nan") for k in keys}
        out[r] = [d[k] for k in keys]
    return out


# ---------------------------------------------------------------------------------------------
# the run


def _match_channel_stats(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``z`` (``C×h×w``) with each channel shifted and scaled to the mean and std of ``like``'s channel."""
    mu, sd = z.mean((1, 2), keepdim=True), z.std((1, 2), keepdim=True).clamp_min(1e-6)
    return (z - mu) / sd * like.std((1, 2), keepdim=True) + like.mean((1, 2), keepdim=True)


def _load_cache(path: Path, valid: Callable[[object], bool], log: Log) -> object | None:
    """A cache file of the run (latents, samples) as :func:`torch.save` wrote it, or None when it is missing or
    unusable: a torn or foreign file is said in one line, deleted, and rebuilt by the caller (``weights_only``:
    a file on disk is data, never code to run, so an unreadable one is never retried without it)."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        why = "not what this run wrote"
    except Exception as e:  # what torch says here suggests weights_only=False: the one thing not to do
        data, why = None, type(e).__name__
    if data is not None and valid(data):
        return data
    log(f"{path}: corrupt cache file ({why}); deleted, it will be rebuilt")
    path.unlink(missing_ok=True)
    return None


def _are_samples(data: object) -> bool:
    return isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and data.dim() == 4


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _safe(name: str) -> str:
    return name.replace(":", "_").replace("/", "_")


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def grid_image(images: torch.Tensor, cols: int, pad: int = 2) -> np.ndarray:
    """``N×3×H×W`` in [0, 1] -> one ``H'×W'×3`` uint8 grid, ``cols`` per row, white gaps."""
    n, _, h, w = images.shape
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    arr = _to_u8(images).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = arr[i]
    return out


@dataclass
class MimicResult:
    """What :func:`run_mimic` did: result files, versions trained now and versions skipped as finished."""

    out: Path
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Version:
    """One training set of the experiment: one draw of a protection on every image, or a statistics null.

    ``stat_null``: the clean images' latents, each channel shifted and scaled per image to the mean and
    standard deviation of the protection's latents — the same colour/latent statistics, none of its structure,
    so that a shift explained by statistics alone shows up here too.
    """

    name: str
    prot: object  # a benchmark Protection
    draw: int = 0
    stat_null: bool = False

    @property
    def family(self) -> str:
        """The name without the draw: every draw of a protection is one arm."""
        return self.name.split("#", 1)[0]

    @property
    def cache_key(self):
        return self.prot.cache_key

    @property
    def eps_levels(self):
        return self.prot.eps_levels


def _seeded(prot) -> bool:
    """Whether a protection draws anything random (its output changes with the protection seed)."""
    return prot.name != NONE and not hasattr(prot, "folder") and not getattr(getattr(prot, "inner", None),
                                                                               "folder", None)


def _summaries(per: dict[str, list[tuple[tuple[int, int], ImageStats]]], rows: list[dict], ref: ImageStats,
               bootstrap: int) -> list[dict]:
    """The summary rows (``summary.csv``) per protection family: each distance with its bootstrap CI, the ratios
    to the clean model and to the same-PSNR noise arm with theirs, and the C2ST accuracy over the sample rows."""
    summary: list[dict] = []
    # bootstrap summaries and the headline ratios: units = (protection draw, training seed); CIs over units
    # and samples. Ratios pair each unit with the clean model of the same seed, and with the same-PSNR noise
    # arm's unit of the same draw and seed.
    for family, units in per.items():
        stats = [st for _, st in units]
        point = set_distances(ImageStats.cat(stats), ref)
        draws = bootstrap_distance(stats, ref, bootstrap, seed=1)
        acc = [r["value"] for r in rows if r["protection"].split("#", 1)[0] == family
               and r["stage"] == "samples" and r["metric"] == "c2st"]
        row0 = {"protection": family, "units": len(units)}
        pairs = {"": (NONE, lambda u: (0, u[1])), "noise_": (f"same-psnr:{family}", lambda u: u)}
        for j, m in enumerate(("style", "colour", "texture")):
            lo, hi = np.percentile(draws[:, j], [2.5, 97.5])
            summary.append({**row0, "metric": m, "value": point[m], "lo": lo, "hi": hi})
        for prefix, (other, key) in pairs.items():
            theirs = dict(per.get(other, []))
            if not theirs or not all(key(u) in theirs for u, _ in units):
                continue
            mine_keys = [u for u, _ in units]
            paired = [theirs[key(u)] for u in mine_keys]
            ratios = bootstrap_distance(stats, ref, bootstrap, seed=2, paired_with=paired)
            their_point = set_distances(ImageStats.cat(paired), ref)
            for j, m in enumerate(("style", "colour", "texture")):
                rr = ratios[:, j][np.isfinite(ratios[:, j])]
                row = next(r for r in summary if r["protection"] == family and r["metric"] == m)
                row[f"{prefix}ratio"] = point[m] / their_point[m] if their_point[m] > 0 else float("nan")
                row[f"{prefix}ratio_lo"], row[f"{prefix}ratio_hi"] = (
                    np.percentile(rr, [2.5, 97.5]) if len(rr) else (np.nan,) * 2)
        summary.append({**row0, "metric": "c2st", "value": float(np.mean(acc)), "lo": float(np.min(acc)),
                        "hi": float(np.max(acc))})
    return summary


class MimicRun:
    """Loads the encoders once and runs a :class:`MimicConfig` (see the module doc)."""

    def __init__(self, config: MimicConfig, log: Log | None = None):
        from ..encoders import Ensemble, load_encoder
        from .harness import image_key, interleaved_images
        from .protections import BenchContext, make_protection, split_protections

        self.cfg = c = config
        self.log = log or (lambda s: print(s, file=sys.stderr))
        self.out = Path(c.out)
        self.work = Path(c.work) if c.work else self.out / "work"
        self.taef2 = load_encoder("taef2", c.models_dir)
        self.style = StyleFeatures(load_encoder("taesana", c.models_dir).encoder)
        self.files = interleaved_images(c.images, c.limit)
        if not self.files:
            raise ValueError(f"no images found in {', '.join(c.images)}")
        self.keys = [image_key(f) for f in self.files]
        ensemble = Ensemble([self.taef2])

        def ctx(draw: int) -> BenchContext:
            return BenchContext(eps_levels=c.eps_levels, seed=c.protect_seed + draw, encoder="taef2", device=c.device,
                                models_dir=c.models_dir, external=dict(c.external), ensemble=ensemble)

        names = split_protections([p for p in c.protections if not p.startswith("statnull:")], c.external)
        nulls = [p.removeprefix("statnull:") for p in c.protections if p.startswith("statnull:")]
        split_protections(nulls, c.external)  # check the names
        names = [NONE] + [n for n in names if n != NONE]  # the clean-trained model is every ratio's denominator
        self.versions: list[Version] = []
        for name, null in [(n, False) for n in names] + [(n, True) for n in nulls]:
            first = make_protection(name, ctx(0))
            draws = c.draws if _seeded(first) else 1
            for k in range(draws):
                prot = first if k == 0 else make_protection(name, ctx(k))
                label = ("statnull:" if null else "") + name + (f"#{k}" if draws > 1 else "")
                self.versions.append(Version(label, prot, k, null))
        self.protections = self.versions  # what the report iterates over, in order
        self.originals = []
        for f in self.files:
            rgb = read_image(f).rgb
            h, w = rgb.shape[0] // 8 * 8, rgb.shape[1] // 8 * 8
            if min(h, w) < c.crop:
                raise ValueError(f"{f}: {rgb.shape[1]}x{rgb.shape[0]} is smaller than --crop {c.crop}")
            self.originals.append(rgb[:h, :w])

    # -- data -----------------------------------------------------------------------------------

    def _positions(self, n: int, seed: int) -> list[tuple[int, int, int]]:
        """``n`` crop positions ``(image, top, left)`` in pixels, on the 8-pixel latent grid."""
        gen = torch.Generator().manual_seed(seed)
        out = []
        s = self.cfg.crop
        for _ in range(n):
            i = int(torch.randint(len(self.originals), (1,), generator=gen))
            h, w = self.originals[i].shape[:2]
            out.append((i, 8 * int(torch.randint((h - s) // 8 + 1, (1,), generator=gen)),
                        8 * int(torch.randint((w - s) // 8 + 1, (1,), generator=gen))))
        return out

    def real_crops(self, positions: list[tuple[int, int, int]]) -> torch.Tensor:
        s = self.cfg.crop
        return torch.cat([to_tensor(self.originals[i][y:y + s, x:x + s]) for i, y, x in positions])

    def protected(self, version: Version, k: int) -> np.ndarray:
        """Protected pixels of image ``k`` (cached as PNG under WORK/cache, like ``bench run``'s cache)."""
        rgb, key = self.originals[k], self.keys[k]
        prot = version.prot
        path = None
        if prot.cache_key is not None:
            path = self.work / "cache" / f"{_safe(prot.name)}-{prot.cache_key}-d{version.draw}" / f"{key}.png"
            if path.is_file():
                try:
                    cached = read_image(path).rgb
                    if cached.shape == rgb.shape:
                        return cached
                except ImageError:
                    pass
        out = prot.protect(rgb, key)
        if out.shape != rgb.shape:  # an external file of the uncropped size: crop it the same way
            out = out[:rgb.shape[0], :rgb.shape[1]]
        if path is not None:
            save_image(path, out, metadata=MetadataOptions(enabled=False))
        return out

    def _version_id(self, version: Version) -> str:
        prot = version.prot
        ext = getattr(prot, "folder", None) or getattr(getattr(prot, "inner", None), "folder", None)
        ext_sig = None
        if ext is not None:
            ext_sig = sorted((p.name, p.stat().st_size) for p in Path(ext).rglob("*") if p.is_file())
        return _hash([version.name, prot.cache_key, prot.eps_levels, self.cfg.protect_seed + version.draw, self.keys,
                      ext_sig])

    def latents(self, version: Version) -> list[torch.Tensor]:
        """TAEF2 latents (``C×H/8×W/8``) of the protected full images, cached under WORK/latents."""
        path = self.work / "latents" / f"{_safe(version.name)}-{self._version_id(version)}.pt"
        cached = _load_cache(path, self._are_latents, self.log)
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        if version.stat_null:
            clean = self.latents(self.versions[0])
            moved = self.latents(Version(version.name.removeprefix("statnull:"), version.prot, version.draw))
            out = [_match_channel_stats(z0, z1) for z0, z1 in zip(clean, moved)]
        else:
            out = []
            for k in range(len(self.originals)):
                rgb = self.protected(version, k)  # outside no_grad: an attack needs gradients
                with torch.no_grad():
                    out.append(self.taef2.encode(to_tensor(rgb))[0].clone())
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(out, path)
        self.log(f"{version.name}: latents of {len(out)} images in {time.perf_counter() - t0:.0f} s")
        return out

    def _are_latents(self, data: object) -> bool:
        """Whether a cache file holds latents (``C×h×w``) of every image of the set."""
        return isinstance(data, list) and len(data) == len(self.originals) and all(
            isinstance(z, torch.Tensor) and z.dim() == 3 for z in data)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch: int = 16) -> torch.Tensor:
        return torch.cat([self.taef2.decode(z[i:i + batch]) for i in range(0, len(z), batch)])

    # -- one version ----------------------------------------------------------------------------

    def _run_dir(self, prot, seed: int) -> Path:
        return self.out / "runs" / _safe(prot.name) / f"seed{seed}"

    def _samples_path(self, prot, seed: int) -> Path:
        return self.work / "samples" / _safe(prot.name) / f"seed{seed}-{self._key(prot)}.pt"

    def _key(self, prot) -> str:
        return _hash([self.cfg.train_key(), self._version_id(prot)])

    def finished(self, prot, seed: int) -> bool:
        meta = self._run_dir(prot, seed) / "metrics.json"
        if not meta.is_file() or not self._samples_path(prot, seed).is_file():
            return False
        try:
            same = json.loads(meta.read_text()).get("key") == self._key(prot)
        except (OSError, ValueError):
            return False
        return same and _load_cache(self._samples_path(prot, seed), _are_samples, self.log) is not None

    def run_version(self, prot, seed: int, data: LatentSet) -> dict:
        """Train, sample, decode and save one (protection, seed); returns its metrics.json content."""
        c = self.cfg
        t0 = time.perf_counter()
        ckpt = self.work / "ckpt" / _safe(prot.name) / f"seed{seed}-{self._key(prot)}.ckpt"
        model, losses = train(data, c, seed, ckpt, lambda s: self.log(f"{prot.name} seed {seed}: {s}"))
        t_train = time.perf_counter() - t0
        size = c.crop // 8
        gen = torch.Generator().manual_seed(10_007 * seed + 2)
        z = sample_flow(model, c.samples, (data.latents[0].shape[0], size, size), c.sample_steps, gen)
        images = self.decode(data.denormalise(z))
        sp = self._samples_path(prot, seed)
        sp.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_to_u8(images), sp)
        run_dir = self._run_dir(prot, seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "losses.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "loss"])
            w.writerows((i + 1, f"{v:.6f}") for i, v in enumerate(losses))
        meta = {"protection": prot.name, "seed": seed, "key": self._key(prot), "eps": prot.eps_levels,
                "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):])),
                "train_seconds": round(t_train, 1), "total_seconds": round(time.perf_counter() - t0, 1),
                "parameters": sum(p.numel() for p in model.parameters())}
        (run_dir / "metrics.json").write_text(json.dumps(meta, indent=2))
        return meta

    # -- everything -----------------------------------------------------------------------------

    def run(self) -> MimicResult:
        c = self.cfg
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        result = MimicResult(self.out)
        (self.out / "config.json").write_text(json.dumps(
            {**asdict(c), "protections": [p.name for p in self.protections], "images_used": self.keys}, indent=2))
        for prot in self.protections:
            todo = [s for s in c.seeds if not self.finished(prot, s)]
            for s in c.seeds:
                if s not in todo:
                    result.skipped.append(f"{prot.name}/seed{s}")
            if not todo:
                continue
            data = LatentSet.of(self.latents(prot))
            for s in todo:
                self.run_version(prot, s, data)
                result.trained.append(f"{prot.name}/seed{s}")
        result.files = self.report()
        result.seconds = time.perf_counter() - t0
        _write_environment(self.out, result, c)
        return result

    def report(self) -> dict[str, Path]:
        """Metrics of every finished version against the clean reference crops; writes the result files."""
        c = self.cfg
        ref_pos = self._positions(c.n_ref, 999_331)
        hold_pos = self._positions(c.samples, 424_243)
        ref = image_stats(self.real_crops(ref_pos), self.style)
        real_hold = self.real_crops(hold_pos)
        rows: list[dict] = []
        per: dict[str, list[tuple[tuple[int, int], ImageStats]]] = {}
        samples: dict[str, torch.Tensor] = {}
        data_view: dict[str, torch.Tensor] = {}

        def add_rows(prot: str, stage: str, seed, stats: ImageStats, n: int):
            d = set_distances(stats, ref)
            d["c2st"] = c2st_accuracy(stats.features, ref.features, seed=0)
            for m in METRICS:
                rows.append({"protection": prot, "stage": stage, "seed": seed, "metric": m, "value": d[m], "n": n})
            return d

        hold_stats = image_stats(real_hold, self.style)
        add_rows("(real crops)", "real", "", hold_stats, len(real_hold))
        size = c.crop // 8
        for prot in self.protections:
            # the data as the mimic's autoencoder shows it: decoded latent crops of this version
            lat = self.latents(prot)
            z = torch.stack([lat[i][:, y // 8:y // 8 + size, x // 8:x // 8 + size] for i, y, x in hold_pos])
            data_view[prot.name] = self.decode(z)
            add_rows(prot.name, "data", "", image_stats(data_view[prot.name], self.style), len(z))
            seeds = [s for s in c.seeds if self.finished(prot, s)]
            for s in seeds:
                imgs = _load_cache(self._samples_path(prot, s), _are_samples, self.log).float() / 255  # finished
                if s == seeds[0] and prot.family not in samples:
                    samples[prot.family] = imgs
                st = image_stats(imgs, self.style)
                per.setdefault(prot.family, []).append(((prot.draw, s), st))
                add_rows(prot.name, "samples", s, st, len(imgs))
        summary = _summaries(per, rows, ref, c.bootstrap)
        files = {}
        files["results"] = _write_csv(self.out / "results.csv", rows,
                                      ["protection", "stage", "seed", "metric", "value", "n"])
        files["summary"] = _write_csv(self.out / "summary.csv", summary,
                                      ["protection", "metric", "units", "value", "lo", "hi", "ratio", "ratio_lo",
                                       "ratio_hi", "noise_ratio", "noise_ratio_lo", "noise_ratio_hi"])
        files.update(self._figures(samples, data_view, real_hold))
        files["markdown"] = self._markdown(rows, summary)
        return files

    def _figures(self, samples: dict[str, torch.Tensor], data_view: dict[str, torch.Tensor],
                 real: torch.Tensor) -> dict[str, Path]:
        files: dict[str, Path] = {}
        opts = MetadataOptions(enabled=False)
        cols = min(8, self.cfg.samples)
        for name, imgs in samples.items():
            files[f"samples_{name}"] = save_image(self.out / f"samples_{_safe(name)}.png",
                                                  grid_image(imgs[:16], cols), metadata=opts)
        # one overview: real crops, the clean data through TAEF2, then each version's samples (first seed)
        rows = [real[:cols], data_view[NONE][:cols]] + [samples[n][:cols] for n in samples]
        labels = ["real crops", "real via TAEF2"] + [f"samples: {n}" for n in samples]
        rows = [r for r in rows if len(r) == cols]
        files["samples_grid"] = save_image(self.out / "samples_grid.png", grid_image(torch.cat(rows), cols),
                                           metadata=opts)
        (self.out / "samples_grid.txt").write_text("rows, top to bottom:\n" + "\n".join(labels[:len(rows)]) + "\n")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(7, 4))
            for i, prot in enumerate(self.protections):
                for s in self.cfg.seeds:
                    p = self._run_dir(prot, s) / "losses.csv"
                    if not p.is_file():
                        continue
                    loss = np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2)[:, 1]
                    k = max(1, len(loss) // 25)  # moving average: the per-step loss is very noisy
                    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
                    ax.plot(np.arange(len(smooth)) + k, smooth, color=f"C{i}", alpha=0.9 if s == self.cfg.seeds[0]
                            else 0.5, label=prot.name if s == self.cfg.seeds[0] else None)
            ax.set_xlabel("step")
            ax.set_ylabel("flow-matching loss (moving average)")
            ax.set_title("training curves (one line per protection and seed)")
            ax.legend()
            fig.tight_layout()
            fig.savefig(self.out / "training_curves.png", dpi=110)
            plt.close(fig)
            files["training_curves"] = self.out / "training_curves.png"
        except ImportError:
            self.log("matplotlib missing: no training_curves.png")
        return files

    def _markdown(self, rows: list[dict], summary: list[dict]) -> Path:
        c = self.cfg
        lines = ["# Mimicry by training: a small flow-matching model trained on each version", "",
                 f"{len(self.files)} images, crop {c.crop} px, {c.steps} steps × batch {c.batch}, U-Net width "
                 f"{c.width} mults {list(c.mults)}, seeds {c.seeds}, {c.draws} draw(s) of every seeded protection "
                 f"(protect seeds from {c.protect_seed}), {c.samples} samples per seed ({c.sample_steps} Euler steps), "
                 f"{c.n_ref} real reference crops, {c.bootstrap} bootstrap draws.",
                 "", "Distances to real crops of the clean paintings (lower = closer to the artist's style); "
                 "95% bootstrap intervals over units (protection draw × training seed) and samples. *vs clean* = "
                 "distance / distance of the clean-trained model of the same seed (> 1: the protection degraded "
                 "what the model learned); *vs same-PSNR noise* = distance / distance of the model trained on "
                 "noise with the protection's own MSE, same draw and seed (> 1: more than any change of that size).",
                 "", "| arm | metric | units | value [95% CI] | vs clean [95% CI] | vs same-PSNR noise [95% CI] |",
                 "|---|---|---|---|---|---|"]

        def ratio(r: dict, prefix: str) -> str:
            key = f"{prefix}ratio"
            return f"{r[key]:.2f} [{r[key + '_lo']:.2f}, {r[key + '_hi']:.2f}]" if key in r else ""

        for r in summary:
            if r["metric"] == "c2st":
                continue
            lines.append(f"| {r['protection']} | {r['metric']} | {r['units']} | {_g(r['value'])} [{_g(r['lo'])}, "
                         f"{_g(r['hi'])}] | {ratio(r, '')} | {ratio(r, 'noise_')} |")
        lines += ["", "Classifier two-sample test (accuracy telling samples from real crops; 0.5 = cannot; "
                  "mean [min, max] over units):", "", "| arm | accuracy |", "|---|---|"]
        for r in summary:
            if r["metric"] == "c2st":
                lines.append(f"| {r['protection']} | {r['value']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] |")
        lines += ["", "Floors and proxies (no training): `real` = other real crops (the metrics' noise floor); "
                  "`data` = the version's training data through TAEF2 (decoded latent crops: the mimic's-view "
                  "proxy).", "", "| set | stage | " + " | ".join(METRICS) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        for (p, st) in dict.fromkeys((r["protection"], r["stage"]) for r in rows if r["stage"] != "samples"):
            vals = {r["metric"]: r["value"] for r in rows if r["protection"] == p and r["stage"] == st}
            lines.append(f"| {p} | {st} | " + " | ".join(_g(vals[m]) for m in METRICS) + " |")
        lines += ["", "Metrics: " + "; ".join(f"`{k}`: {v}" for k, v in METRIC_INFO.items()) + "."]
        path = self.out / "results.md"
        path.write_text("\n".join(lines) + "\n")
        return path


def _g(v: float) -> str:
    return "nan" if v is None or not np.isfinite(v) else f"{v:.4g}"


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, (float, np.floating)) else v) for k, v in r.items()})
    return path


def _write_environment(out: Path, result: MimicResult, cfg: MimicConfig) -> None:
    path = out / "environment.json"
    try:
        env = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        env = {}
    runs = env.get("runs", [])
    runs.append({"argv": sys.argv, "trained": result.trained, "skipped": result.skipped,
                 "seconds": round(result.seconds, 1), "time": time.strftime("%Y-%m-%d %H:%M:%S")})
    env.update({"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
                "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "runs": runs})
    path.write_text(json.dumps(env, indent=2))


def run_mimic(config: MimicConfig, log: Log | None = None) -> MimicResult:
    """Run (or resume) a mimicry experiment; see :class:`MimicRun`."""
    return MimicRun(config, log).run()
