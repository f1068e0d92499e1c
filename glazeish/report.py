""""Did it work?": measure any (original, cloaked) pair next to same-budget noise, in plain language.

:func:`assess` computes the figures of the benchmark harness for one pair of ``H×W×3`` uint8 images —
visibility (PSNR, SSIM, L∞), per encoder how far the latent moved and (with a decoder) how far the
mimic's view ``D(E(x))`` moved, each next to uniform noise of the same L∞ budget, and how much of that
advantage over noise survives each purification (JPEG q75 by default). :func:`verdicts` turns them into
sentences, :func:`write_report` into one self-contained HTML page, and :func:`check_files` / the
``glazeish check`` command (:func:`check`) do it for two image files, including files that another tool
cloaked (the budget is then read off the cloak itself).

Conventions: images are ``H×W×3`` uint8 (``B×3×H×W`` float in [0, 1] inside); budgets given by users and
written in figures are in 1/255 units (``eps=4`` means ±4 levels), while :func:`evaluate` takes the
fraction (``4/255``) like :class:`~glazeish.protect.Protector` does internally.
"""

from __future__ import annotations

import base64
import html
import io
import json as _json
import math
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
import typer
from PIL import Image

from .encoders import Ensemble, LatentModel
from .imageio import DEFAULT_MAX_PIXELS, ImageError, _atomic_write, read_image, to_tensor, to_uint8
from .protect import compare, evaluate, linf_levels, noise_image, pad_to_multiple  # noqa: F401 (evaluate: re-exported)

# --- verdict thresholds -------------------------------------------------------------------------
# Visibility, by PSNR of the cloaked image against the original (dB). The presets land at ~39-40 (low),
# ~37-39 (default) and ~34-36 (high); below ~32 dB grain shows on flat colour to most viewers.
VISIBILITY_LEVELS: tuple[tuple[float, str], ...] = (
    (42.0, "practically invisible"),
    (36.0, "very hard to see"),
    (32.0, "faint grain may show on close inspection, mostly on flat colour"),
    (28.0, "visible on close inspection"),
    (-math.inf, "clearly visible"),
)
# Protection, by the mimic-view gap: noise's mimic-view PSNR minus the cloak's (dB), i.e. how much
# further from the original's view the cloak moved what a model reproduces than noise of the same
# strength did. Below NO_BETTER_DB the difference is within what two noise draws differ by.
NO_BETTER_DB = 0.5
PROTECTION_LEVELS: tuple[tuple[float, str], ...] = (
    (6.0, "reproduces something clearly different"),
    (2.0, "reproduces something noticeably different"),
    (NO_BETTER_DB, "reproduces something only slightly different"),
)
# Encoders without a decoder: latent displacement of the cloak as a multiple of the noise's.
NO_BETTER_RATIO = 1.2
# Retention after a purification: the fraction of the cloak's advantage over noise that is left.
RETENTION_LEVELS: tuple[tuple[float, str], ...] = (
    (0.75, "most of it survives"),
    (0.40, "weakened, but still there"),
    (0.10, "mostly lost"),
    (-math.inf, "essentially gone"),
)
# PSNR is infinite for identical images; differences of PSNRs are taken with this cap so that an
# unchanged image reads as "no effect" (0 dB) rather than inf − inf.
PSNR_CAP = 100.0
# Plain names of purifications for the verdicts (others use their registered description).
PURIFICATION_WORDS = {
    "jpeg95": "a JPEG re-save (q95)",
    "jpeg75": "a JPEG re-save (q75)",
    "jpeg50": "a JPEG re-save (q50)",
    "webp": "a WebP re-save",
    "resize0.5": "downscaling to 50%",
    "resize0.75": "downscaling to 75%",
}
# A budget read off the cloak above this (1/255) suggests the pair differs by more than a cloak
# (resized, re-encoded, edited): cloaking tools use 2-16; the verdicts then carry a warning.
LARGE_CHANGE = 32
REPORT_MAX_SIDE = 512  # the report's pictures only; figures are always computed at full resolution
ASPECT_TOLERANCE = 0.01  # check_files: a cloak resized by another tool may differ by this much in aspect


