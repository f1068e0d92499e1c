"""The figures of a cloak, as typed results (like diffusers' output classes): what :func:`~glazeish.evaluation.assess`
returns and what the CLI, ``check``, the HTML report, the web UI and the benchmark render.

Conventions: PSNRs in dB (``inf`` for identical images; a lower *view* PSNR = a bigger change in what a model
reproduces), budgets in 8-bit levels (``eps_levels = 4`` means ±4/255), latent displacement as the relative L2
distance ``‖E(v) − E(r)‖ / ‖E(r)‖``. :meth:`Figures.to_dict` is the stable JSON form (``--json``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

#: PSNR is infinite for identical images; differences of PSNRs are taken with this cap so that an unchanged
#: image reads as "no effect" (0 dB) rather than inf − inf
PSNR_CAP = 100.0
#: the baselines every cloak is compared with: ``noise`` (Gaussian noise with the cloak's own MSE, i.e. the same
#: PSNR, clipped and quantised like the cloak: the headline) and ``uniform`` (uniform noise in ±eps, the same L∞)
BASELINES = ("noise", "uniform")


def capped(p: float | None) -> float:
    """A PSNR with ``inf`` (identical) and NaN read as :data:`PSNR_CAP`."""
    if p is None or math.isnan(p):
        return PSNR_CAP
    return min(p, PSNR_CAP)


@dataclass(frozen=True)
class VersionFigures:
    """How one version ``v`` of an image (the cloak, or a baseline) differs from a reference ``r``.

    Attributes:
        psnr, ssim: ``v`` against ``r`` over the visible pixels (alpha > 0); ``flip`` the mean ꟻLIP error
            (0 = indistinguishable when flipping between the two; None where not computed).
        latent: per encoder, ``‖E(v) − E(r)‖ / ‖E(r)‖``.
        view_psnr: PSNR of the mimic's view ``D(E(v))`` against ``D(E(r))`` (None without a decoder).
        copy_psnr: PSNR of ``D(E(v))`` against the artwork itself (what a model trained on ``v`` reproduces,
            judged against the art).
        view_psnr_detinted: ``view_psnr`` once the per-channel mean and spread of ``D(E(v))`` are moved to
            ``D(E(r))``'s (per measured tile): the part of the view's change that is more than a tint.
        view_flip: the mean ꟻLIP error of ``D(E(v))`` against ``D(E(r))`` (how visible the copy's change is to a
            person, masking by texture included; None where not computed, as ``flip``).
        grain: RMS (1/255 levels) of the high-pass of ``v − r`` over the pixels on flat fills of ``r`` (5×5
            neighbourhood within 3 levels): where grain shows. None where ``r`` has no flat fill.
        extra: further metrics for the benchmark (``ms_ssim``, ``view_ssim``, ``style``, ``decoy_corr``, ...).
    """

    psnr: float
    ssim: float
    latent: dict[str, float]
    view_psnr: float | None = None
    copy_psnr: float | None = None
    flip: float | None = None
    view_psnr_detinted: float | None = None
    grain: float | None = None
    view_flip: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Every figure by its flat name (``psnr``, ``latent:taef2``, ``view_psnr``, ``ms_ssim``, ...); None-valued
        figures (not computed) are left out. The benchmark's CSV uses these names."""
        out = {"psnr": self.psnr, "ssim": self.ssim, "flip": self.flip, "grain": self.grain,
               **{f"latent:{k}": v for k, v in self.latent.items()}, "view_psnr": self.view_psnr,
               "view_psnr_detinted": self.view_psnr_detinted, "view_flip": self.view_flip,
               "copy_psnr": self.copy_psnr, **self.extra}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Comparison:
    """A cloak and its baselines, each measured against the same reference (the original, or the original
    after the same purification). ``clean_copy_psnr``: PSNR of the reference's own view ``D(E(r))`` against
    the artwork (the autoencoder's own error). ``uniform`` is None where it was not measured (the quick
    figures, :func:`~glazeish.evaluation.assess`'s ``figures="quick"``)."""

    cloak: VersionFigures
    noise: VersionFigures
    uniform: VersionFigures | None
    clean_copy_psnr: float | None = None

    def baseline(self, which: str = "noise") -> VersionFigures:
        """The figures of one baseline (ValueError for an unknown name, or one that was not measured)."""
        if which not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, not {which!r}")
        if getattr(self, which) is None:
            raise ValueError(f"the {which} baseline was not measured (quick figures)")
        return getattr(self, which)

    def measured(self, which: str) -> bool:
        """Whether the baseline ``which`` was measured (``noise`` always is; ``uniform`` not in quick figures)."""
        return which in BASELINES and getattr(self, which) is not None

    def view_gap(self, which: str = "noise", detinted: bool = False) -> float | None:
        """How many dB further the cloak moved the mimic's view than the baseline did (> 0: further); with
        ``detinted``, both views with their colour statistics matched first (the change beyond a tint). None
        without a mimic's view, or where the baseline was not measured."""
        attr = "view_psnr_detinted" if detinted else "view_psnr"
        if getattr(self.cloak, attr) is None or not self.measured(which):
            return None
        return capped(getattr(self.baseline(which), attr)) - capped(getattr(self.cloak, attr))

    def latent_gain(self, encoder: str, which: str = "noise") -> float:
        """The cloak's latent displacement minus the baseline's (> 0: it moved the latent further)."""
        return self.cloak.latent[encoder] - self.baseline(which).latent[encoder]

    def latent_ratio(self, encoder: str, which: str = "noise") -> float:
        """The cloak's latent displacement as a multiple of the baseline's."""
        c, b = self.cloak.latent[encoder], self.baseline(which).latent[encoder]
        if b > 1e-12:
            return c / b
        return 1.0 if c <= 1e-12 else math.inf


