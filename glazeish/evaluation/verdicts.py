"""The only table of verdict thresholds and words: what the figures of a cloak mean in plain language.

Every surface that speaks to a person (the CLI's summary line, ``check``, the HTML report, the web UI, the
benchmark's "in plain words") takes its words from here, so a threshold is changed in one place.

* **Visibility** — PSNR of the cloak against the original over the visible pixels.
* **Protection** — judged on the *absolute* change of the mimic's view (how far ``D(E(cloak))`` is from
  ``D(E(original))``, in dB) *and* on the gap to noise of the same PSNR: a cloak is never called strong when
  the two views look alike, however large its ratio over noise.
* **Survival** — the share of the cloak's advantage over same-PSNR noise that is left after a purification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .figures import Figures, Summary, capped


@dataclass(frozen=True)
class Level:
    """One rung of a scale: applies from ``threshold`` (inclusive) in the scale's direction."""

    threshold: float
    key: str  # a short label (the web UI's badge, the benchmark's tables)
    words: str  # what it means, in a sentence


def _at_least(value: float, levels: tuple[Level, ...]) -> Level:
    """The first level whose threshold ``value`` reaches (levels in decreasing threshold order)."""
    return next((lv for lv in levels if value >= lv.threshold), levels[-1])


def _at_most(value: float, levels: tuple[Level, ...]) -> Level:
    """The first level whose threshold ``value`` does not exceed (levels in increasing threshold order)."""
    return next((lv for lv in levels if value <= lv.threshold), levels[-1])


# Visibility, by PSNR (dB) over the visible pixels. The presets land at ~40 (low), ~38.7 (default, fast) and
# ~37.6 (high); below ~32 dB grain shows on flat colour to most viewers.
VISIBILITY: tuple[Level, ...] = (
    Level(42.0, "invisible", "practically invisible"),
    Level(36.0, "very hard to see", "very hard to see"),
    Level(32.0, "faint grain", "faint grain may show on close inspection, mostly on flat colour"),
    Level(28.0, "visible", "visible on close inspection"),
    Level(-math.inf, "clearly visible", "clearly visible"),
)

# Grain on flat fills: the high-pass RMS of the change where the original is flat (1/255 levels). At 1:1 a
# crosshatch showed in a flat navy sky at ~1.4 levels; below ~0.5 nothing shows.
GRAIN: tuple[Level, ...] = (
    Level(0.5, "none", "no grain on flat colour"),
    Level(1.0, "faint", "a faint grain on flat colour, seen zoomed in"),
    Level(math.inf, "shows", "a grain that shows on flat colour at 1:1"),
)

# Protection, by how far the mimic's view of the cloak is from the mimic's view of the original (dB; lower =
# further), strongest first. Around 28-30 dB two views look the same side by side, even zoomed in; around 20 dB
# the copy is plainly different (colours washed out, a texture over it). "tint" is never reached by the dB scale
# (its threshold is NaN): it is said where most of the change is the copy's overall colour (see :func:`protection`).
PROTECTION: tuple[Level, ...] = (
    Level(20.0, "strong", "reproduces something clearly different — the change is plain to see"),
    Level(25.0, "visible", "reproduces something visibly different"),
    Level(math.nan, "tint", "reproduces the same picture in different colours — a tint or haze over it that colour "
                            "correction would mostly undo"),
    Level(30.0, "subtle", "reproduces something only subtly different (hard to see side by side)"),
    Level(math.inf, "faint", "reproduces practically the same picture (the change is too small to see)"),
)
STRONG, VISIBLE, TINT, SUBTLE, FAINT = PROTECTION
#: below this gap (dB) to same-PSNR noise, the difference is within what two noise draws differ by
NO_BETTER_DB = 0.5
#: below this gap (dB) a cloak is at most "subtle", whatever the absolute change (noise would do nearly as much)
CLEAR_GAP_DB = 3.0
#: the share of the view's change (its squared error) that matching the copy's colour statistics removes, from
#: which the change is called mostly a colour shift: on the shared paintings at default, the copies whose change
#: was more than half colour looked like the same painting under a haze at 1:1 (benchmarks/verdicts/: 00008
#: 88 %, 00013 69 %), those under a fifth differed in brushwork detail
TINT_SHARE = 0.5
#: below this mean ꟻLIP between the two views, the copy's change is at most "subtle", whatever its dB: texture
#: hides it (benchmarks/verdicts/: painting 00004 at 24.7 dB looked the same side by side at 1:1)
FLIP_VISIBLE = 0.12
#: encoders without a decoder: the latent must move this many times as far as under same-PSNR noise
NO_BETTER_RATIO = 1.2