def _decoder_model(ensemble: Ensemble) -> LatentModel | None:
    """The model whose decoder gives the mimic's view (the first one with a decoder)."""
    return next((m for m in ensemble.models if m.has_decoder), None)


# --- figures --------------------------------------------------------------------------------------


def _capped(p: float) -> float:
    return min(p, PSNR_CAP) if not math.isnan(p) else PSNR_CAP


def mimic_gap(fig: dict) -> float:
    """Noise's mimic PSNR minus the cloak's (dB): > 0 when the cloak moved the mimic's view further."""
    return _capped(fig["random"]) - _capped(fig["cloak"])


def latent_effect(fig: dict) -> float:
    """Cloak's latent displacement minus the noise's: > 0 when the cloak moved the latent further."""
    return fig["cloak"] - fig["random"]


def _effects(enc_fig: dict) -> dict:
    """Per figure: (the cloak's advantage over noise, the least advantage that counts as one)."""
    d = enc_fig["latent_displacement"]
    out = {"latent_displacement": (latent_effect(d), (NO_BETTER_RATIO - 1) * d["random"])}
    if "mimic_psnr" in enc_fig:
        out["mimic_psnr"] = (mimic_gap(enc_fig["mimic_psnr"]), NO_BETTER_DB)
    return out


def _retained(after: float, before: float, least: float) -> float | None:
    """``after / before``, or None where the cloak had no advantage over noise to begin with
    (``before < least``: a ratio of two chance-level differences means nothing)."""
    if not math.isfinite(before) or before < max(least, 1e-9) or math.isnan(after):
        return None
    return after / before


def _build_purifications(purifications, seed: int):
    from .purify import Purification, make_purifications

    if purifications is None:
        return []
    if isinstance(purifications, (str, Purification)):
        purifications = [purifications]
    out = []
    for p in purifications:
        out.extend([p] if isinstance(p, Purification) else make_purifications(p, seed=seed))
    return out


