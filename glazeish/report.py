"""Pictures of a cloak and the self-contained HTML report ("did it work?").

Renders :class:`~glazeish.evaluation.Figures` (computed by :func:`glazeish.evaluation.assess`) with their words
(:func:`glazeish.evaluation.judge`); it computes no figure itself. :func:`amplified_delta` is the one way the
change is made visible (also used by the web UI and the benchmark's image grids).
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np
from PIL import Image

from .evaluation import Evaluator, Figures, judge
from .imageio import ImageError, _atomic_write

REPORT_MAX_SIDE = 512  # the report's overview pictures only; figures are always computed at full resolution
DETAIL = 192  # side of the 1:1 detail crops of the mimic's views


def amplified_delta(original: np.ndarray, cloaked: np.ndarray, eps_levels: float | None = None) -> np.ndarray:
    """The change made visible, ``H×W×3`` uint8: mid-grey where nothing changed, ±``eps_levels`` (1/255; default
    the largest change) at 0 / 255."""
    d = cloaked.astype(np.float32) - original.astype(np.float32)
    peak = float(eps_levels) if eps_levels else float(np.abs(d).max(initial=0))
    if peak == 0:
        return np.full_like(original, 128)
    return np.clip(np.round(d * (127.5 / max(peak, 1.0)) + 127.5), 0, 255).astype(np.uint8)


def checkerboard(alpha: np.ndarray, rgb: np.ndarray, square: int = 8) -> np.ndarray:
    """``rgb`` composited over a grey checkerboard by ``alpha`` (how transparency is shown), ``H×W×3`` uint8."""
    h, w = alpha.shape
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // square + xx // square) % 2)[..., None] == 0, 204, 153).astype(np.float32)
    a = alpha.astype(np.float32)[..., None] / 255
    return np.round(rgb.astype(np.float32) * a + board * (1 - a)).astype(np.uint8)


def centre_crop(rgb: np.ndarray, side: int = DETAIL) -> np.ndarray:
    """The central ``side×side`` pixels (or less, for a smaller image), unscaled."""
    h, w = rgb.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return rgb[top : top + side, left : left + side]


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


def _db(v: float | None) -> str:
    if v is None:
        return "–"
    return "∞" if math.isinf(v) else f"{v:.2f}"


def _num(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _absent() -> SimpleNamespace:
    """A baseline that was not measured (quick figures): every figure None, which the table shows as "–"."""
    return SimpleNamespace(psnr=None, ssim=None, grain=None, view_psnr=None, view_psnr_detinted=None, copy_psnr=None,
                           latent={})


def table_rows(f: Figures) -> list[tuple[str, str, str, str, str]]:
    """The figures as (measure, cloak, same-PSNR noise, same-L∞ noise, difference) strings (the same-L∞ column
    "–" where that baseline was not measured: quick figures)."""
    b = f.before
    u = _absent() if b.uniform is None else b.uniform
    rows = [
        ("PSNR vs original (dB; higher = less visible)", _db(b.cloak.psnr), _db(b.noise.psnr), _db(u.psnr), ""),
        ("SSIM vs original (1 = identical)", f"{b.cloak.ssim:.4f}", f"{b.noise.ssim:.4f}", _num(u.ssim, 4), ""),
        ("Largest change L∞ (/255)", f"{f.linf:g}", "", f"{f.eps_levels:g}"
         + (" (read off the cloak)" if f.eps_inferred else " (budget)"), ""),
    ]
    if b.cloak.flip is not None:
        rows.append(("ꟻLIP error (0 = indistinguishable when flipping)", f"{b.cloak.flip:.4f}", "", "", ""))
    if b.cloak.grain is not None:
        rows.append(("Grain on flat fills (high-pass RMS, /255; lower = less visible)", f"{b.cloak.grain:.2f}",
                     f"{b.noise.grain:.2f}", _num(u.grain, 2), ""))

    def enc_rows(prefix: str, c, retained: float | None) -> None:
        cu = _absent() if c.uniform is None else c.uniform
        for name in f.encoders:
            rows.append((f"{prefix}{name}: latent moved (relative L2; higher = more changed)",
                         f"{c.cloak.latent[name]:.4f}", f"{c.noise.latent[name]:.4f}", _num(cu.latent.get(name), 4),
                         f"{c.latent_ratio(name):.1f}× same-PSNR noise"))
            if name == f.mimic_model:
                diff = f"{c.view_gap('noise'):+.1f} dB vs same-PSNR noise"
                if retained is not None:
                    diff += f"; {retained * 100:.0f}% retained"
                rows.append((f"{prefix}{name}: mimic's view vs the original's (dB; lower = more changed)",
                             _db(c.cloak.view_psnr), _db(c.noise.view_psnr), _db(cu.view_psnr), diff))
                rows.append((f"{prefix}{name}: the same, colours matched to the original view's (beyond a tint)",
                             _db(c.cloak.view_psnr_detinted), _db(c.noise.view_psnr_detinted),
                             _db(cu.view_psnr_detinted), f"{c.view_gap('noise', detinted=True):+.1f} dB vs "
                             "same-PSNR noise"))
                rows.append((f"{prefix}{name}: the mimic's copy vs the artwork (dB; original's copy: "
                             f"{_db(c.clean_copy_psnr)})", _db(c.cloak.copy_psnr), _db(c.noise.copy_psnr),
                             _db(cu.copy_psnr), ""))

    enc_rows("", b, None)
    for name, p in f.purified.items():
        enc_rows(f"after {name}: ", p.comparison, p.retained)
    return rows


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}ul.verdicts{font-size:1.05em;line-height:1.6}
.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;flex:1 1 300px;max-width:520px}
figure img{width:100%;border:1px solid #ccc}figure.px img{width:auto;image-rendering:pixelated}
figcaption{font-size:.9em;color:#555}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}.note{color:#666;font-size:.88em}
"""