# Survival after a purification: the share of the cloak's advantage over noise that is left.
SURVIVAL: tuple[Level, ...] = (
    Level(0.75, "most", "most of it survives"),
    Level(0.40, "weakened", "weakened, but still there"),
    Level(0.10, "mostly lost", "mostly lost"),
    Level(-math.inf, "gone", "essentially gone"),
)

#: plain names of purifications (others use their registered description)
PURIFICATION_WORDS = {
    "jpeg95": "a JPEG re-save (q95)",
    "jpeg75": "a platform's re-compression (JPEG q75)",  # what most sites do to an upload
    "jpeg50": "a JPEG re-save (q50)",
    "webp": "a WebP re-save",
    "resize0.5": "downscaling to 50%",
    "resize0.75": "downscaling to 75%",
}


def visibility(psnr: float, grain: float | None = None) -> Level:
    """The visibility level from the PSNR, and never better than "faint grain" where grain shows on flat fills."""
    level = _at_least(psnr, VISIBILITY)
    if grain is not None and grain > GRAIN[1].threshold and VISIBILITY.index(level) < 2:
        level = VISIBILITY[2]
    return level


def grain(levels: float) -> Level:
    return _at_most(levels, GRAIN)


def _weaker(a: Level, b: Level) -> Level:
    return a if PROTECTION.index(a) > PROTECTION.index(b) else b


def _scale(view_psnr: float) -> Level:
    return _at_most(capped(view_psnr), PROTECTION)


def _seen(view_flip: float | None) -> bool:
    """Whether a person sees the copy's change (unknown without the views' ꟻLIP: assumed so)."""
    return view_flip is None or view_flip >= FLIP_VISIBLE


def _beyond_tint(detinted: float, view_flip: float | None) -> Level:
    """The level of what is left of the change once the copy's colours are matched to the original view's."""
    level = _scale(detinted)
    return level if _seen(view_flip) else _weaker(level, SUBTLE)


def _mostly_colour(view_psnr: float | None, detinted: float | None) -> float | None:
    """The change's colour share (:func:`tint_share`) when it reaches :data:`TINT_SHARE`, else None."""
    share = tint_share(view_psnr, detinted)
    return share if share is not None and share >= TINT_SHARE else None


def protection(view_psnr: float | None, gap: float | None, *, detinted: float | None = None,
               view_flip: float | None = None) -> Level | None:
    """The protection level of a copy whose view is ``view_psnr`` dB from the original's and ``gap`` dB further
    than same-PSNR noise's; None when the cloak is no better than noise (or there is no mimic's view).

    With ``detinted`` (the view's dB once its colour statistics match the original view's), a change that is
    mostly colour is called "tint", and otherwise a word is only as strong as what is left beyond the colours;
    a "strong" change stays strong (a colour change that large is plain to see: a navy sky turned grey). With
    ``view_flip`` (ꟻLIP between the views), a change a person does not see is at most "subtle", and not a tint.
    """
    if view_psnr is None or gap is None or gap < NO_BETTER_DB:
        return None
    level = _scale(view_psnr) if _seen(view_flip) else _weaker(_scale(view_psnr), SUBTLE)
    beyond = level if detinted is None else _beyond_tint(detinted, view_flip)
    if PROTECTION.index(beyond) > PROTECTION.index(level) and level is not STRONG:
        level = TINT if _seen(view_flip) and _mostly_colour(view_psnr, detinted) is not None else beyond
    if gap < CLEAR_GAP_DB:
        level = _weaker(level, SUBTLE)  # noise does nearly as much: not more than subtle
    return level