@torch.no_grad()
def assess(
    original: np.ndarray,
    cloaked: np.ndarray,
    ensemble: Ensemble,
    eps: float | None = None,
    seed: int = 0,
    purifications: Sequence = ("jpeg75",),
) -> dict:
    """All the "did it work?" figures for one pair, each next to uniform noise of the same budget.

    Args:
        original, cloaked: ``H×W×3`` uint8 of the same size (ValueError otherwise).
        ensemble: loaded encoders on their device; the first with a decoder (e.g. ``taef2``) gives the
            mimic's view (without one, ``mimic_model`` is None and there are no ``mimic_psnr`` figures).
        eps: the noise baseline's L∞ budget in 1/255 units; None takes the cloak's own L∞ (how a cloak
            made by another tool, whose budget is unknown, is compared with noise of the same strength).
        seed: noise seed (the same as ``protect --seed`` gives the same baseline as ``protect --json``).
        purifications: names (``"jpeg75"``, ``"resize0.5"``, ...) or built
            :class:`~glazeish.purify.Purification` objects; each is applied to original, cloak and noise.

    Returns a JSON-able dict: everything :func:`evaluate` returns, plus ``width``, ``height``, ``eps``
    (1/255), ``eps_inferred``, ``mimic_model``, ``purifications`` (per name: ``description``,
    ``encoders`` with the figures after purification — measured against the *purified* original —, and
    ``retained``: per encoder and figure, advantage over noise after / before, None where there was none),
    ``summary`` (the headline numbers the verdicts use) and ``warnings`` (a list of strings).
    """
    original, cloaked = np.asarray(original), np.asarray(cloaked)
    for name, a in (("original", original), ("cloaked", cloaked)):
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"{name} must be an H×W×3 uint8 array, got {a.dtype} {a.shape}")
    if original.shape != cloaked.shape:
        raise ValueError(
            f"images differ in size: original {original.shape[1]}x{original.shape[0]}, "
            f"cloaked {cloaked.shape[1]}x{cloaked.shape[0]} (resize one first, or use check_files)"
        )
    decoder = _decoder_model(ensemble)  # None: no mimic's view, protection is judged by the latent alone
    purifiers = _build_purifications(purifications, seed)  # before the slow part: a bad name fails at once
    warnings: list[str] = []
    linf = linf_levels(original, cloaked)
    inferred = eps is None
    budget = float(linf) if inferred else float(eps)
    if budget < 0:
        raise ValueError(f"eps must be ≥ 0 (in 1/255 units), not {budget}")
    if linf == 0:
        warnings.append("the two images are identical: there is no cloak to assess")
    elif not inferred and linf > math.floor(budget + 1e-6):
        warnings.append(f"the cloak changes pixels by up to {linf:g}/255, more than the stated budget {budget:g}/255")
    if inferred and linf > LARGE_CHANGE:
        warnings.append(
            f"the images differ by up to {linf:g}/255: more than a cloak usually does (resized, re-encoded or "
            "edited?); the noise baseline uses that budget, which makes it strong"
        )

    device = ensemble.device
    x = to_tensor(original).to(device)
    xa = to_tensor(cloaked).to(device)
    xr = to_tensor(noise_image(original, budget / 255, seed)).to(device)
    figures = {
        "width": int(original.shape[1]),
        "height": int(original.shape[0]),
        "eps": budget,
        "eps_inferred": inferred,
        "seed": int(seed),
        "mimic_model": decoder.name if decoder else None,
        **compare(ensemble, x, {"cloak": xa, "random": xr}),
        "linf": linf,
        "purifications": {},
    }
    before = {name: _effects(f) for name, f in figures["encoders"].items()}
    for p in purifiers:
        # the same purification on all three; figures are taken against the purified original, so
        # the purification's own change to the image is not counted as the cloak's
        px, pxa, pxr = p(torch.cat([x, xa, xr])).split(1)
        enc = compare(ensemble, px, {"cloak": pxa, "random": pxr})["encoders"]
        retained = {
            name: {k: _retained(v, *before[name][k]) for k, (v, _) in _effects(f).items()} for name, f in enc.items()
        }
        figures["purifications"][p.name] = {"description": p.description, "encoders": enc, "retained": retained}
    figures["summary"] = _summary(figures)
    figures["warnings"] = warnings
    return figures


def _mimic_model(figures: dict) -> str | None:
    return figures.get("mimic_model") or next((n for n, f in figures["encoders"].items() if "mimic_psnr" in f), None)


def _summary(figures: dict) -> dict:
    """The headline numbers: mimic-view gap (dB; None without a decoder), latent ratio per encoder, and
    retained fraction per purification (of the mimic-view gap; without a decoder, of the first encoder's
    latent displacement)."""
    m = _mimic_model(figures)
    ratios = {}
    for name, f in figures["encoders"].items():
        d = f["latent_displacement"]
        ratios[name] = d["cloak"] / d["random"] if d["random"] > 1e-12 else (1.0 if d["cloak"] <= 1e-12 else math.inf)
    key, fig = (m, "mimic_psnr") if m else (next(iter(figures["encoders"])), "latent_displacement")
    return {
        "mimic_gap_db": mimic_gap(figures["encoders"][m]["mimic_psnr"]) if m else None,
        "latent_ratio": ratios,
        "retained": {p: f["retained"][key][fig] for p, f in figures.get("purifications", {}).items()},
    }


# --- verdicts -------------------------------------------------------------------------------------


def _level(value: float, levels: Iterable[tuple[float, str]]) -> str | None:
    return next((words for threshold, words in levels if value >= threshold), None)


def _fmt_db(v: float) -> str:
    return "∞ dB" if math.isinf(v) else f"{v:.1f} dB"


