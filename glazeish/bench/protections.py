"""The protections a benchmark compares: one class per protection, registered by name.

A protection is built once per run from a :class:`BenchContext` and called per image:
``p.protect(rgb, key) -> rgb'`` with ``rgb`` the original ``H×W×3`` uint8 pixels and ``rgb'`` the
protected pixels, same shape and dtype (8-bit, as a user would save them). ``key`` is the image's stable
id (``folder/stem``): seeded protections derive their per-image seed from it, and :class:`External`
looks the cloaked file up by it.

``p.eps_levels`` is the declared L∞ budget in 1/255 units (what the same-L∞ noise baseline uses);
``None`` means "measure it on the output" (external tools do not say what budget they used).
``p.cache_key`` is a fingerprint of every setting that decides the output (for glazeish cloaks: the whole
:class:`~glazeish.config.ProtectConfig`, automatically), so a cache of protected images is only reused for
the same settings; ``None`` means "cheap, never cache".

Add one by subclassing :class:`Protection` and decorating it with :func:`register_protection`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..config import PRESETS
from ..imageio import IMAGE_SUFFIXES, ImageError, read_image
from ..registry import Registered, Registry, split_specs

PROTECTIONS: Registry = Registry("protection", plugins=("glazeish.bench.peers",))  # plug-in: the peers

#: what ``bench run`` compares by default (external needs ``--external DIR``): the peers (:mod:`.peers`) at their
#: published settings and at glazeish-default's PSNR, then glazeish's presets
DEFAULT_PROTECTIONS = [
    "none", "random", "photoguard-encoder-style", "psnr-matched:photoguard-encoder-style", "mist-textural-style",
    "psnr-matched:mist-textural-style", *(f"glazeish-{k}" for k in PRESETS),
]
QUICK_PROTECTIONS = ["none", "random", "glazeish-default"]


#: class decorator: register a :class:`Protection` under its ``name`` (unique)
register_protection = PROTECTIONS.register


@dataclass
class BenchContext:
    """Settings shared by every protection of a run.

    ``eps_levels`` (1/255 units) is the budget of ``random``; the glazeish presets keep their own (see
    ``glazeish.config.PRESETS``) and the peers (:mod:`.peers`) their authors'. ``attack_steps`` replaces the
    peers' published iteration counts (1000 and 100) when set: for tests and smoke runs, not for results.
    ``mist_target`` is the target image of ``mist-textural-style`` (Mist's ``MIST.png``, which glazeish does not
    ship). ``encoder`` is the attacked encoder spec (see :mod:`glazeish.encoders`).
    """

    eps_levels: float = 4.0
    attack_steps: int | None = None
    mist_target: str | None = None
    seed: int = 0
    encoder: str = "taef2"
    device: str = "auto"
    precision: str = "auto"
    models_dir: str | None = None
    external: dict[str, str] = field(default_factory=dict)  # protection name -> folder
    ensemble: object | None = None  # a loaded glazeish.encoders.Ensemble to share between protections


def image_seed(seed: int, key: str) -> int:
    """A per-image seed: the run's seed mixed with a stable hash of the image key."""
    return seed * 100_003 + zlib.crc32(key.encode()) % 100_000