def retained(after: float, before: float, least: float = 0.0) -> float | None:
    """The share of an advantage left after a purification: ``after / before``, or None where there was no
    advantage to begin with (``before`` below ``least``: a ratio of two chance-level differences means nothing).
    The one retention definition: every "kept" / "retained" / "remains" figure in glazeish is this."""
    if not math.isfinite(before) or before < max(least, 1e-9) or math.isnan(after):
        return None
    return after / before


@dataclass(frozen=True)
class Purified:
    """The figures after one purification ``p`` (a JPEG re-save, a resize, ...): ``comparison`` measures
    ``p(cloak)`` and ``p(baselines)`` against ``p(original)`` (so the purification's own change is not counted
    as the cloak's); ``cost`` is ``p(original)`` against the original (what the purification does by itself);
    ``retained`` the share of the cloak's advantage over the headline baseline that is left (None where there
    was none to begin with)."""

    name: str
    description: str
    comparison: Comparison
    cost: VersionFigures
    retained: float | None


@dataclass(frozen=True)
class Summary:
    """The headline numbers the verdicts are made of (see :class:`Figures`)."""

    view_psnr: float | None  # the cloak's mimic view vs the original's, dB (absolute damage; lower = more)
    view_gap: float | None  # dB further than same-PSNR noise moved it
    view_gap_uniform: float | None  # dB further than same-L∞ uniform noise moved it (None: not measured)
    view_psnr_detinted: float | None  # view_psnr once the view's colour statistics match the original view's
    view_gap_detinted: float | None  # the gap to same-PSNR noise, both views de-tinted
    view_flip: float | None  # ꟻLIP of the cloak's mimic view against the original's (None: not computed)
    grain: float | None  # the cloak's high-pass RMS on flat fills, 1/255 levels (None: no flat fill)
    copy_psnr: float | None  # what a model trained on the cloak reproduces vs the artwork, dB
    clean_copy_psnr: float | None  # the same for the original
    latent_ratio: dict[str, float]  # per encoder, × same-PSNR noise's displacement
    latent_ratio_uniform: dict[str, float]  # empty where the uniform baseline was not measured (quick)
    retained: dict[str, float | None]  # per purification, share of the advantage left

    @property
    def copy_change(self) -> float | None:
        """dB by which the model's copy of the artwork got worse (> 0: the cloak made it worse)."""
        if self.copy_psnr is None or self.clean_copy_psnr is None:
            return None
        return capped(self.clean_copy_psnr) - capped(self.copy_psnr)


@dataclass
class Figures:
    """Everything measured for one (original, cloaked) pair. Rendered by :mod:`glazeish.evaluation.verdicts`
    (words), :mod:`glazeish.report` (HTML), the CLI and the web UI; flattened by the benchmark.

    Attributes:
        width, height: pixels; ``visible``: share of pixels with alpha > 0 (1 for opaque images).
        eps_levels: the uniform baseline's budget in 1/255 (the cloak's own L∞ when ``eps_inferred``).
        linf: the cloak's largest change in 8-bit levels; ``seed``: the baselines' seed.
        mimic_model: the autoencoder whose ``D(E(·))`` is the mimic's view (None without a decoder).
        encoders: the encoders whose latents were measured, in order.
        before: cloak and baselines against the original; ``purified``: per purification name.
        warnings: plain sentences about the pair (identical images, budget overshoot, ...).
        measured: share of the pixels whose model figures (latents, mimic's views) were measured: 1, or less
            when the evaluator sampled tiles of a large image (the pixel figures always cover every pixel).
    """

    width: int
    height: int
    eps_levels: float
    eps_inferred: bool
    linf: int
    seed: int
    mimic_model: str | None
    encoders: list[str]
    before: Comparison
    purified: dict[str, Purified] = field(default_factory=dict)
    visible: float = 1.0
    warnings: list[str] = field(default_factory=list)
    measured: float = 1.0

    @property
    def summary(self) -> Summary:
        b = self.before
        return Summary(
            view_psnr=b.cloak.view_psnr,
            view_gap=b.view_gap("noise"),
            view_gap_uniform=b.view_gap("uniform"),
            view_psnr_detinted=b.cloak.view_psnr_detinted,
            view_gap_detinted=b.view_gap("noise", detinted=True),
            view_flip=b.cloak.view_flip,
            grain=b.cloak.grain,
            copy_psnr=b.cloak.copy_psnr,
            clean_copy_psnr=b.clean_copy_psnr,
            latent_ratio={e: b.latent_ratio(e, "noise") for e in self.encoders},
            latent_ratio_uniform={e: b.latent_ratio(e, "uniform") for e in self.encoders} if b.measured("uniform")
            else {},
            retained={name: p.retained for name, p in self.purified.items()},
        )

    @property
    def identical(self) -> bool:
        return self.linf == 0

    def to_dict(self) -> dict:
        """Plain JSON-able data (``inf``/NaN become None): the ``--json`` form of these figures."""
        d = asdict(self)
        d["summary"] = {**asdict(self.summary), "copy_change": self.summary.copy_change}
        return jsonable(d)


def jsonable(obj):
    """``obj`` with non-finite floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