def verdicts(figures: dict) -> list[str]:
    """Plain-language sentences for the figures of :func:`assess` (thresholds: module constants).

    One for visibility, one for protection (the mimic's view, next to same-budget noise), one per other
    encoder, one per purification, and one per warning. Also takes the smaller figures of
    :meth:`Protector.evaluate <glazeish.protect.Protector.evaluate>` (no purifications then; without a
    decoder, protection is judged by how far the latent moved).
    """
    out: list[str] = []
    psnr = figures["psnr"]["cloak"]
    if figures["linf"] == 0:
        out.append("Visibility: identical to the original (no pixel changed)")
        out.append("Protection: none — the two images are identical, so there is no cloak to assess")
        out.extend(f"Warning: {w}" for w in figures.get("warnings", []) if "identical" not in w)
        return out
    out.append(f"Visibility: {_level(psnr, VISIBILITY_LEVELS)} (PSNR {_fmt_db(psnr)}, "
               f"changes of at most {figures['linf']:g}/255)")

    s = figures.get("summary") or _summary(figures)
    mimic = _mimic_model(figures)
    gap = s["mimic_gap_db"]
    strength = f"noise of the same strength, ±{figures.get('eps', figures['linf']):g}/255"
    words = _level(gap, PROTECTION_LEVELS) if mimic else None
    if not mimic:
        pass  # judged by the latent alone, below
    elif words is None:
        how = f"only {gap:.1f} dB further from" if gap >= 0 else f"{-gap:.1f} dB closer to"
        out.append(
            f"Protection: no better than random {strength} — what a model trained on this image reproduces "
            f"is {how} the original's than with noise ({mimic} mimic view)"
        )
    else:
        out.append(
            f"Protection: a model trained on this image {words} ({mimic} mimic view "
            f"{gap:.1f} dB further from the original's than with {strength})"
        )
    for i, (name, ratio) in enumerate(s["latent_ratio"].items()):
        if name == mimic:
            continue
        # without a decoder the first encoder's latent is the headline
        label = "Protection (no decoder, latent only)" if not mimic and i == 0 else f"Encoder {name}"
        if ratio < NO_BETTER_RATIO:
            out.append(f"{label}: the {name} latent moved no further than with {strength} ({ratio:.2f}×)")
        else:
            out.append(f"{label}: the {name} latent moved {ratio:.1f}× as far as with {strength}")

    for p, r in s["retained"].items():
        what = PURIFICATION_WORDS.get(p) or figures["purifications"][p].get("description") or p
        if r is None:
            out.append(f"After {what}: nothing to keep — the cloak was no better than noise to begin with")
        else:
            pct = max(0.0, r) * 100
            out.append(f"After {what}: {pct:.0f}% of the protection remains ({_level(r, RETENTION_LEVELS)})")
    out.extend(f"Warning: {w}" for w in figures.get("warnings", []))
    return out


def table_rows(figures: dict) -> list[tuple[str, str, str, str]]:
    """The figures as (measure, cloak, noise of the same budget, difference) strings, for the report/UI."""
    rows = [
        ("PSNR vs original (dB; higher = less visible)", f"{figures['psnr']['cloak']:.2f}",
         f"{figures['psnr']['random']:.2f}", ""),
        ("SSIM vs original (1 = identical)", f"{figures['ssim']['cloak']:.4f}", f"{figures['ssim']['random']:.4f}", ""),
        ("Largest change L∞ (/255)", f"{figures['linf']:g}", f"{figures.get('eps', figures['linf']):g}"
         + (" (budget read off the cloak)" if figures.get("eps_inferred") else " (budget)"), ""),
    ]

    def enc_rows(prefix: str, encs: dict, retained: dict | None) -> None:
        for name, f in encs.items():
            d = f["latent_displacement"]
            ratio = d["cloak"] / d["random"] if d["random"] > 1e-12 else math.inf
            diff = f"{ratio:.1f}× noise"
            if retained is not None and retained[name]["latent_displacement"] is not None:
                diff += f"; {retained[name]['latent_displacement'] * 100:.0f}% retained"
            rows.append((f"{prefix}{name}: latent moved (relative L2; higher = more changed)",
                         f"{d['cloak']:.4f}", f"{d['random']:.4f}", diff))
            if "mimic_psnr" in f:
                m = f["mimic_psnr"]
                diff = f"{mimic_gap(m):+.1f} dB vs noise"
                if retained is not None and retained[name]["mimic_psnr"] is not None:
                    diff += f"; {retained[name]['mimic_psnr'] * 100:.0f}% retained"
                rows.append((f"{prefix}{name}: mimic view PSNR vs original's (dB; lower = more changed)",
                             f"{m['cloak']:.2f}", f"{m['random']:.2f}", diff))

    enc_rows("", figures["encoders"], None)
    for p, pf in figures.get("purifications", {}).items():
        enc_rows(f"after {p}: ", pf["encoders"], pf["retained"])
    return rows