def protection_of(s: Summary) -> Level | None:
    """:func:`protection` of a :class:`Summary`'s figures."""
    return protection(s.view_psnr, s.view_gap, detinted=s.view_psnr_detinted, view_flip=s.view_flip)


def tint_share(view_psnr: float | None, detinted_psnr: float | None) -> float | None:
    """The share of the view's squared error that matching its per-channel colour statistics removes (0-1), or
    None without both figures or without a change."""
    if view_psnr is None or detinted_psnr is None or math.isinf(view_psnr):
        return None
    return max(0.0, 1 - 10 ** (-(capped(detinted_psnr) - view_psnr) / 10))


def colour_shift(s: Summary) -> float | None:
    """The view change's colour share (:func:`tint_share`) when it reaches :data:`TINT_SHARE`, else None."""
    return _mostly_colour(s.view_psnr, s.view_psnr_detinted)


def survival(retained: float) -> Level:
    return _at_least(retained, SURVIVAL)


@dataclass(frozen=True)
class Verdict:
    """Words for one cloak: the level keys and the sentences, first visibility then protection."""

    visibility: str
    protection: str  # a :data:`PROTECTION` key, "none" (no better than noise) or "identical"
    survival: dict[str, str | None]
    sentences: list[str]

    def to_dict(self) -> dict:
        """The ``--json`` form: the level keys (``visibility``, ``protection``, ``survival`` per purification)
        and the sentences a person reads."""
        return {"visibility": self.visibility, "protection": self.protection, "survival": dict(self.survival),
                "sentences": list(self.sentences)}


def _db(v: float) -> str:
    return "∞ dB" if math.isinf(v) else f"{v:.1f} dB"


def _protection_sentences(f: Figures, same: str) -> tuple[str, list[str]]:
    """The protection key and sentences for a pair with a mimic's view (``same``: how the noise is named)."""
    s = f.summary
    level = protection_of(s)
    view = f"{f.mimic_model} mimic view {_db(s.view_psnr)} from the original's"
    if level is None:
        gap = s.view_gap or 0.0
        how = f"only {gap:.1f} dB further than" if gap >= 0 else f"{-gap:.1f} dB less far than"
        return "none", [f"Protection: no better than random {same} — what a model trained on this image reproduces "
                        f"moves {how} with noise ({view})"]
    flip = "" if s.view_flip is None else f", ꟻLIP {s.view_flip:.3f} between the views"
    tint = "" if s.view_psnr_detinted is None else \
        f"; {_db(s.view_psnr_detinted)} once its colours are matched to the original view's"
    copy = "" if s.copy_change is None else \
        f"; its copy of the artwork {_db(s.clean_copy_psnr)} → {_db(s.copy_psnr)} from the art itself"
    out = [f"Protection: a model trained on this image {level.words} ({view}{flip}, {s.view_gap:.1f} dB further "
           f"than with {same}{tint}{copy})"]
    share = colour_shift(s)
    if share is not None:
        beyond = _beyond_tint(s.view_psnr_detinted, s.view_flip)
        out.append(f"Colour shift: {share * 100:.0f}% of that change is the copy's overall colour (a tint or "
                   f"haze that colour correction would undo); beyond it, the copy {beyond.words}")
    return level.key, out


