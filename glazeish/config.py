"""What decides a cloak: the intensity presets and :class:`ProtectConfig`, which knows its own fingerprint.

Units are named where they change: users and configs speak of the budget in 8-bit levels (``eps_levels = 4``
means ±4/255), :class:`~glazeish.attack.PGD` in fractions of the [0, 1] range (``eps = 4/255``); a config converts with
:attr:`ProtectConfig.eps` (and :attr:`ProtectConfig.rms`, ``alpha_levels``), where it hands them to PGD.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import generator
from .attack import OPTIMIZERS, REFERENCES, SCHEDULES
from .budget import budget_map, masked_budget
from .device import resolve_device, resolve_precision
from .encoders import ENCODERS, parse_ensemble
from .warmstart import available, open_pattern, shipped_path


@dataclass(frozen=True)
class Preset:
    """A documented setting, chosen on the measured frontier (``benchmarks/cloak_search/RESULTS.md``).

    ``eps_levels`` in 1/255 (the L∞ bound); ``robust`` = the EOT transforms sampled per step (``""`` = none);
    the budget fields as in :class:`ProtectConfig`.
    """

    eps_levels: float
    steps: int
    objective: str
    robust: str
    summary: str
    why: str = ""  # when to choose it, in one sentence (the web page's preset chooser and result cards)
    budget: str = "flat"
    budget_floor: float = 0.25
    budget_cap: float = 3.0
    rms_levels: float | None = None
    transform_order: str = "random"
    start: str = "random"
    alpha_levels: float | None = None


PRESETS: dict[str, Preset] = {
    "low": Preset(10.5, 6, "mimic-away", "jpeg,identity",
                  "lightest touch (PSNR ~40 dB); the change hides in texture, weaker than default",
                  "The default's aim and way of spending the change, with less of it (RMS 2.5/255 instead of 2.95) "
                  "and 6 steps: for art where the lightest touch matters most.",
                  budget="masked", budget_floor=0.5, budget_cap=3.0, rms_levels=2.5, transform_order="cycle"),
    "default": Preset(12, 8, "mimic-away", "jpeg,identity",
                      "near-invisible (PSNR ~38.7 dB); the change hides in texture; optimised to survive a JPEG re-save",
                      "Spends its change where the picture is busy (flat colour and paper get about half the average), "
                      "pushes what a model reproduces away from your picture, and alternates plain and JPEG-re-saved "
                      "steps.",
                      budget="masked", budget_floor=0.5, budget_cap=3.0, rms_levels=2.95, transform_order="cycle"),
    "fast": Preset(12, 4, "mimic-away", "jpeg,identity",
                   "the default's budget and aim in half the steps, from a pattern learned offline (PSNR ~38.7 dB)",
                   "Starts from a perturbation trained once for this encoder (glazeish.warmstart) and refines it in 4 "
                   "steps instead of 8: about as strong as default on flat colour and line art, a little weaker on "
                   "paintings, in about half the time.",
                   budget="masked", budget_floor=0.5, budget_cap=3.0, rms_levels=2.95, transform_order="cycle",
                   start="learned"),
    "high": Preset(15, 12, "mimic-away", "jpeg,identity",
                   "strongest (PSNR ~37.6 dB); the most visible preset: faint grain on flat colour when zoomed in",
                   "The default's aim with more change (RMS 3.35/255 instead of 2.95, up to 15/255 on busy texture) "
                   "and 12 steps: what a model reproduces moves furthest, at about 1.5× the default's time.",
                   budget="masked", budget_floor=0.5, budget_cap=3.0, rms_levels=3.35, transform_order="cycle"),
}
MAX_EPS_LEVELS = 64
MAX_STEPS = 1000  # PhotoGuard's longest runs; beyond this a typo is likelier than a wish
BUDGETS = ("flat", "perceptual", "masked")



def machine_local(default=None):
    """A field that differs between machines without changing the cloak (a path): left out of fingerprints."""
    return field(default=default, metadata={"fingerprint": False})


def fingerprint_of(obj) -> dict:
    """Every field of a dataclass (recursively) except those marked :func:`machine_local`: what a cache or a
    manifest key must hash, kept complete automatically when a field is added."""
    out = {}
    for f in dataclasses.fields(obj):
        if f.metadata.get("fingerprint", True):
            v = getattr(obj, f.name)
            out[f.name] = fingerprint_of(v) if dataclasses.is_dataclass(v) else v
    return out


def digest(payload) -> str:
    """sha256 (hex) of a JSON-able payload with sorted keys."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path) -> str:
    """``sha256:<hex>`` of a file's bytes, or the path itself when it cannot be read (reading it later reports
    the problem)."""
    try:
        return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return str(path)