def jsonable(obj):
    """``obj`` with non-finite floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --- pictures and the HTML report ---------------------------------------------------------------


@torch.no_grad()
def mimic_views(ensemble: Ensemble, *images: np.ndarray) -> list[np.ndarray]:
    """The mimic's view ``D(E(x))`` of each ``H×W×3`` uint8 image (same size), as uint8, same size."""
    model = _decoder_model(ensemble)
    if model is None:
        raise ValueError(
            f"the report's mimic view needs an encoder with a decoder (e.g. taef2); got {', '.join(ensemble.names)}"
        )
    x = torch.cat([to_tensor(a) for a in images]).to(ensemble.device)
    xp, (h, w) = pad_to_multiple(x, model.multiple)
    v = model.decode(model.encode(xp))[..., :h, :w]
    return [to_uint8(v[i]) for i in range(len(images))]


def amplified_delta(original: np.ndarray, cloaked: np.ndarray) -> np.ndarray:
    """``δ·(127/max|δ|) + 128`` as ``H×W×3`` uint8: mid-grey where nothing changed, so the cloak shows."""
    d = cloaked.astype(np.float32) - original.astype(np.float32)
    peak = float(np.abs(d).max())
    if peak == 0:
        return np.full_like(original, 128)
    return np.clip(np.round(d * (127 / peak) + 128), 0, 255).astype(np.uint8)


def _thumb(rgb: np.ndarray, max_side: int = REPORT_MAX_SIDE, resample=Image.LANCZOS) -> Image.Image:
    im = Image.fromarray(rgb, "RGB")
    if max(im.size) > max_side:
        scale = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), resample)
    return im