class Protection(Registered):
    """Base class. Subclasses set ``name``/``description`` and implement :meth:`protect`; built by name with
    ``PROTECTIONS.build(name, ctx=context)``."""

    def __init__(self, ctx: BenchContext):
        self.ctx = ctx

    @property
    def eps_levels(self) -> float | None:
        """Declared L∞ budget in 1/255 units (``None``: measured on each output)."""
        return self.ctx.eps_levels

    @property
    def cache_key(self) -> str | None:
        """Settings that decide the output (a cache of protected images is reused only for equal keys)."""
        return None

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        """``H×W×3`` uint8 original -> ``H×W×3`` uint8 protected."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@register_protection
class NoProtection(Protection):
    name = "none"
    description = "the original image, unchanged (the clean reference)"

    @property
    def eps_levels(self) -> float:
        return 0.0

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        return rgb.copy()


@register_protection
class RandomNoise(Protection):
    """Uniform noise in ``[-eps, eps]``, a *different* draw from the noise baseline it is compared with,
    so its "effect over noise" shows the noise floor of every figure (it should be ≈ 0)."""

    name = "random"
    description = "uniform random noise of the same L-inf budget (a second, independent draw)"

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        from ..evaluation import uniform_noise

        # +1 keeps this draw different from the baseline noise, which uses image_seed(seed, key)
        return uniform_noise(rgb, self.ctx.eps_levels, image_seed(self.ctx.seed, key) + 1)


def _describe(intensity: str) -> str:
    p = PRESETS[intensity]
    eot = f", optimised through {p.robust}" if p.robust else ""
    budget = f" on texture, RMS {p.rms_levels:g}/255" if p.budget == "masked" else ""
    return f"glazeish preset '{intensity}' (eps {p.eps_levels:g}/255{budget}, {p.steps} steps, objective '{p.objective}'{eot})"


class _Preset(Protection):
    """A glazeish intensity preset, exactly as ``glazeish protect --intensity X`` runs it (built lazily, models
    loaded once, through the one job path)."""

    intensity: ClassVar[str] = "default"

    def __init__(self, ctx: BenchContext):
        super().__init__(ctx)
        self._cloaker = None

    def config(self):
        from ..config import ProtectConfig

        c = self.ctx
        return ProtectConfig(intensity=self.intensity, encoder=c.encoder, seed=c.seed, device=c.device,
                             precision=c.precision, models_dir=c.models_dir)

    @property
    def eps_levels(self) -> float:
        return float(self.config().eps_levels)

    @property
    def cache_key(self) -> str:
        return self.config().key()

    @property
    def cloaker(self):
        if self._cloaker is None:
            from ..job import Cloaker, Job
            from ..protect import Protector

            config = self.config()
            self._cloaker = Cloaker(Job(config, evaluate=False), Protector(config, ensemble=self.ctx.ensemble))
        return self._cloaker

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        from ..imageio import Artwork

        return self.cloaker.cloak(Artwork(rgb=rgb), seed=image_seed(self.ctx.seed, key))


def _preset_protection(intensity: str) -> type[_Preset]:
    """The protection ``glazeish-<intensity>``: one per preset of :data:`glazeish.config.PRESETS`, so a new
    preset is in the benchmark (and its default list) with nothing added here."""
    cls = type(f"Glazeish{intensity.title().replace('-', '')}", (_Preset,),
               {"name": f"glazeish-{intensity}", "description": _describe(intensity), "intensity": intensity,
                "__doc__": f"glazeish's '{intensity}' preset, as ``glazeish protect --intensity {intensity}``."})
    return register_protection(cls)


PRESET_PROTECTIONS = [_preset_protection(k).name for k in PRESETS]


# strip these from an external file's stem when pairing it with an original (Glaze/Mist/glazeish naming)
_EXTERNAL_SUFFIXES = (".protected", "_protected", "-protected", "_glazed", "-glazed", "_glaze", "-glaze",
                      "_mist", "-mist", "_misted", "-misted", "_cloaked", "-cloaked")


def pair_external(folder: str | Path, stems: list[str]) -> dict[str, Path]:
    """Pair files in ``folder`` with original image stems: exact stem first, then the stem plus one of the
    usual suffixes (``.protected``, ``_glazed``, ``-mist``, ...). Returns ``{stem: path}`` for those found."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--external {folder}: not a folder")
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    by_stem: dict[str, Path] = {}
    for f in files:
        stem = f.stem
        base = next((stem[: -len(s)] for s in _EXTERNAL_SUFFIXES if stem.lower().endswith(s)), None)
        by_stem.setdefault(stem, f)
        if base:
            by_stem.setdefault(base, f)
    return {s: by_stem[s] for s in stems if s in by_stem}