def _whole(value, what: str, top: int) -> int:
    """``value`` as a whole number in ``[0, top]`` (an integral float such as a slider's 6.0 is accepted)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ValueError(f"{what} must be a whole number from 0 to {top}, not {value}")
    return value


@dataclass(frozen=True)
class ProtectConfig:
    """Everything that decides a cloak. ``None`` fields take the intensity preset's value.

    Attributes:
        intensity: a :data:`PRESETS` name.
        eps_levels: L∞ budget in 8-bit levels (1/255), 0-64.
        steps: optimisation steps, 0-1000.
        objective: a registered objective (:data:`glazeish.objectives.OBJECTIVES`).
        encoder: encoder spec (``taef2``, ``taef2,taesana*0.5``, ``diffusers:<repo-or-path>``).
        target: path of a decoy pattern image (fingerprinted by its bytes).
        seed: seeds the random start and the sampled transforms, 0 ≤ seed < 2**63.
        device, precision: ``auto`` or explicit (see :mod:`glazeish.device`).
        models_dir: where the weights are (machine-local: not part of the fingerprint).
        robust: EOT transforms sampled per step, e.g. ``identity,jpeg``; ``""`` = none.
        budget: ``flat`` (``eps`` everywhere), ``perceptual`` (less on flat colour, up to ``eps`` on texture;
            ``budget_floor`` = the fraction of ``eps`` flat areas keep) or ``masked`` (an energy budget moved
            from flat colour to texture, :func:`glazeish.budget.masked_budget`: the per-pixel bound reaches
            ``eps`` on busy brushwork only; the map's RMS is ``eps / budget_cap`` and flat areas keep
            ``budget_floor`` of that RMS).
        budget_cap, budget_power: the masked budget's L∞ : RMS ratio and the exponent of texture activity.
        rms_levels: an energy bound in 1/255: the change's RMS over the pixels that may change stays ≤ this
            (a PSNR bound: 2.95 ≈ 38.7 dB); ``None`` = L∞ only.
        optimizer, momentum, alpha_levels, schedule, coarse, fill_smooth, transform_order: how PGD steps
            (:class:`glazeish.attack.PGD`; ``alpha_levels`` = the first step in 1/255, ``None`` = PGD's default;
            ``fill_smooth``: steps on flat fills blurred over this many px, 0 = off).
        skip_grad: the skip-gradient factor on the attacked encoders' residual bodies, in (0, 1]; 1 = off
            (:class:`glazeish.surrogate.SkipGradient`: the gradient leans on what other encoders share).
        ghost: each step attacks the encoders with every residual body scaled by a factor drawn from
            ``[1 - ghost, 1 + ghost]`` (:class:`glazeish.surrogate.Ghost`, skip erosion); 0 = off.
        fill_chroma: on flat fills the steps change colour only, never lightness (grain in colour alone).
        eot_reference: what a transformed step pushes away from: ``clean`` (the untouched image's view) or
            ``transformed`` (the view of the untouched image under the same transform: how a purified cloak is
            judged, against the equally purified original; one more forward pass per transformed step).
        start: where the attack starts: ``random`` (uniform noise in the budget, PGD's start), ``zero``,
            ``learned`` (the pattern shipped for this encoder and objective, :mod:`glazeish.warmstart`),
            ``network`` (the image-conditioned generator shipped for them, :mod:`glazeish.generator`; with
            ``steps=0`` it alone is the cloak), or the path of a pattern PNG or of a generator's ``.safetensors``
            (one you trained, used as it is: no pinned sha256; both fingerprinted by their bytes).
        tile, overlap: images larger than ``tile`` px are cloaked in overlapping tiles (flat memory).
    """

    intensity: str = "default"
    eps_levels: float | None = None
    steps: int | None = None
    objective: str | None = None
    encoder: str = "taef2"
    target: str | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    models_dir: str | None = machine_local()
    robust: str | None = None
    budget: str | None = None
    budget_floor: float | None = None
    budget_cap: float | None = None
    budget_power: float = 1.0
    rms_levels: float | None = None
    optimizer: str = "sign"
    momentum: float = 0.0
    alpha_levels: float | None = None
    schedule: str = "cosine"
    coarse: int = 0
    fill_smooth: int = 0
    skip_grad: float = 1.0
    ghost: float = 0.0
    fill_chroma: bool = False
    transform_order: str | None = None
    eot_reference: str = "clean"
    start: str | None = None
    tile: int = 512
    overlap: int = 64

    def __post_init__(self):
        if self.intensity not in PRESETS:
            raise ValueError(f"unknown intensity {self.intensity!r}; choose from {', '.join(PRESETS)}")
        p = PRESETS[self.intensity]
        fill = {
            "eps_levels": p.eps_levels if self.eps_levels is None else float(self.eps_levels),
            "steps": _whole(p.steps if self.steps is None else self.steps, "steps", MAX_STEPS),
            "seed": _whole(self.seed, "seed", 2**63 - 1),
            "objective": self.objective or p.objective,
            "robust": p.robust if self.robust is None else self.robust,
            "budget": p.budget if self.budget is None else self.budget,  # '' is refused, not the preset's
            "budget_floor": p.budget_floor if self.budget_floor is None else float(self.budget_floor),
            "budget_cap": p.budget_cap if self.budget_cap is None else float(self.budget_cap),
            "transform_order": self.transform_order or p.transform_order,
            "start": self.start or p.start,
            "alpha_levels": p.alpha_levels if self.alpha_levels is None else float(self.alpha_levels),
        }
        if self.rms_levels is None and self.budget is None:  # the preset's energy bound goes with its budget
            fill["rms_levels"] = p.rms_levels
        for k, v in fill.items():
            object.__setattr__(self, k, v)
        if not 0 <= self.eps_levels <= MAX_EPS_LEVELS:
            raise ValueError(f"eps must be between 0 and {MAX_EPS_LEVELS} (in 1/255 units), not {self.eps_levels:g}")
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, not {self.budget!r}")
        if not 0 <= self.budget_floor <= 1:
            raise ValueError(f"budget floor must lie in [0, 1], not {self.budget_floor}")
        if self.budget_cap < 1 or self.budget_power <= 0:
            raise ValueError(f"budget cap must be ≥ 1 and power > 0, not {self.budget_cap} and {self.budget_power}")
        if self.rms_levels is not None and not 0 <= self.rms_levels <= MAX_EPS_LEVELS:
            raise ValueError(f"rms must be between 0 and {MAX_EPS_LEVELS} (in 1/255 units), not {self.rms_levels:g}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.transform_order not in ("random", "cycle"):
            raise ValueError(f"transform order must be random or cycle, not {self.transform_order!r}")
        if self.eot_reference not in REFERENCES:
            raise ValueError(f"EOT reference must be {' or '.join(REFERENCES)}, not {self.eot_reference!r}")
        named = ("random", "zero", "learned", generator.NETWORK)
        if self.start not in named and not Path(self.start).is_file():
            raise ValueError("start must be random, zero, learned, network, a pattern PNG or a generator's "
                             f".safetensors, not {self.start!r}")
        if self.start not in named and generator.is_generator_file(self.start):
            generator.Generator.load(self.start)  # a damaged or foreign file: one line, before any work
        elif self.start not in named:
            open_pattern(self.start).close()  # its size, before any work (ValueError if too large)
        if self.start in ("learned", generator.NETWORK):
            for name, _ in parse_ensemble(self.encoder):  # an unknown encoder is said as such, not as no start
                ENCODERS[name]
        if self.start == generator.NETWORK:  # known for the pair, present and undamaged (sha256): before any work
            generator.verify_shipped(self.encoder, self.objective, self.models_dir)
        if self.start == "learned" and not shipped_path(self.encoder, self.objective).exists():
            raise ValueError(f"no learned start for encoder {self.encoder!r} with objective {self.objective!r} "
                             f"(shipped: {', '.join(available()) or 'none'}); use start random, or train one with "
                             "benchmarks/amortised/train.py")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), not {self.momentum}")
        if self.fill_smooth < 0 or (self.fill_smooth and self.fill_smooth % 2 == 0):
            raise ValueError(f"fill_smooth must be 0 or an odd kernel size in px, not {self.fill_smooth}")
        if not 0 < self.skip_grad <= 1:
            raise ValueError(f"skip gradient must lie in (0, 1], not {self.skip_grad}")
        if not 0 <= self.ghost < 1:
            raise ValueError(f"ghost erosion range must lie in [0, 1), not {self.ghost}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"tile overlap must be at least 0 and smaller than the tile ({self.tile}), not {self.overlap}")

    @property
    def eps(self) -> float:
        """The L∞ bound as a fraction of the [0, 1] range, what :class:`~glazeish.attack.PGD` takes."""
        return self.eps_levels / 255

    @property
    def rms(self) -> float | None:
        """The energy bound as a fraction of the [0, 1] range, or None."""
        return None if self.rms_levels is None else self.rms_levels / 255

    def eps_map(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor | None:
        """The per-pixel L∞ bound of this config's ``budget`` for ``x`` (``B×3×H×W`` in [0, 1]) as a
        ``B×1×H×W`` map in [0, 1] units, or None for a flat budget on an opaque image (``eps`` everywhere).
        ``alpha`` (``B×1×H×W`` in [0, 1]): no budget where it is 0. The one budget of a config: the
        protector cloaks and the learned start trains under it."""
        if self.budget == "perceptual":
            return budget_map(x, self.eps, floor=self.budget_floor, alpha=alpha)
        if self.budget == "masked":
            return masked_budget(x, self.eps / self.budget_cap, cap=self.budget_cap, floor=self.budget_floor,
                                 power=self.budget_power, alpha=alpha)
        return None if alpha is None else (alpha > 0).float() * self.eps

    def replace(self, **changes) -> "ProtectConfig":
        return dataclasses.replace(self, **changes)

    def resolved(self) -> "ProtectConfig":
        """The same config with ``device`` and ``precision`` decided (from the hardware, never a timing) and
        paths made absolute: what runs, and what a fingerprint must name."""
        device = resolve_device(self.device)
        return self.replace(
            device=str(device), precision=resolve_precision(self.precision, device),
            target=str(Path(self.target).resolve()) if self.target else None,
            models_dir=str(Path(self.models_dir).resolve()) if self.models_dir else None,
        )

    def fingerprint(self) -> dict:
        """Every field that decides the cloak, resolved (the target pattern and a start pattern by their bytes'
        sha256: a ``learned`` or ``network`` start is the file shipped with this version)."""
        fp = fingerprint_of(self.resolved())
        if fp.get("target"):
            fp["target"] = _file_digest(fp["target"])
        if fp.get("start") == "learned":
            fp["start"] = "learned:" + _file_digest(shipped_path(self.encoder, self.objective))
        elif fp.get("start") == generator.NETWORK:
            fp["start"] = "network:sha256:" + generator.SHIPPED[f"{self.encoder}-{self.objective}"]  # (checked)
        elif fp.get("start") not in ("random", "zero"):
            fp["start"] = _file_digest(fp["start"])
        return fp

    def key(self) -> str:
        """A short stable hash of :meth:`fingerprint` (benchmark cache folders)."""
        return digest(self.fingerprint())[:12]
