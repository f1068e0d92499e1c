"""The mimic: a small U-Net over TAEF2 latents, trained from scratch with rectified flow (flow matching) on random
crops of one version's latents, deterministic for a seed and resumable from its checkpoint bit for bit; and its
sampler (Euler steps from noise)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import Log, MimicConfig

__all__ = ["LatentSet", "ResBlock", "TinyUNet", "flow_loss", "sample_flow", "timestep_embedding", "train"]

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