def _data_uri(im: Image.Image) -> str:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}ul.verdicts{font-size:1.05em;line-height:1.6}
.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;flex:1 1 300px;max-width:520px}
figure img{width:100%;image-rendering:auto;border:1px solid #ccc}figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}.note{color:#666;font-size:.88em}
"""


def render_html(
    original: np.ndarray,
    cloaked: np.ndarray,
    figures: dict,
    ensemble: Ensemble | None = None,
    views: Sequence[np.ndarray] | None = None,
    title: str = "glazeish report",
) -> str:
    """The report as one HTML string (for :func:`write_report`, or to embed in a web page).

    Pictures (downscaled to ≤ 512 px, PNG in ``data:`` URIs): original, cloaked, amplified δ, and the
    mimic's view of original and cloaked — ``views`` if given, else computed with ``ensemble``.
    """
    if views is None:
        if ensemble is None:
            raise ValueError("the report needs the ensemble or the precomputed mimic views")
        views = mimic_views(ensemble, original, cloaked)
    mimic = figures.get("mimic_model") or (_decoder_model(ensemble).name if ensemble else "decoder")
    # δ is high-frequency: nearest-neighbour keeps its texture visible where Lanczos would average it to grey
    pics = [
        ("Original", _thumb(original)),
        ("Cloaked", _thumb(cloaked)),
        (f"Change δ, amplified (±{figures['linf']:g}/255 shown as full contrast)",
         _thumb(amplified_delta(original, cloaked), resample=Image.NEAREST)),
        (f"What a model learns from the original (mimic view, {mimic})", _thumb(views[0])),
        (f"What a model learns from the cloaked image (mimic view, {mimic})", _thumb(views[1])),
    ]
    e = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        '<ul class="verdicts">', *(f"<li>{e(v)}</li>" for v in verdicts(figures)), "</ul>",
        '<div class="grid">',
    ]
    for caption, im in pics:
        parts.append(f'<figure><img alt="{e(caption)}" src="{_data_uri(im)}"><figcaption>{e(caption)}</figcaption></figure>')
    parts += [
        "</div>", "<h2>Figures</h2>",
        "<table><tr><th>Measure</th><th>Cloak</th><th>Noise, same budget</th><th>Difference</th></tr>",
        *(f'<tr><td>{e(a)}</td><td class="n">{e(b)}</td><td class="n">{e(c)}</td><td>{e(d)}</td></tr>'
          for a, b, c, d in table_rows(figures)),
        "</table>",
        f'<p class="note">{figures["width"]}×{figures["height"]} px, figures at full resolution (pictures here '
        f"downscaled). Noise: uniform in ±{figures['eps']:g}/255, seed {figures.get('seed', 0)}. "
        "After a purification, figures compare the purified cloak and noise with the purified original; "
        "“retained” is the cloak's advantage over noise after the purification divided by that before.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def report_path(output: str | Path) -> Path:
    """``OUT/<stem>.protected.png`` -> ``OUT/<stem>.protected.report.html`` (next to the output)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.report.html")


def write_report(
    path: str | Path,
    original: np.ndarray,
    cloaked: np.ndarray,
    figures: dict,
    ensemble: Ensemble | None = None,
    *,
    views: Sequence[np.ndarray] | None = None,
    title: str | None = None,
) -> Path:
    """Write the self-contained HTML report to ``path`` atomically; returns ``path``.

    Use :func:`report_path` for the conventional name next to an output. Raises :class:`ImageError`
    (one line) if it cannot be written.
    """
    path = Path(path)
    text = render_html(original, cloaked, figures, ensemble, views, title or f"glazeish report: {path.name}")

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    try:
        _atomic_write(path, write)
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


# --- two files ------------------------------------------------------------------------------------


def load_pair(
    original_path: str | Path, cloaked_path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read both files as ``H×W×3`` uint8 (alpha dropped); returns (original, cloaked, warnings).

    A cloaked file of another size but the same aspect ratio (within 1%: another tool resized it) is
    resized to the original's size with Lanczos and a warning, since the figures need pixel-aligned
    images; the resampling then counts as part of the change, so visibility is understated and the
    budget read off the cloak overstated (pass ``eps`` to state it). Another aspect ratio (a crop, or not
    the same picture) raises :class:`ImageError`. Unreadable files raise :class:`ImageError` (one line).
    """
    a = read_image(original_path, max_pixels=max_pixels)
    b = read_image(cloaked_path, max_pixels=max_pixels)
    warns = []
    if a.alpha is not None or b.alpha is not None:
        warns.append("transparency is ignored: the figures compare the colour channels only")
    (w0, h0), (w1, h1) = a.size, b.size
    cloaked = b.rgb
    if (w0, h0) != (w1, h1):
        if abs((w1 / h1) / (w0 / h0) - 1) > ASPECT_TOLERANCE:
            raise ImageError(
                f"{cloaked_path}: {w1}x{h1} does not match {original_path}: {w0}x{h0} "
                "(different aspect ratio: cropped, or not the same picture?)"
            )
        cloaked = np.asarray(Image.fromarray(b.rgb, "RGB").resize((w0, h0), Image.LANCZOS))
        warns.append(
            f"the cloaked image is {w1}x{h1}, the original {w0}x{h0}: resized it to compare pixels; the "
            "resampling counts as part of the change (visibility understated, budget overstated: pass --eps)"
        )
    return a.rgb, cloaked, warns


def check_files(
    original_path: str | Path,
    cloaked_path: str | Path,
    ensemble: Ensemble,
    eps: float | None = None,
    seed: int = 0,
    purifications: Sequence = ("jpeg75",),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict:
    """:func:`assess` for two files (see :func:`load_pair` for size mismatches); adds ``original``,
    ``cloaked`` (the paths) and ``verdicts``."""
    original, cloaked, warns = load_pair(original_path, cloaked_path, max_pixels)
    figures = assess(original, cloaked, ensemble, eps=eps, seed=seed, purifications=purifications)
    figures["warnings"] = warns + figures["warnings"]
    figures = {"original": str(original_path), "cloaked": str(cloaked_path), **figures}
    figures["verdicts"] = verdicts(figures)
    return figures


# --- the `glazeish check` command ---------------------------------------------------------------


def _fail(msg: str, code: int = 2) -> None:
    typer.echo(f"glazeish: error: {msg}", err=True)
    raise typer.Exit(code)


def check(
    original: Path = typer.Argument(..., help="The image before cloaking.", show_default=False),
    cloaked: Path = typer.Argument(..., help="The cloaked image (by glazeish or any other tool).", show_default=False),
    encoder: str = typer.Option("taef2", help="Encoder(s) to measure with; the first with a decoder (taef2) "
                                "gives the mimic's view. Comma-separated for several."),
    models: Optional[Path] = typer.Option(None, "--models", help="Folder with the encoder weights "
                                          "(default: $GLAZEISH_MODELS, then the download cache)."),
    eps: Optional[float] = typer.Option(None, help="Budget of the noise baseline in 1/255 units "
                                        "(default: the cloak's own largest change)."),
    purify: str = typer.Option("jpeg75", help="Purifications to test survival against, comma-separated "
                               "(jpeg75, resize0.5, webp, ...; 'none' for none)."),
    seed: int = typer.Option(0, help="Seed of the noise baseline."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures and verdicts as one JSON object."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the HTML report to this file "
                                          "(or into this folder as <cloaked stem>.report.html)."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, help="Refuse images with more pixels than this."),
):
    """Did the cloak work? Compare ORIGINAL and CLOAKED with noise of the same strength.

    Prints plain-language verdicts on visibility, protection (what a model trained on the image would
    reproduce) and survival of a JPEG re-save; exits 2 with one line on stderr if an input is unusable.
    """
    from .attack import resolve_device
    from .encoders import load_encoders
    from .weights import WeightsError

    try:
        orig_rgb, cloak_rgb, warns = load_pair(original, cloaked, max_pixels)
        ensemble = load_encoders(encoder, models, resolve_device(device))
        figures = assess(orig_rgb, cloak_rgb, ensemble, eps=eps, seed=seed, purifications=purify)
    except (ImageError, WeightsError, ValueError, OSError, RuntimeError, MemoryError) as e:
        # RuntimeError: e.g. out of memory on a huge image; every error is one line
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    figures["warnings"] = warns + figures["warnings"]
    figures = {"original": str(original), "cloaked": str(cloaked), **figures}
    figures["verdicts"] = verdicts(figures)
    if report is not None:
        dest = report / f"{cloaked.stem}.report.html" if report.is_dir() else report
        try:
            write_report(dest, orig_rgb, cloak_rgb, figures, ensemble, title=f"glazeish check: {cloaked.name}")
        except ImageError as e:
            _fail(str(e))
        figures["report"] = str(dest)
    if as_json:
        typer.echo(_json.dumps(jsonable(figures), allow_nan=False))
        return
    typer.echo(f"{cloaked} vs {original}:")
    for v in figures["verdicts"]:
        typer.echo(f"  {v}")
    if report is not None:
        typer.echo(f"  Report: {figures['report']}")


check_command = check  # the name cli.py registers: app.command("check")(report.check_command)
