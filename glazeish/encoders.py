"""Named, differentiable image encoders (the VAE that a latent diffusion model sees the world through).

Every encoder is a :class:`LatentModel`: ``encode`` maps RGB ``B×3×H×W`` in ``[0, 1]`` (H, W multiples of
``multiple``) to a latent ``B×C×h×w``; ``decode`` (when the model has a decoder) maps it back to RGB in
``[0, 1]``. An encoder is added by one class: an :class:`EncoderLoader` that declares its weight files (name,
sha256, upstream URL) and loads them, registered with :data:`register_encoder`::

    @register_encoder
    class Mine(EncoderLoader):
        name = "mine"
        description = "my encoder, 8x downscale"
        weights = (WeightFile("mine.pth", "<sha256>", upstream="https://example.org/"),)

        @classmethod
        def load(cls, models_dir=None):
            return LatentModel(cls.name, cls.state_into(MyNet(), "mine.pth", models_dir), multiple=8)

Specs accepted by :func:`load_encoders`: a registered name (``taef2``, ``taesana``),
``diffusers:<repo-id-or-path>`` for any diffusers autoencoder, or a comma-separated list of these
(an ensemble), each optionally weighted as ``name*0.5``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from . import tae, weights
from .device import keep_freed_memory
from .registry import Registered, Registry, split_specs
from .weights import WeightFile


def fingerprint(t: torch.Tensor) -> bytes:
    """16 bytes that tell apart the shapes and float32 values of two ``…×H×W`` tensors (sha256 of the bytes):
    what the memos of passes are keyed by, so that the same pixels in a new tensor find the pass already made."""
    a = np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(memoryview(a).cast("B"))
    return h.digest()[:16]


class PassMemo:
    """The last ``capacity`` clean passes of one model, ``(E(x), D(E(x)) or None)`` by :func:`pass_key`, kept
    while :func:`sharing_passes` is open. Thread-safe; what it returns must not be changed in place."""

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self._items: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple, value: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


_SHARING = threading.Lock()  # guards the models' memo and count of open sharing_passes blocks


@contextlib.contextmanager
def sharing_passes(models: Iterable[LatentModel]) -> Iterator[None]:
    """Within the block, each model's :meth:`LatentModel.clean_passes` are kept and reused.

    The attack's objective passes the clean image through the model once to know what to push away from. The
    figures after the cloak pass the same original again. With the same pixels, layout, precision and threads
    the kernels give the same bits (the tests check it), so that second pass is taken from the memo. On a CPU
    that cloaks in fp32, this saves one encoder and one decoder pass per image. Outside any block nothing is
    kept, so no figure or count depends on what ran before. Blocks may nest and overlap across threads (the web
    page's workers share models): the memo goes when the last one closes.
    """
    models = list(models)
    with _SHARING:
        for m in models:
            m._sharing = getattr(m, "_sharing", 0) + 1  # (a subclass that skipped __init__ has none)
            if m._sharing == 1:
                m.memo = PassMemo()
    try:
        yield
    finally:
        with _SHARING:
            for m in models:
                m._sharing -= 1
                if m._sharing == 0:
                    m.memo = None


@contextlib.contextmanager
def counting_passes(model: LatentModel) -> Iterator[dict[str, int]]:
    """While open, the images that go through ``model``'s encoder and decoder: ``{"encode": n, "decode": m}``
    (forward hooks): what a test or a benchmark counts to show which passes a change saves."""
    counts = {"encode": 0, "decode": 0}
    parts = [(k, part) for k, part in (("encode", model.encoder), ("decode", model.decoder)) if part is not None]
    handles = [part.register_forward_hook(lambda mod, args, out, k=k: counts.__setitem__(k, counts[k] + len(args[0])))
               for k, part in parts]
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


def pass_key(model: nn.Module, x: torch.Tensor) -> tuple:
    """Everything that decides the bits of a pass of ``x`` through ``model``: the pixels, their layout, the
    weights' dtype, the autocast state and the thread count (some kernels' rounding follows it)."""
    dev = x.device.type
    cast = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None
    weights = next(model.parameters(), torch.empty(0)).dtype
    return (tuple(x.shape), x.stride(), x.dtype, str(x.device), weights, cast, torch.get_num_threads(),
            fingerprint(x))


class LatentModel(nn.Module):
    """An image encoder with an optional decoder, in glazeish's conventions (RGB in ``[0, 1]``)."""

    def __init__(self, name: str, encoder: nn.Module, decoder: nn.Module | None = None, multiple: int = 8):
        super().__init__()
        self.name = name
        self.encoder = encoder
        self.decoder = decoder
        self.multiple = multiple
        self.memo: PassMemo | None = None  # set while sharing_passes is open
        self._sharing = 0  # open sharing_passes blocks over this model

    @property
    def has_decoder(self) -> bool:
        return self.decoder is not None

    @property
    def device(self) -> torch.device:
        """Where the weights live (the CPU for a model without weights)."""
        return next(self.parameters(), torch.empty(0)).device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``B×3×H×W`` in [0, 1] -> latent ``B×C×h×w``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> ``B×3×H×W`` RGB, clamped to [0, 1]. Raises if the model has no decoder."""
        if self.decoder is None:
            raise ValueError(f"encoder {self.name!r} has no decoder")
        return self.decoder(z).clamp(0, 1)

    def clean_passes(self, x: torch.Tensor, decode: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``E(x)`` and, with ``decode``, ``D(E(x))`` (else None) of a clean ``B×3×H×W`` ``x`` in [0, 1] (H, W
        multiples of :attr:`multiple`), without gradients, in the current autocast. Inside
        :func:`sharing_passes` each is computed once for the same pixels, layout and precision: what the attack's
        objective and the figures after it share. Not to be changed in place."""
        memo: PassMemo | None = getattr(self, "memo", None)  # (a subclass that skipped __init__ has none)
        key = pass_key(self, x) if memo is not None else None
        hit = memo.get(key) if memo is not None else None
        if hit is not None and (hit[1] is not None or not decode):
            return hit
        with torch.no_grad():
            z = hit[0] if hit is not None else self.encode(x)
            view = self.decode(z) if decode else None
        if memo is not None:
            memo.put(key, (z, view))
        return z, view

    def round_trip(self, x: torch.Tensor) -> torch.Tensor:
        """The mimic's view ``D(E(x))`` of ``B×3×H×W`` in [0, 1] (any size: padded and cropped back)."""
        from .imageio import pad_to_multiple

        xp, (h, w) = pad_to_multiple(x, self.multiple)
        return self.decode(self.encode(xp))[..., :h, :w]

    def reconstruction_error(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``(scale·(D(E(x)) − x))²`` per pixel, ``B×3×H×W`` float32, differentiable in ``x`` (in [0, 1]): what
        IMPRESS-style purifiers minimise to pull an image back onto the autoencoder's manifold. ``scale`` 2 gives
        it on the [-1, 1] scale IMPRESS uses; callers choose the reduction."""
        d = self.round_trip(x).float() - x
        return d.square() if scale == 1 else (scale * d).square()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


ENCODERS: Registry = Registry("encoder")
#: class decorator: register an :class:`EncoderLoader` under its ``name``
register_encoder = ENCODERS.register


class EncoderLoader(Registered):
    """Registry entry for one encoder: its weight files and how to load them into a :class:`LatentModel`."""

    weights: ClassVar[tuple[WeightFile, ...]] = ()

    @classmethod
    def load(cls, models_dir: str | None = None) -> LatentModel:
        raise NotImplementedError

    @classmethod
    def from_spec(cls, arg: str | None = None, models_dir: str | os.PathLike | None = None, **_) -> LatentModel:
        if arg is not None:
            raise ValueError(f"encoder {cls.name!r} takes no ':' argument (got {cls.name}:{arg})")
        return cls.load(str(models_dir) if models_dir else None)

    @classmethod
    def state_into(cls, module: nn.Module, file: str, models_dir: str | None) -> nn.Module:
        """Load the declared weight file ``file`` (sha256-checked, ``weights_only``) into ``module``."""
        wf = next((w for w in cls.weights if w.name == file), None)
        if wf is None:
            raise ValueError(f"encoder {cls.name!r} declares no weight file {file!r}")
        path = weights.resolve(wf, models_dir)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except Exception as e:
            raise weights.WeightsError(f"{path}: could not load weights ({e})") from None
        return module.float().eval().requires_grad_(False)


@register_encoder
class TAEF2(EncoderLoader):
    name = "taef2"
    description = "FLUX.2-compatible tiny autoencoder (encoder + decoder), 8x downscale, 32 channels"
    weights = (
        WeightFile("taef2_encoder.pth", "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6"),
        WeightFile("taef2_decoder.pth", "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5"),
    )

    @classmethod
    def load(cls, models_dir: str | None = None) -> LatentModel:
        enc = cls.state_into(tae.taef2_encoder(), "taef2_encoder.pth", models_dir)
        dec = cls.state_into(tae.taef2_decoder(), "taef2_decoder.pth", models_dir)
        return LatentModel(cls.name, enc, dec, multiple=8)


@register_encoder
class TAESana(EncoderLoader):
    name = "taesana"
    description = "Sana DC-AE tiny encoder, 32x downscale, 32 channels (encoder only)"
    weights = (WeightFile("taesana_encoder.pth", "858f4e4cc293f88efaf58107f4154b960b9ced0cb5d9c050dad11f926b618c1f"),)

    @classmethod
    def load(cls, models_dir: str | None = None) -> LatentModel:
        return LatentModel(cls.name, cls.state_into(tae.taesana_encoder(), "taesana_encoder.pth", models_dir), None, 32)


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


def _looks_local(path: str) -> bool:
    """A path the user means as a folder on this machine (not a hub repo id like ``owner/name``)."""
    return path.startswith(("/", "./", "../", "~", ".\\"))


def load_diffusers(path: str, subfolder: str | None = None) -> LatentModel:
    """Load a diffusers autoencoder by repo id or local path (a VAE folder or a pipeline's ``vae/``)."""
    local = Path(path).expanduser()
    if _looks_local(path) and not local.is_dir():
        raise weights.WeightsError(f"{path}: no such folder (a diffusers autoencoder or pipeline folder, or a hub id)")
    import diffusers

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


@register_encoder
class Diffusers(EncoderLoader):
    """``diffusers:<repo-id-or-path>``: any diffusers autoencoder (the argument is required)."""

    name = "diffusers"
    description = ("any diffusers AutoencoderKL (SD 1.5, SDXL, FLUX.1), AutoencoderTiny, AutoencoderKLFlux2 or "
                   "AutoencoderDC, by hub id or local folder: diffusers:<repo-id-or-path>")

    @classmethod
    def from_spec(cls, arg: str | None = None, **_) -> LatentModel:
        if not arg:
            raise ValueError("encoder 'diffusers' needs a repo id or folder: diffusers:<repo-id-or-path>")
        return load_diffusers(arg)


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
        return math.lcm(*(m.multiple for m in self.models)) if self.models else 1

    @property
    def device(self) -> torch.device:
        """Where the models' weights live (the CPU for an ensemble without weights)."""
        return next((p.device for m in self.models for p in m.parameters()), torch.device("cpu"))

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def mimic(self) -> LatentModel | None:
        """The model whose decoder gives the mimic's view ``D(E(x))``: the first one with a decoder."""
        return first_with_decoder(self.models)

    def to(self, device: torch.device | str) -> "Ensemble":
        for m in self.models:
            m.to(device)
        return self

    def __iter__(self):
        return iter(zip(self.models, self.weights))

    def __len__(self) -> int:
        return len(self.models)


def first_with_decoder(models) -> LatentModel | None:
    """The first model with a decoder among ``models`` (a LatentModel, an Ensemble or a list), or None."""
    if models is None:
        return None
    if isinstance(models, Ensemble):
        models = models.models
    elif not isinstance(models, (list, tuple)):
        models = [models]
    return next((m for m in models if getattr(m, "has_decoder", False)), None)


def require_decoder(model, who: str) -> LatentModel:
    """The first model with a decoder in ``model`` (see :func:`first_with_decoder`), or a ValueError saying that
    ``who`` (e.g. ``"purification 'ae'"``) needs one and naming the models it was given."""
    if model is None:
        raise ValueError(f"{who} needs a model: an autoencoder with a decoder (e.g. taef2)")
    found = first_with_decoder(model)
    if found is None:
        names = ", ".join(getattr(m, "name", "?") for m in getattr(model, "models", [model]))
        raise ValueError(f"{who} needs a model with a decoder; {names} has none")
    return found


def parse_ensemble(spec: str) -> list[tuple[str, float]]:
    """``"taef2,taesana*0.5"`` -> ``[("taef2", 1.0), ("taesana", 0.5)]``; weights must be positive."""
    out = []
    for part in split_specs(spec):
        name, star, w = part.rpartition("*") if "*" in part else (part, "", "1")
        try:
            weight = float(w)
        except ValueError:
            raise ValueError(f"bad encoder weight in {part!r}") from None
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"encoder weight must be a positive number, not {w!r} in {part!r}")
        out.append((name.strip(), weight))
    if not out:
        raise ValueError("no encoder named")
    return out


def load_encoder(spec: str, models_dir: str | os.PathLike | None = None) -> LatentModel:
    """Load one encoder by registered name or ``name:argument`` (``diffusers:<repo-or-path>``)."""
    keep_freed_memory()  # the work with the model is about to start; see its doc (once per process)
    return ENCODERS.build(spec, models_dir=models_dir)


def load_encoders(
    spec: str, models_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu"
) -> Ensemble:
    """Load an encoder spec (see module doc) as an :class:`Ensemble` on ``device``."""
    parsed = parse_ensemble(spec)
    for name, _ in parsed:  # every name checked before the (slow) loading
        ENCODERS[name]
    models = [load_encoder(n, models_dir) for n, _ in parsed]
    return Ensemble(models, [w for _, w in parsed]).to(device)


def status(models_dir: str | os.PathLike | None = None) -> list[dict]:
    """For each registered encoder with weight files: whether they are present (verified) and where."""
    rows = []
    for name, entry in ENCODERS.items():
        if not entry.weights:
            continue
        found, problem = [], None
        for wf in entry.weights:
            try:
                p = weights.find(wf, models_dir)
            except weights.WeightsError as e:
                p, problem = None, str(e)
            found.append(str(p) if p else None)
        rows.append({"name": name, "description": entry.description, "present": all(found),
                     "files": dict(zip((w.name for w in entry.weights), found)), "problem": problem})
    return rows