def judge(f: Figures) -> Verdict:
    """Plain-language verdict on :class:`Figures` (thresholds: the module's tables)."""
    out: list[str] = []
    if f.identical:
        out.append("Visibility: identical to the original (no pixel changed)")
        out.append("Protection: none — the two images are identical, so there is no cloak to assess")
        out.extend(f"Warning: {w}" for w in f.warnings if "identical" not in w)
        return Verdict("identical", "identical", {p: None for p in f.purified}, out)
    b, s = f.before, f.summary
    vis = visibility(b.cloak.psnr, s.grain)
    where = " over its visible pixels" if f.visible < 1 else ""
    flip = f", ꟻLIP {b.cloak.flip:.3f}" if b.cloak.flip is not None else ""
    fills = "" if s.grain is None else f"; {grain(s.grain).words} ({s.grain:.1f}/255 RMS on flat fills)"
    out.append(f"Visibility: {vis.words} (PSNR {_db(b.cloak.psnr)}{where}{flip}, changes of at most "
               f"{f.linf:g}/255){fills}")

    same = f"noise of the same PSNR ({_db(b.noise.psnr)})"
    prot_key = "none"
    if f.mimic_model is not None:
        prot_key, said = _protection_sentences(f, same)
        out.extend(said)
    for i, name in enumerate(f.encoders):
        if name == f.mimic_model:
            continue
        ratio = s.latent_ratio[name]
        headline = f.mimic_model is None and i == 0
        label = "Protection (no decoder, latent only)" if headline else f"Encoder {name}"
        if ratio < NO_BETTER_RATIO:
            out.append(f"{label}: the {name} latent moved no further than with {same} ({ratio:.2f}×)")
        else:
            if headline:
                prot_key = "latent"
            out.append(f"{label}: the {name} latent moved {ratio:.1f}× as far as with {same}")

    surv: dict[str, str | None] = {}
    for name, p in f.purified.items():
        what = PURIFICATION_WORDS.get(name) or p.description or name
        if p.retained is None:
            surv[name] = None
            out.append(f"After {what}: nothing to keep — the cloak was no better than noise to begin with")
        else:
            lv = survival(p.retained)
            surv[name] = lv.key
            out.append(f"After {what}: about {max(0.0, p.retained) * 100:.0f}% of the protection remains ({lv.words})")
    if f.measured < 1:
        out.append(f"Measured on: {f.measured * 100:.0f}% of the picture for what the model sees (tiles spread over "
                   "it, to save time on a large image); the visibility on all of it")
    out.extend(f"Warning: {w}" for w in f.warnings)
    return Verdict(vis.key, prot_key, surv, out)


def one_line(name: str, f: Figures) -> str:
    """The CLI's summary of one cloaked file: visibility, absolute view change, gap to same-PSNR noise."""
    s = f.summary
    parts = [f"PSNR {f.before.cloak.psnr:.1f} dB ({visibility(f.before.cloak.psnr, s.grain).key})"]
    if s.grain is not None:
        parts.append(f"grain on flat fills {s.grain:.1f}/255")
    if f.mimic_model is not None and s.view_psnr is not None:
        level = protection_of(s)
        parts.append(f"mimic view {_db(s.view_psnr)} from the original's, {s.view_gap:+.1f} dB vs same-PSNR noise "
                     f"({level.key if level else 'no better than noise'})")
        if s.view_psnr_detinted is not None:
            share = colour_shift(s)
            parts.append(f"{_db(s.view_psnr_detinted)} beyond a tint"
                         + ("" if share is None else f" ({share * 100:.0f}% of the change is colour)"))
    for enc in f.encoders:
        parts.append(f"{enc} latent {s.latent_ratio[enc]:.1f}x noise")
    for p, r in s.retained.items():
        parts.append(f"after {p}: {'–' if r is None else f'{max(0.0, r) * 100:.0f}% left'}")
    if f.measured < 1:
        parts.append(f"model figures on {f.measured * 100:.0f}% of the image")
    return f"{name}: " + ", ".join(parts)
