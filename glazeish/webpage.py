"""The web page's HTML: pure functions from results to markup (testable without a browser or Gradio).

:mod:`glazeish.ui` runs the jobs and wires the Gradio page; this module draws what it shows: the upload check
(:func:`render_checks`), the progress (:func:`render_progress`), each result's card with its comparison viewers
(:func:`render_result`, :func:`render_viewer`; ``assets/webui.js`` makes them interactive), the preset chooser
(:func:`render_presets`, from the examples measured by ``benchmarks/preset_examples.py``) and what goes into
the file (:func:`render_written`). Every verdict word comes from :mod:`glazeish.evaluation.verdicts`; nothing
here computes a figure.
"""

from __future__ import annotations

import base64
import html
import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import PRESETS
from .evaluation import verdicts as words
from .metadata import MetadataOptions, describe

ASSETS = Path(__file__).resolve().parent / "assets"


# ------------------------------------------------------------------------------------------------
# what the page shows


@dataclass
class Upload:
    """One uploaded file as checked on arrival: its size and a thumbnail, or why it cannot be used."""

    path: str
    name: str
    width: int = 0
    height: int = 0
    bytes: int = 0
    alpha: bool = False
    thumb: str = ""  # data: URI of a small PNG (transparency over a checkerboard)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ImageResult:
    """One uploaded image after a run: paths of the PNGs the page shows, figures and their words, or an error.

    ``cloaked`` is the download (``<stem>.protected.png``, the input's size, alpha kept); ``original`` the upright
    input, ``difference`` the amplified change, ``view_original`` / ``view_cloaked`` what the model reproduces of
    each (decoder round trips), all as PNG previews with transparency over a checkerboard. Plain, JSON-able data.
    """

    name: str  # the uploaded file's name
    download_name: str = ""
    width: int = 0
    height: int = 0
    original: str | None = None
    cloaked: str | None = None
    cloaked_preview: str | None = None  # the cloaked image over the checkerboard (transparent images only)
    difference: str | None = None
    view_original: str | None = None
    view_cloaked: str | None = None
    view_model: str | None = None
    eps: float | None = None  # the budget used, 1/255 units
    preset: str = ""  # the preset whose values were used, or "custom"
    figures: dict = field(default_factory=dict)  # Figures.to_dict()
    verdicts: list[str] = field(default_factory=list)  # judge(figures).sentences
    visibility: str = ""  # the verdict's level keys
    protection: str = ""
    survival: str | None = None  # after the page's purification (JPEG q75)
    input_bytes: int = 0
    output_bytes: int = 0
    seconds: float = 0.0  # the whole image: read, cloak, write, figures
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def plural(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


# ------------------------------------------------------------------------------------------------
# markup

esc = html.escape


def file_url(path: str | Path) -> str:
    """The URL under which Gradio serves ``path`` (a file in the workspace, a static path of the app)."""
    return "gradio_api/file=" + urllib.parse.quote(str(path))


def kb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{max(1, round(n / 1000))} KB"


def render_checks(uploads: Sequence[Upload]) -> str:
    """The upload check: a thumbnail and size per picture, one red line per file that is not one."""
    if not uploads:
        return ""
    rows = []
    for u in uploads:
        if u.ok:
            extra = " · transparent background kept" if u.alpha else ""
            rows.append(f'<li class="glz-check glz-good"><img src="{u.thumb}" alt=""><span class="glz-what">'
                        f"<b>{esc(u.name)}</b><br><span class=\"glz-small\">{u.width}×{u.height} · {kb(u.bytes)}"
                        f"{extra}</span></span></li>")
        else:
            rows.append(f'<li class="glz-check glz-bad" role="alert"><span class="glz-what">{esc(u.error)}</span></li>')
    return f'<ul class="glz-checks" aria-label="Checked uploads">{"".join(rows)}</ul>'


def render_progress(snap: dict | None, message: str = "") -> str:
    """One bar for the whole batch, the phase in words, the time so far and left (no text over the bar)."""
    if snap is None:
        return f'<div class="glz-progress"><div class="glz-phase">{esc(message)}</div></div>' if message else ""
    pct = round(100 * snap["fraction"])
    time_line = f"Elapsed {snap['elapsed']}"
    if snap.get("left"):
        time_line += f" · about {snap['left']} left"
    if snap.get("last_image"):
        time_line += f" · last image took {snap['last_image']}"
    return (f'<div class="glz-progress" data-fraction="{snap["fraction"]:.4f}">'
            f'<div class="glz-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{pct}">'
            f'<div style="width:{pct}%"></div></div>'
            f'<div class="glz-phase">{esc(snap["phase"])} <span class="glz-small">({pct} %)</span></div>'
            f'<div class="glz-time">{esc(time_line)}</div></div>')


def render_status(text: str, error: bool = False) -> str:
    return f'<div class="glz-status{" glz-error" if error else ""}"><p>{esc(text)}</p></div>' if text else ""


def render_viewer(elem_id: str, title: str, width: int, height: int, layers: Sequence[tuple[str, str, str]],
                  mode: str = "split") -> str:
    """A comparison of same-size pictures ``layers`` = (key ``a``/``b``/``c``, label, PNG path): one at a time,
    flickering between ``a`` and ``b``, or split by a slider; the whole picture, 100 %, 200 % or 400 % (click
    the picture for 100 % around that point, drag to pan). Driven by ``assets/webui.js``."""
    labels = {k: label for k, label, _ in layers}
    modes = [(k, label) for k, label, _ in layers if k != "c"] + [("flicker", "A/B flicker"), ("split", "Split")]
    modes += [(k, label) for k, label, _ in layers if k == "c"]
    buttons = "".join(f'<button type="button" data-mode="{k}" aria-pressed="{str(k == mode).lower()}">{esc(label)}'
                      "</button>" for k, label in modes)
    zooms = "".join(f'<button type="button" data-zoom="{z}" aria-pressed="{str(z == "fit").lower()}">{label}</button>'
                    for z, label in (("fit", "Whole"), ("1", "100 %"), ("2", "200 %"), ("4", "400 %")))
    imgs = "".join(f'<img class="glz-{k}" src="{esc(file_url(path))}" width="{width}" height="{height}" '
                   f'alt="{esc(label)}" draggable="false">' for k, label, path in layers)
    fit = f"--glz-fit:min({width}px, calc(70vh * {width} / {max(height, 1)}))"  # the whole picture, never enlarged
    attrs = " ".join(f'data-label-{k}="{esc(label)}"' for k, label in labels.items())
    return (f'<div class="glz-viewer" id="{elem_id}" data-mode="{mode}" data-show="{mode}" data-zoom="fit" '
            f'data-width="{width}" data-height="{height}" {attrs}>'
            f"<h4>{esc(title)}</h4>"
            f'<div class="glz-tools"><div class="glz-seg" role="group" aria-label="Show">{buttons}</div>'
            f'<div class="glz-seg" role="group" aria-label="Zoom">{zooms}</div></div>'
            f'<div class="glz-stage"><div class="glz-layers" style="{fit}">{imgs}<div class="glz-handle"></div>'
            f"</div></div>"
            f'<input type="range" class="glz-split" min="0" max="100" value="50" aria-label="Split position">'
            f'<div class="glz-caption" aria-live="polite"></div></div>')


def _level(key: str, table: Sequence[words.Level]) -> int | None:
    """The position of ``key`` in a verdict table (0 = the best), for the badge's colour."""
    return next((i for i, lv in enumerate(table) if lv.key == key), None)


def _badge(key: str | None, table: Sequence[words.Level]) -> str:
    pos = _level(key, table) if key else None
    return "" if pos is None else f'<span class="glz-badge glz-lv-{pos}">{esc(key)}</span>'


def _split_figures(text: str) -> tuple[str, str]:
    """A verdict sentence's words and its closing parenthesis of figures (shown smaller), if it has one."""
    if not text.endswith(")"):
        return text, ""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            numbers = any(c.isdigit() for c in text[i:])
            return (text[:i].rstrip(), text[i:]) if i > 0 and numbers else (text, "")
    return text, ""


def render_verdicts(r: ImageResult) -> str:
    """The words of :func:`glazeish.evaluation.judge`, topic first, with the level's key as a coloured badge."""
    rows = []
    for sentence in r.verdicts:
        topic, sep, text = sentence.partition(": ")
        if not sep:
            topic, text = "", sentence
        badge = ""
        if topic == "Visibility":
            badge = _badge(r.visibility, words.VISIBILITY)
        elif topic == "Protection":
            badge = _badge(r.protection, words.PROTECTION)
        elif topic.startswith("After "):
            badge = _badge(r.survival, words.SURVIVAL)
        words_part, figures_part = _split_figures(text)
        figs = f' <span class="glz-figs">{esc(figures_part)}</span>' if figures_part else ""
        rows.append(f'<div class="glz-verdict"><span class="glz-topic">{esc(topic)}</span>{badge}'
                    f"<span>{esc(words_part)}{figs}</span></div>")
    return "".join(rows)


#: a result is called much larger than its upload from this factor on (the note says why PNG)
LARGER = 2.0


def render_result(r: ImageResult, i: int) -> str:
    """One image's card: name, size and time, the verdicts, the two comparisons, the download."""
    if not r.ok:
        return (f'<div class="glz-card" id="glz-result-{i}"><h3>{esc(r.name)}</h3>'
                f'<p class="glz-error" id="glz-error-{i}" role="alert">⚠ Not cloaked: {esc(r.error)}</p></div>')
    sizes = f"{r.width}×{r.height} · cloaked in {duration(r.seconds)} · {kb(r.output_bytes)}"
    head = (f'<div class="glz-head"><div><h3>{esc(r.name)}</h3><span class="glz-meta-line">{esc(sizes)}</span></div>'
            f'<a class="glz-dl" id="glz-download-{i}" href="{esc(file_url(r.cloaked))}" '
            f'download="{esc(r.download_name)}">Download {esc(r.download_name)}</a></div>')
    why = PRESETS[r.preset].why if r.preset in PRESETS else ""
    why_html = f'<p class="glz-why" id="glz-why-{i}">Why {esc(r.preset)}: {esc(why)}</p>' if why else ""
    size_note = ""
    if r.input_bytes and r.output_bytes > LARGER * r.input_bytes:
        size_note = (f'<p class="glz-size" id="glz-size-{i}">The cloaked file is {kb(r.output_bytes)}, '
                     f"{r.output_bytes / r.input_bytes:.0f}× the {kb(r.input_bytes)} upload: it is a PNG, which keeps "
                     "every pixel of the cloak exactly. A JPEG would be smaller but would weaken the cloak before you "
                     "even post it (platforms re-compress uploads anyway).</p>")
    amp = 127.5 / max(r.eps or 1, 1)
    compare = render_viewer(f"glz-compare-{i}", "Your picture", r.width, r.height,
                            [("a", "original", r.original), ("b", "cloaked", r.cloaked_preview or r.cloaked),
                             ("c", f"change ×{amp:.0f}", r.difference)])
    model = render_viewer(f"glz-modelview-{i}", f"What an AI model sees ({r.view_model})", r.width, r.height,
                          [("a", "copy of the original", r.view_original),
                           ("b", "copy of the cloaked", r.view_cloaked)])
    caption = ('<p class="glz-small">What an AI model sees: the picture after the model\'s encoder and decoder, '
               "i.e. what a model trained on it would learn to reproduce. “Change” shows the cloak itself, "
               f"amplified {amp:.0f}× (grey = unchanged).</p>")
    return (f'<div class="glz-card" id="glz-result-{i}">{head}'
            f'<div class="glz-verdicts" id="glz-figures-{i}">{render_verdicts(r)}</div>{why_html}{size_note}'
            f'<div class="glz-views">{compare}{model}</div>{caption}</div>')


def render_results(results: Sequence[ImageResult]) -> str:
    return "".join(render_result(r, i) for i, r in enumerate(results))


def _ratio(a: float, b: float) -> str:
    r = a / b if b else 1.0
    return f"{r:.1f}×" if r < 9.95 else f"{r:.0f}×"


@dataclass(frozen=True)
class PresetExample:
    """What ``benchmarks/preset_examples.py`` measured for one preset on a painting and a flat-colour crop."""

    image: str  # data: URI of the flat crop, cloaked
    rows: dict  # crop name -> figures and words (see the script)


def preset_examples() -> dict[str, PresetExample]:
    """The measured examples shipped in ``assets/presets`` (empty when missing)."""
    folder = ASSETS / "presets"
    try:
        data = json.loads((folder / "presets.json").read_text())
        return {k: PresetExample("data:image/png;base64," + base64.b64encode((folder / f"{k}.png").read_bytes())
                                 .decode("ascii"), rows) for k, rows in data["presets"].items() if k in PRESETS}
    except (OSError, ValueError, KeyError):
        return {}


def preset_label(key: str) -> str:
    return key.capitalize() + (" (recommended)" if key == "default" else "")


def render_presets(chosen: str, examples: dict[str, PresetExample] | None = None) -> str:
    """The presets side by side with their trade-offs, as measured on a painting and a flat-colour crop: how
    visible, how strong, what survives a platform's re-compression, time and file size, and a 1:1 crop."""
    examples = preset_examples() if examples is None else examples
    base = examples.get("default")
    cards = []
    for key, p in PRESETS.items():
        ex = examples.get(key)
        lines = []
        if ex is not None:
            paint, flat = ex.rows["painting"], ex.rows["flat"]
            lines.append(f"<b>Visibility:</b> {esc(flat['visibility'])} on flat colour ({flat['psnr']:.1f} dB), "
                         f"{esc(paint['visibility'])} on a painting ({paint['psnr']:.1f} dB)")
            lines.append(f"<b>Strength:</b> {esc(paint['protection'])} on a painting, {esc(flat['protection'])} on "
                         "flat colour")

            def left(row) -> str:
                r = row["retained_jpeg75"]
                return "nothing" if r is None else f"~{max(0.0, r) * 100:.0f} %"

            lines.append(f"<b>After a platform re-compresses it:</b> {left(paint)} left on a painting, "
                         f"{left(flat)} on flat colour")
            if base is not None:
                t = sum(ex.rows[c]["seconds"] / base.rows[c]["seconds"] for c in ("painting", "flat")) / 2
                lines.append(f"<b>Time:</b> {p.steps} steps{', through a simulated JPEG' if p.robust else ''} "
                             f"(~{t:.1f}× default)")
            lines.append(f"<b>File (PNG):</b> {_ratio(flat['bytes'], flat['original_bytes'])} the uncloaked size on "
                         f"flat colour, {_ratio(paint['bytes'], paint['original_bytes'])} on a painting")
        else:
            lines.append(esc(p.summary))
        alt = f"{key}: a flat-colour crop, cloaked, at 100 %"
        img = f'<img src="{ex.image}" width="128" height="128" alt="{esc(alt)}">' if ex is not None else ""
        chosen_cls = " glz-chosen" if key == chosen else ""
        items = "".join(f"<li>{ln}</li>" for ln in lines)
        cards.append(f'<div class="glz-preset{chosen_cls}" data-preset="{esc(key)}">{img}<div>'
                     f"<h4>{esc(preset_label(key))}</h4><ul>{items}</ul></div></div>")
    why = PRESETS[chosen].why if chosen in PRESETS else ""
    note = ""
    if examples:
        original = ASSETS / "presets" / "original.png"
        uncloaked = ""
        if original.is_file():
            uri = "data:image/png;base64," + base64.b64encode(original.read_bytes()).decode("ascii")
            uncloaked = f'<img src="{uri}" width="128" height="128" alt="the same crop, uncloaked">'
        note = (f'<div class="glz-uncloaked">{uncloaked}<p class="glz-small">Left: the same crop uncloaked. '
                "Measured on a 256 px painting crop and a flat-colour one (its middle shown at 100 %); your own "
                "pictures' figures come with each result.</p></div>")
    return (f'<div class="glz-presets">{"".join(cards)}</div>'
            + (f'<p class="glz-why" id="glz-preset-why"><b>{esc(preset_label(chosen))}:</b> {esc(why)}</p>'
               if why else "")
            + note)


def render_written(options: MetadataOptions) -> str:
    """Exactly what goes into each cloaked file's metadata (:func:`glazeish.metadata.describe`)."""
    lines = describe(options)
    head = "Written into each cloaked file:" if options.enabled else "Nothing is added to the file."
    return (f'<div class="glz-written"><p>{esc(head)}</p>'
            f'<ul>{"".join(f"<li>{esc(line)}</li>" for line in lines)}</ul></div>')


def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")
