"""Named, differentiable image encoders (the VAE that a latent diffusion model sees the world through).

Every encoder is a :class:`LatentModel`: ``encode`` maps RGB ``B×3×H×W`` in ``[0, 1]`` (H, W multiples of
``multiple``) to a latent ``B×C×h×w``; ``decode`` (when the model has a decoder) maps it back to RGB in
``[0, 1]``. Add one by writing a loader and decorating it with :func:`register_encoder`.

Specs accepted by :func:`load_encoders`: a registered name (``taef2``, ``taesana``),
``diffusers:<repo-id-or-path>`` for any diffusers autoencoder, or a comma-separated list of these
(an ensemble), each optionally weighted as ``name*0.5``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import tae, weights


class LatentModel(nn.Module):
    """An image encoder with an optional decoder, in glazeish's conventions (RGB in ``[0, 1]``)."""

    def __init__(self, name: str, encoder: nn.Module, decoder: nn.Module | None = None, multiple: int = 8):
        super().__init__()
        self.name = name
        self.encoder = encoder
        self.decoder = decoder
        self.multiple = multiple

    @property
    def has_decoder(self) -> bool:
        return self.decoder is not None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``B×3×H×W`` in [0, 1] -> latent ``B×C×h×w``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> ``B×3×H×W`` RGB, clamped to [0, 1]. Raises if the model has no decoder."""
        if self.decoder is None:
            raise ValueError(f"encoder {self.name!r} has no decoder")
        return self.decoder(z).clamp(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


@dataclass
class EncoderInfo:
    name: str
    description: str
    files: tuple[str, ...]
    loader: Callable[[str | None], LatentModel]


REGISTRY: dict[str, EncoderInfo] = {}


def register_encoder(name: str, description: str, files: tuple[str, ...] = ()):
    """Decorator: register ``loader(models_dir) -> LatentModel`` under ``name``."""

    def wrap(loader: Callable[[str | None], LatentModel]):
        REGISTRY[name] = EncoderInfo(name, description, files, loader)
        return loader

    return wrap


def _load_state(module: nn.Module, file: str, models_dir: str | None) -> nn.Module:
    path = weights.resolve(file, models_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except Exception as e:
        raise weights.WeightsError(f"{path}: could not load weights ({e})") from None
    return module.float().eval().requires_grad_(False)


@register_encoder(
    "taef2",
    "FLUX.2-compatible tiny autoencoder (encoder + decoder), 8x downscale, 32 channels",
    ("taef2_encoder.pth", "taef2_decoder.pth"),
)
def _load_taef2(models_dir: str | None = None) -> LatentModel:
    enc = _load_state(tae.taef2_encoder(), "taef2_encoder.pth", models_dir)
    dec = _load_state(tae.taef2_decoder(), "taef2_decoder.pth", models_dir)
    return LatentModel("taef2", enc, dec, multiple=8)


@register_encoder(
    "taesana",
    "Sana DC-AE tiny encoder, 32x downscale, 32 channels (encoder only)",
    ("taesana_encoder.pth",),
)
def _load_taesana(models_dir: str | None = None) -> LatentModel:
    enc = _load_state(tae.taesana_encoder(), "taesana_encoder.pth", models_dir)
    return LatentModel("taesana", enc, None, multiple=32)


# ---------------------------------------------------------------------------------------------
# diffusers autoencoders


class _DiffusersEncode(nn.Module):
    """[0,1] image -> scaled latent mean of a diffusers autoencoder (what the diffusion model sees)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        cfg = vae.config
        self.scale = float(getattr(cfg, "scaling_factor", None) or 1.0)
        self.shift = float(getattr(cfg, "shift_factor", None) or 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.vae.encode(x * 2 - 1)
        if hasattr(out, "latent_dist"):
            z = out.latent_dist.mean
        elif hasattr(out, "latents"):
            z = out.latents
        elif hasattr(out, "latent"):
            z = out.latent
        else:
            z = out[0]
        return (z - self.shift) * self.scale


class _DiffusersDecode(nn.Module):
    def __init__(self, enc: _DiffusersEncode):
        super().__init__()
        self.enc = enc

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.enc.vae.decode(z / self.enc.scale + self.enc.shift)
        y = y.sample if hasattr(y, "sample") else y[0]
        return (y + 1) / 2


def _diffusers_class(path: str, subfolder: str | None) -> str | None:
    cfg = Path(path, subfolder or "", "config.json")
    if cfg.is_file():
        return json.loads(cfg.read_text()).get("_class_name")
    return None


def load_diffusers(path: str, subfolder: str | None = None) -> LatentModel:
    """Load a diffusers autoencoder by repo id or local path (a VAE folder or a pipeline's ``vae/``)."""
    import diffusers

    local = Path(path).expanduser()
    if subfolder is None and local.is_dir() and not (local / "config.json").is_file() and (local / "vae").is_dir():
        subfolder = "vae"
    cls_name = _diffusers_class(str(local), subfolder) if local.is_dir() else None
    errors = []
    candidates = [cls_name] if cls_name else []
    candidates += ["AutoencoderKL", "AutoencoderTiny", "AutoencoderKLFlux2", "AutoencoderDC"]
    sub_options = [subfolder] if subfolder is not None else [None, "vae"]
    vae = None
    for sub in sub_options:
        for name in dict.fromkeys(candidates):
            cls = getattr(diffusers, name, None)
            if cls is None:
                continue
            try:
                vae = cls.from_pretrained(str(local) if local.exists() else path, subfolder=sub)
                break
            except Exception as e:  # wrong class or missing folder: try the next one
                errors.append(f"{name}{'/' + sub if sub else ''}: {str(e).splitlines()[0][:120]}")
        if vae is not None:
            break
    if vae is None:
        raise weights.WeightsError(f"could not load a diffusers autoencoder from {path!r}: " + "; ".join(errors[:3]))
    vae = vae.float().eval().requires_grad_(False)
    enc = _DiffusersEncode(vae)
    dec = _DiffusersDecode(enc) if hasattr(vae, "decode") else None
    model = LatentModel(f"diffusers:{path}", enc, dec, multiple=1)
    model.multiple = _probe_multiple(model)
    return model


def _probe_multiple(model: LatentModel, size: int = 64) -> int:
    """Downscale factor of an encoder, read off one small forward pass."""
    with torch.no_grad():
        while True:
            try:
                h = model.encode(torch.zeros(1, 3, size, size)).shape[-1]
                return max(1, size // h)
            except Exception:
                if size >= 1024:
                    raise
                size *= 2


# ---------------------------------------------------------------------------------------------
# specs and ensembles


@dataclass
class Ensemble:
    """Several encoders attacked at once; the attack minimises the weighted sum of their objectives."""

    models: list[LatentModel]
    weights: list[float] = field(default_factory=list)

    def __post_init__(self):
        if not self.weights:
            self.weights = [1.0] * len(self.models)
        if len(self.weights) != len(self.models):
            raise ValueError("one weight per encoder")

    @property
    def multiple(self) -> int:
        m = 1
        for model in self.models:
            m = m * model.multiple // _gcd(m, model.multiple)
        return m

    @property
    def device(self) -> torch.device:
        """Where the models' weights live (CPU for an ensemble without weights)."""
        for model in self.models:
            for p in model.parameters():
                return p.device
        return torch.device("cpu")

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def to(self, device: torch.device | str) -> "Ensemble":
        for m in self.models:
            m.to(device)
        return self

    def __iter__(self):
        return iter(zip(self.models, self.weights))

    def __len__(self) -> int:
        return len(self.models)


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def parse_spec(spec: str) -> list[tuple[str, float]]:
    """``"taef2,taesana*0.5"`` -> ``[("taef2", 1.0), ("taesana", 0.5)]``."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, w = part.rpartition("*") if "*" in part else (part, "", "1")
        try:
            weight = float(w)
        except ValueError:
            raise ValueError(f"bad encoder weight in {part!r}") from None
        out.append((name.strip(), weight))
    if not out:
        raise ValueError("no encoder named")
    return out


def load_encoder(name: str, models_dir: str | os.PathLike | None = None) -> LatentModel:
    """Load one encoder by registered name or ``diffusers:<repo-or-path>``."""
    if name.startswith("diffusers:"):
        return load_diffusers(name.split(":", 1)[1])
    if name not in REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(REGISTRY)}, diffusers:<repo-or-path>")
    return REGISTRY[name].loader(str(models_dir) if models_dir else None)


def load_encoders(
    spec: str, models_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu"
) -> Ensemble:
    """Load an encoder spec (see module doc) as an :class:`Ensemble` on ``device``."""
    parsed = parse_spec(spec)
    models = [load_encoder(n, models_dir) for n, _ in parsed]
    return Ensemble(models, [w for _, w in parsed]).to(device)


def status(models_dir: str | os.PathLike | None = None) -> list[dict]:
    """For each registered encoder: whether its weight files are present (verified) and where."""
    rows = []
    for info in REGISTRY.values():
        found, problem = [], None
        for f in info.files:
            try:
                p = weights.find(f, models_dir)
            except weights.WeightsError as e:
                p, problem = None, str(e)
            found.append(str(p) if p else None)
        rows.append(
            {
                "name": info.name,
                "description": info.description,
                "present": all(found),
                "files": dict(zip(info.files, found)),
                "problem": problem,
            }
        )
    return rows
