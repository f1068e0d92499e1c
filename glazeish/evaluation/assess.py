"""``assess``: every figure of one (original, cloaked) pair, next to its noise baselines, before and after each
purification — the single entry point that the CLI, ``check``, the HTML report, the web UI, Ray workers and
the benchmark call.

The cloak's advantage after a purification ``p`` is measured against the equally purified original (a mimic
who downloads a re-saved image trains on ``p(cloak)``; without the cloak it would have been ``p(original)``):
the view of ``p(cloak)`` vs ``p(original)``'s, next to ``p(noise)`` vs ``p(original)``'s, and *retained* is that
advantage divided by the advantage without ``p`` — the one retention definition of the project.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..device import release_freed_memory
from ..encoders import Ensemble
from ..imageio import DEFAULT_MAX_PIXELS, ImageError, read_image, resize_rgb, resized, to_tensor
from ..metrics import psnr_of_mse
from .baselines import baselines, mse_levels
from .figures import Comparison, Figures, Purified, retained
from .measure import Evaluator, Request
from .verdicts import NO_BETTER_DB, NO_BETTER_RATIO

#: a budget read off the cloak above this (1/255) suggests the pair differs by more than a cloak (cloaking
#: tools use 2-16); the figures then carry a warning
LARGE_CHANGE = 32
#: two images further apart than this (PSNR, dB) are not a picture and its cloak (another picture, a mirror,
#: a crop resized to fit): :func:`load_pair` refuses them
MIN_PAIR_PSNR = 20.0
ASPECT_TOLERANCE = 0.01  # a cloak resized by another tool may differ from the original by this much in aspect
#: what :func:`assess` measures (its ``figures``): ``full`` — the cloak, same-PSNR noise and same-L∞ uniform noise,
#: before and after each purification, with the ꟻLIP of the ``flip`` versions and of their views; ``quick`` —
#: without the uniform baseline, and with the ꟻLIP of the views only. Quick keeps every figure the verdict words
#: are made of, bit for bit (the words are the same by construction), in 6 passes through the models instead of 8
#: with one purification (benchmarks/figures_cost/RESULTS.md)
FIGURE_MODES = ("full", "quick")


def linf_levels(original: np.ndarray, cloaked: np.ndarray, alpha: np.ndarray | None = None) -> int:
    """Largest change of any colour value over the visible pixels, in 8-bit levels (exact, on the uint8 pixels)."""
    d = np.abs(cloaked.astype(np.int16) - original.astype(np.int16))
    if alpha is not None:
        d = d[np.asarray(alpha) > 0]
    return int(d.max(initial=0))


def build_purifications(purifications, model=None, seed: int = 0, **context) -> list:
    """Purification objects from names (``"jpeg75,resize0.5"``), built ones, or a mix (None / ``()``: none)."""
    from ..purify import Purification, make_purifications

    if not purifications:
        return []
    if isinstance(purifications, (str, Purification)):
        purifications = [purifications]
    out = []
    for p in purifications:
        out.extend([p] if isinstance(p, Purification) else make_purifications(p, model=model, seed=seed, **context))
    return out


def _check_pair(original: np.ndarray, cloaked: np.ndarray) -> None:
    for name, a in (("original", original), ("cloaked", cloaked)):
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"{name} must be an H×W×3 uint8 array, got {a.dtype} {a.shape}")
    if original.shape != cloaked.shape:
        raise ValueError(
            f"images differ in size: original {original.shape[1]}x{original.shape[0]}, "
            f"cloaked {cloaked.shape[1]}x{cloaked.shape[0]} (resize one first, or use load_pair)"
        )


def _pair_warnings(linf: int, budget: float, inferred: bool) -> list[str]:
    """Plain sentences about a pair whose figures would mislead: identical images, a cloak over its stated
    budget, a difference larger than a cloak makes."""
    warnings: list[str] = []
    if linf == 0:
        warnings.append("the two images are identical: there is no cloak to assess")
    elif not inferred and linf > math.floor(budget + 1e-6):
        warnings.append(f"the cloak changes pixels by up to {linf:g}/255, more than the stated budget {budget:g}/255")
    if inferred and linf > LARGE_CHANGE:
        warnings.append(f"the images differ by up to {linf:g}/255: more than a cloak usually does (resized, re-encoded "
                        "or edited?); the uniform baseline uses that budget, which makes it strong")
    return warnings


def _advantage(c: Comparison, headline: str | None, first: str) -> tuple[float, float]:
    """(the cloak's advantage over same-PSNR noise, the least that counts as one): the view gap in dB, or,
    without a decoder, the first encoder's latent gain."""
    if headline is not None:
        return c.view_gap("noise"), NO_BETTER_DB
    return c.latent_gain(first, "noise"), (NO_BETTER_RATIO - 1) * c.noise.latent[first]


@torch.no_grad()
def assess(
    original: np.ndarray,
    cloaked: np.ndarray,
    models: Evaluator | Ensemble,
    *,
    alpha: np.ndarray | None = None,
    eps_levels: float | None = None,
    seed: int = 0,
    purifications: Sequence | str | None = ("jpeg75",),
    flip: Sequence[str] = ("cloak",),
    cache: dict | None = None,
    figures: str = "full",
) -> Figures:
    """All the "did it work?" figures for one pair (see :class:`~glazeish.evaluation.figures.Figures`).

    Args:
        original, cloaked: ``H×W×3`` uint8 of the same size (ValueError otherwise).
        models: an :class:`Evaluator`, or an :class:`~glazeish.encoders.Ensemble` to build one from; the first
            model with a decoder (``taef2``) gives the mimic's view.
        alpha: ``H×W`` uint8 opacity; visibility and the baselines count only visible pixels (alpha > 0).
        eps_levels: the uniform baseline's L∞ budget in 1/255; None takes the cloak's own L∞ (how a cloak made
            by another tool, whose budget is unknown, is compared).
        seed: the baselines' seed (``protect --seed`` gives the same baselines as ``protect --json``).
        purifications: names (``"jpeg75,resize0.5"``) or built :class:`~glazeish.purify.Purification` objects,
            each applied to original, cloak and baselines alike.
        flip: the versions (``cloak``, ``noise``, ``uniform``) whose ꟻLIP error is computed (~0.4 s per 512²
            each on a CPU); ``()`` for none.
        cache: a dict kept between calls on the same original (the benchmark's protections): what each
            purification does to the original is then measured once, and the passes of the original and of its
            purified copies are made once for all the calls (the same bits either way).
        figures: ``full`` or ``quick`` (:data:`FIGURE_MODES`): quick leaves out the same-L∞ uniform baseline
            (``Comparison.uniform`` is None) and the pixels' ꟻLIP, and keeps the views' ꟻLIP of the ``flip``
            versions (the protection words read it); every figure it gives is the same bits as in full.
    """
    if figures not in FIGURE_MODES:
        raise ValueError(f"figures must be one of {', '.join(FIGURE_MODES)}, not {figures!r}")
    original, cloaked = np.asarray(original), np.asarray(cloaked)
    _check_pair(original, cloaked)
    ev = models if isinstance(models, Evaluator) else Evaluator(models)
    purifiers = build_purifications(purifications, model=ev.mimic, seed=seed)  # a bad name fails before the work
    linf = linf_levels(original, cloaked, alpha)
    inferred = eps_levels is None
    budget = float(linf) if inferred else float(eps_levels)
    if budget < 0:
        raise ValueError(f"eps must be ≥ 0 (in 1/255 units), not {budget}")

    x, versions = _versions(original, cloaked, budget, seed, alpha, figures == "quick", ev.device)
    memo = None if cache is None else cache.setdefault("codes", {})  # the clean passes, for the next call
    cache = {} if cache is None else cache
    before, after = _measure(ev, purifiers, x, versions, alpha, cache, memo, _flips(tuple(flip), figures == "quick"))
    release_freed_memory()  # the model passes' working memory
    return Figures(
        width=int(original.shape[1]), height=int(original.shape[0]), eps_levels=budget, eps_inferred=inferred,
        linf=linf, seed=int(seed), mimic_model=ev.mimic.name if ev.mimic else None, encoders=ev.names,
        before=before, purified=_survival(ev, purifiers, before, after, cache),
        visible=1.0 if alpha is None else float((np.asarray(alpha) > 0).mean()),
        warnings=_pair_warnings(linf, budget, inferred), measured=ev.measured_share(*original.shape[:2]),
    )


def _versions(original: np.ndarray, cloaked: np.ndarray, budget: float, seed: int, alpha: np.ndarray | None,
              quick: bool, device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(the original, {"cloak", "noise"[, "uniform"]: version})`` as ``1×3×H×W`` float in [0, 1] on ``device``:
    the cloak and its baselines (no uniform one in quick figures)."""
    noise, uniform = baselines(original, cloaked, budget, seed, alpha, uniform=not quick)
    versions = {"cloak": cloaked, "noise": noise, **({} if uniform is None else {"uniform": uniform})}
    return to_tensor(original).to(device), {k: to_tensor(a).to(device) for k, a in versions.items()}


def _flips(flip: tuple[str, ...], quick: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the versions whose pixels' ꟻLIP is computed, those whose views' ꟻLIP is): quick keeps only the views'
    (~0.4 s per 512² each on a CPU), which the protection words read."""
    return ((), flip) if quick else (flip, flip)


def _comparison(figs: dict, clean_copy: float | None) -> Comparison:
    """A :class:`Comparison` from figures by version name (no ``uniform``: not measured)."""
    return Comparison(figs["cloak"], figs["noise"], figs.get("uniform"), clean_copy)


def _measure(ev: Evaluator, purifiers: list, x: torch.Tensor, versions: dict[str, torch.Tensor],
             alpha: np.ndarray | None, cache: dict, memo: dict | None,
             flips: tuple[tuple[str, ...], tuple[str, ...]]) -> tuple[Comparison, dict]:
    """The versions (the cloak and its baselines, ``1×3×H×W`` in [0, 1]) against the original ``x``
    (``before``), and per purification the purified versions against the purified original (``after``: figures
    by version and the clean copy's PSNR)."""
    names = list(versions)
    flip, view_flip = flips
    # every purification sees the same batch (its output must not depend on what was cached before)
    purified = {p.name: dict(zip(["x", *names], p(torch.cat([x, *versions.values()])).split(1))) for p in purifiers}
    same = [p for p in purifiers if p.keeps_size]
    # one pass: the versions against the original, with the purified originals against the original (what each
    # purification costs) unless cached; then per purification the purified versions against the purified
    # original. A purified original is a version of the first request and the reference of its own (the same
    # tensor), so it is encoded once; the artwork's pixels need no encoding.
    costs = {f"p:{p.name}": purified[p.name]["x"] for p in same if ("cost", p.name) not in cache}
    requests = [Request(x, {**versions, **costs}, flip=flip, flip_views=view_flip)]
    for p in same:
        px, pv = purified[p.name]["x"], {k: purified[p.name][k] for k in names}
        requests.append(Request(px, pv, artwork=x, views=p.gives_view))
    (figs, clean_copy), *afters = ev.compare_many(requests, alpha=alpha, memo=memo)
    after = dict(zip((p.name for p in same), afters))
    for p in same:
        cache.setdefault(("cost", p.name), figs.get(f"p:{p.name}"))
    for p in purifiers:
        if not p.keeps_size:
            after[p.name] = _measure_resized(ev, p, x, purified[p.name], alpha, cache, memo)
    return _comparison(figs, clean_copy), after


def _survival(ev: Evaluator, purifiers: list, before: Comparison, after: dict, cache: dict) -> dict[str, Purified]:
    """Per purification: its comparison, what it costs the original, and the share of the advantage kept."""
    first = ev.names[0]
    adv0, least = _advantage(before, ev.mimic and ev.mimic.name, first)
    result: dict[str, Purified] = {}
    for p in purifiers:
        comp = _comparison(*after[p.name])
        adv, _ = _advantage(comp, ev.mimic and ev.mimic.name, first)
        result[p.name] = Purified(p.name, p.description, comp, cache[("cost", p.name)], retained(adv, adv0, least))
    return result


def _measure_resized(ev: Evaluator, p, x: torch.Tensor, outs: dict[str, torch.Tensor], alpha: np.ndarray | None,
                     cache: dict, memo: dict | None):
    """The figures after a purification that changes the size (a platform's downscale), measured at the size it
    gives: the purified versions (``outs``, with the purified original as ``x``) against the purified original,
    judged against the original plainly resized (:meth:`~glazeish.purify.Purification.resized`), which is also
    what the purification's cost is measured against. Returns ``(figures by version, the purified original's
    view PSNR against that artwork)``."""
    px = outs["x"]
    art = p.resized(x)
    h, w = px.shape[-2:]
    small_alpha = None if alpha is None else np.asarray(Image.fromarray(np.asarray(alpha)).resize((w, h), Image.NEAREST))
    requests = [Request(px, {k: v for k, v in outs.items() if k != "x"}, artwork=art)]
    if ("cost", p.name) not in cache:
        requests.append(Request(art, {"cost": px}))
    (figs, copy), *cost = ev.compare_many(requests, alpha=small_alpha, memo=memo)
    if cost:
        cache[("cost", p.name)] = cost[0][0]["cost"]
    return figs, copy


def load_pair(
    original_path: str | Path, cloaked_path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Read both files for :func:`assess`: ``(original, cloaked, alpha, warnings)``, RGB ``H×W×3`` uint8 and
    the original's alpha (or None).

    A cloaked file of another size but the same aspect ratio (within 1%) is compared at the smaller size: a
    smaller cloak (``protect --platform`` / ``--max-side``, which cloak the picture scaled down to be posted) with
    the original scaled down as those do (Lanczos), a larger one (another tool resized it) resized to the
    original's size with Lanczos and a warning (the resampling then counts as part of the change). Another
    aspect ratio, or a picture too different to be a cloak of the original (PSNR below :data:`MIN_PAIR_PSNR`:
    another picture, a mirror), raises :class:`ImageError` naming both files. Unreadable files raise
    :class:`ImageError` (one line).
    """
    a = read_image(original_path, max_pixels=max_pixels)
    b = read_image(cloaked_path, max_pixels=max_pixels)
    warns = []
    (w0, h0), (w1, h1) = a.size, b.size
    cloaked = b.rgb
    if (w0, h0) != (w1, h1):
        if abs((w1 / h1) / (w0 / h0) - 1) > ASPECT_TOLERANCE:
            raise ImageError(f"{cloaked_path}: {w1}x{h1} does not match {original_path}: {w0}x{h0} "
                             "(different aspect ratio: cropped, or not the same picture?)")
        if w1 * h1 < w0 * h0:
            a = resized(a, (w1, h1))
            warns.append(f"the cloaked image is {w1}x{h1}, the original {w0}x{h0}: compared with the original scaled "
                         "down to the cloak's size (Lanczos, as protect --platform and --max-side do)")
        else:
            cloaked = resize_rgb(b.rgb, (w0, h0))
            warns.append(f"the cloaked image is {w1}x{h1}, the original {w0}x{h0}: resized it to compare pixels; the "
                         "resampling counts as part of the change (visibility understated, budget overstated: pass "
                         "--eps)")
    mse = mse_levels(cloaked, a.rgb, a.alpha)
    psnr = psnr_of_mse(mse, 255)
    if psnr < MIN_PAIR_PSNR:
        raise ImageError(f"{cloaked_path}: too different from {original_path} to be a cloak of it (PSNR {psnr:.1f} dB; "
                         f"cloaks are above {MIN_PAIR_PSNR:g} dB): another picture, mirrored or edited?")
    if (a.alpha is None) != (b.alpha is None):
        warns.append("only one of the two images has transparency: the figures compare the colour channels, "
                     "over the original's visible pixels")
    return a.rgb, cloaked, a.alpha, warns