@register_protection
class External(Protection):
    """Images cloaked by another tool (Glaze, Mist, ...), read from a folder and paired with the originals by
    file-name stem. The budget is measured on each image (its L∞ distance to the original, rounded up)."""

    name = "external"
    description = "images cloaked by another tool, paired with the originals by file name"

    def __init__(self, ctx: BenchContext, label: str = "external", folder: str | None = None):
        super().__init__(ctx)
        self.label = label
        self.name = label  # type: ignore[misc]  # per-instance key, e.g. "external:glaze"
        folder = folder or ctx.external.get(label)
        if not folder:
            raise ValueError("protection 'external' needs --external DIR (a folder of images cloaked by another tool)")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"--external {self.folder}: not a folder")

    @classmethod
    def from_spec(cls, arg: str | None = None, ctx: BenchContext | None = None, **_) -> "External":
        """``external`` or ``external:LABEL``: the folder comes from ``ctx.external``."""
        return cls(ctx, label=f"external:{arg}" if arg else "external")

    @property
    def eps_levels(self) -> None:
        return None

    def find(self, key: str) -> Path | None:
        return pair_external(self.folder, [key.rsplit("/", 1)[-1]]).get(key.rsplit("/", 1)[-1])

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        path = self.find(key)
        if path is None:
            raise ImageError(f"{key}: no cloaked file with this stem in {self.folder}")
        out = read_image(path).rgb
        if out.shape != rgb.shape:
            raise ImageError(f"{path}: size {out.shape[1]}x{out.shape[0]} differs from the original's "
                             f"{rgb.shape[1]}x{rgb.shape[0]} (the tool resized it; pairing needs the same size)")
        return out


class _Wrapper(Protection):
    """A protection derived from another one, named ``<name>:<inner spec>``."""

    def __init__(self, ctx: BenchContext, inner: Protection):
        super().__init__(ctx)
        self.inner = inner
        self.name = f"{type(self).name}:{inner.name}"  # type: ignore[misc]  # per-instance key

    @classmethod
    def from_spec(cls, arg: str | None = None, ctx: BenchContext | None = None, **_):
        if not arg:
            raise ValueError(f"protection {cls.name!r} wraps another: {cls.name}:<protection>")
        return cls(ctx, PROTECTIONS.build(arg, ctx=ctx))

    @property
    def cache_key(self) -> str | None:
        return self.inner.cache_key

    @property
    def eps_levels(self) -> float | None:
        return None  # measured on each output


@register_protection
class SamePSNRNoise(_Wrapper):
    """Gaussian noise with the wrapped protection's own MSE on each image (the same PSNR), clipped and rounded:
    the arm that tells a cloak's effect from the effect of any change of that size."""

    name = "same-psnr"
    description = "Gaussian noise with the wrapped protection's own MSE (same PSNR): same-psnr:<protection>"

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        from ..evaluation import mse_levels, same_psnr_noise

        # +2 keeps this draw apart from the evaluation's own same-PSNR baseline (image_seed) and `random` (+1)
        return same_psnr_noise(rgb, mse_levels(self.inner.protect(rgb, key), rgb), image_seed(self.ctx.seed, key) + 2)


@register_protection
class Jpeg75Of(_Wrapper):
    """The wrapped protection's output after a JPEG q75 re-save (what a platform serves a scraper)."""

    name = "jpeg75"
    description = "the wrapped protection's output re-saved as JPEG q75: jpeg75:<protection>"

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        from ..imageio import to_tensor, to_uint8
        from ..purify import PURIFICATIONS

        return to_uint8(PURIFICATIONS.build("jpeg75")(to_tensor(self.inner.protect(rgb, key))))


def measured_eps(original: np.ndarray, protected: np.ndarray) -> float:
    """L∞ distance in 1/255 units (an integer for 8-bit images)."""
    return float(np.abs(protected.astype(np.int16) - original.astype(np.int16)).max(initial=0))


def make_protection(name: str, ctx: BenchContext) -> Protection:
    """Build a protection by name; ``external`` / ``external:LABEL`` read the folder from ``ctx.external``."""
    return PROTECTIONS.build(name, ctx=ctx)


def split_protections(names: str | list[str], external: dict[str, str] | None = None) -> list[str]:
    """``"none,random,default"`` -> list (``default``/``all``/``quick`` expand; every ``--external`` adds its
    ``external:LABEL``). Unknown names raise ``ValueError``."""
    out: list[str] = []
    for n in split_specs(names):
        if n.lower() in ("default", "all"):
            out.extend(DEFAULT_PROTECTIONS)
        elif n.lower() == "quick":
            out.extend(QUICK_PROTECTIONS)
        elif n == "external":
            out.extend(list(external) if external else ["external"])
        else:
            PROTECTIONS[n]  # unknown names: ValueError listing the known ones
            out.append(n)
    out.extend(external or {})
    return list(dict.fromkeys(out))