def render_html(
    original: np.ndarray,
    cloaked: np.ndarray,
    figures: Figures,
    evaluator: Evaluator | None = None,
    views: Sequence[np.ndarray] | None = None,
    title: str = "glazeish report",
    alpha: np.ndarray | None = None,
) -> str:
    """The report as one HTML string: verdicts, pictures (overview ≤ 512 px, and a 1:1 detail of both mimic's
    views so the change the words describe can be seen), and the table of figures.

    ``views``: the mimic's views of original and cloak, else computed with ``evaluator``.
    """
    if views is None:
        if evaluator is None:
            raise ValueError("the report needs an evaluator or the precomputed mimic views")
        views = evaluator.views(original, cloaked)
    show = (lambda rgb: checkerboard(alpha, rgb)) if alpha is not None else (lambda rgb: rgb)
    mimic = figures.mimic_model or "decoder"
    # δ is high-frequency: nearest-neighbour keeps its texture visible where Lanczos would average it to grey
    pics = [
        ("Original", _thumb(show(original)), ""),
        ("Cloaked", _thumb(show(cloaked)), ""),
        (f"Change δ, amplified (±{figures.eps_levels:g}/255 shown as full contrast)",
         _thumb(amplified_delta(original, cloaked, figures.eps_levels), resample=Image.NEAREST), ""),
        (f"What a model learns from the original (mimic's view, {mimic})", _thumb(views[0]), ""),
        (f"What a model learns from the cloaked image (mimic's view, {mimic})", _thumb(views[1]), ""),
        ("Detail at 100 %: the original's mimic view", Image.fromarray(centre_crop(views[0])), "px"),
        ("Detail at 100 %: the cloaked image's mimic view", Image.fromarray(centre_crop(views[1])), "px"),
    ]
    e = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
        '<ul class="verdicts">', *(f"<li>{e(v)}</li>" for v in judge(figures).sentences), "</ul>",
        '<div class="grid">',
    ]
    for caption, im, cls in pics:
        parts.append(f'<figure class="{cls}"><img alt="{e(caption)}" src="{_data_uri(im)}">'
                     f"<figcaption>{e(caption)}</figcaption></figure>")
    parts += [
        "</div>", "<h2>Figures</h2>",
        "<table><tr><th>Measure</th><th>Cloak</th><th>Noise, same PSNR</th><th>Noise, same L∞</th>"
        "<th>Difference</th></tr>",
        *(f'<tr><td>{e(a)}</td><td class="n">{e(b)}</td><td class="n">{e(c)}</td><td class="n">{e(d)}</td>'
          f"<td>{e(x)}</td></tr>" for a, b, c, d, x in table_rows(figures)),
        "</table>",
        f'<p class="note">{figures.width}×{figures.height} px, figures at full resolution (overview pictures '
        "downscaled). Baselines: Gaussian noise with the cloak's own mean squared error (the same PSNR), and uniform "
        f"noise in ±{figures.eps_levels:g}/255, seed {figures.seed}, both clipped and rounded like the cloak. After a "
        "purification, cloak and noise are compared with the equally purified original; “retained” is the cloak's "
        "advantage over same-PSNR noise after the purification divided by that before.</p>",
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
    figures: Figures,
    evaluator: Evaluator | None = None,
    *,
    views: Sequence[np.ndarray] | None = None,
    title: str | None = None,
    alpha: np.ndarray | None = None,
) -> Path:
    """Write the report to ``path`` atomically; returns ``path``. Raises :class:`ImageError` (one line) if it
    cannot be written."""
    path = Path(path)
    text = render_html(original, cloaked, figures, evaluator, views, title or f"glazeish report: {path.name}", alpha)
    try:
        _atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None
    return path
