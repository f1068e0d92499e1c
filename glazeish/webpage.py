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
from .estimate import WARN_SECONDS
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
    export: str | None = None  # the JPEG/WebP copy, when that format was chosen
    export_name: str = ""
    export_label: str = ""  # "JPEG q90"
    export_bytes: int = 0
    export_survival: str | None = None  # the survival level of that format's re-save
    export_retained: float | None = None  # its share of the protection kept
    report: str | None = None  # the HTML report (in the ZIP)
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


@dataclass(frozen=True)
class Offer:
    """A smaller size to cloak at: its label, the "Cloak at" value that chooses it, the size and its time."""

    label: str
    value: str
    size: tuple[int, int]
    seconds: float


@dataclass(frozen=True)
class Forecast:
    """One upload's expected time on this computer, at the size it would be cloaked (``size``), and the posting
    sizes offered instead when that is long. ``measured``: the speed was measured here (else a first guess)."""

    size: tuple[int, int]
    seconds: float
    offers: list[Offer] = field(default_factory=list)
    measured: bool = True
    platform: bool = False  # the size is that of the sites ticked


def _eta(u: Upload, f: Forecast, preset: str) -> str:
    """The line under a checked upload: its expected time, and past a minute a warning with the offers."""
    at = "" if f.size == (u.width, u.height) else (f" at {'the site' if f.platform else 'posting'} size "
                                                  f"{f.size[0]}×{f.size[1]}")
    lead, value = ("Under", "5 s") if f.seconds < 5 else ("About", duration(f.seconds))
    line = (f'<span class="glz-eta">{lead} <b>{esc(value)}</b> on this computer with '
            f"{esc(preset)}{esc(at)}</span>")
    if f.seconds <= WARN_SECONDS:
        return line
    buttons = " ".join(f'<button type="button" class="glz-offer" data-glz-size="{esc(o.value)}">{esc(o.label)} '
                       f"({o.size[0]}×{o.size[1]}): about {esc(duration(o.seconds))}</button>" for o in f.offers)
    sites = "" if f.platform else " Or tick where you will post it: a site's own size is smaller still."
    offer = f" Cloak at a posting size instead: {buttons}." if buttons else ""
    return (f'{line}<span class="glz-warn" role="note">⚠ Over a minute. Sites show pictures smaller than this '
            f"anyway.{offer}{esc(sites)}</span>")


def render_checks(uploads: Sequence[Upload], forecasts: dict[str, Forecast] | None = None, preset: str = "default",
                  note: str | None = None) -> str:
    """The upload check: a thumbnail, size and expected time per picture (warning past a minute, with smaller
    sizes offered), one red line per file that is not one."""
    if not uploads:
        return ""
    forecasts = forecasts or {}
    rows = []
    for u in uploads:
        if u.ok:
            extra = " · transparent background kept" if u.alpha else ""
            f = forecasts.get(u.path)
            eta = f"<br>{_eta(u, f, preset)}" if f is not None else ""
            rows.append(f'<li class="glz-check glz-good"><img src="{u.thumb}" alt=""><span class="glz-what">'
                        f"<b>{esc(u.name)}</b><br><span class=\"glz-small\">{u.width}×{u.height} · {kb(u.bytes)}"
                        f"{extra}</span>{eta}</span></li>")
        else:
            rows.append(f'<li class="glz-check glz-bad" role="alert"><span class="glz-what">{esc(u.error)}</span></li>')
    guess = any(not f.measured for f in forecasts.values())
    foot = ("Times are a first guess at this computer's speed until a picture has been cloaked here; then they are "
            "measured." if guess else "")
    foot = note or foot
    foot_html = f'<p class="glz-small glz-eta-note">{esc(foot)}</p>' if foot else ""
    return f'<ul class="glz-checks" aria-label="Checked uploads">{"".join(rows)}</ul>{foot_html}'


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


def _downloads(r: ImageResult, i: int) -> str:
    """The card's download links: the chosen JPEG/WebP first when there is one, the PNG, the HTML report."""
    links = []
    if r.export:
        links.append(f'<a class="glz-dl" id="glz-download-export-{i}" href="{esc(file_url(r.export))}" '
                     f'download="{esc(r.export_name)}">Download {esc(r.export_name)}</a>')
    cls = "glz-dl glz-dl-2" if r.export else "glz-dl"
    links.append(f'<a class="{cls}" id="glz-download-{i}" href="{esc(file_url(r.cloaked))}" '
                 f'download="{esc(r.download_name)}">Download {esc(r.download_name)}</a>')
    if r.report:
        name = Path(r.report).name
        links.append(f'<a class="glz-dl-report" id="glz-report-{i}" href="{esc(file_url(r.report))}" '
                     f'download="{esc(name)}">Report (HTML)</a>')
    return " ".join(links)


def _export_note(r: ImageResult, i: int) -> str:
    """What the JPEG/WebP download keeps of the protection (its format's survival), next to the PNG's size."""
    if not r.export:
        return ""
    kept = ("none of the protection is measurable after it" if r.export_retained is None else
            f"about {max(0.0, r.export_retained) * 100:.0f} % of the protection remains in it")
    level = f" ({esc(r.export_survival)})" if r.export_survival else ""
    return (f'<p class="glz-export" id="glz-export-{i}">As {esc(r.export_label)} ({kb(r.export_bytes)}, the PNG '
            f"{kb(r.output_bytes)}): {esc(kept)}{level}. Measured with 4:2:0 colour, as sites save; the PNG keeps "
            "all of it.</p>")


def render_result(r: ImageResult, i: int) -> str:
    """One image's card: name, size and time, the verdicts, the two comparisons, the download."""
    if not r.ok:
        return (f'<div class="glz-card" id="glz-result-{i}"><h3>{esc(r.name)}</h3>'
                f'<p class="glz-error" id="glz-error-{i}" role="alert">⚠ Not cloaked: {esc(r.error)}</p></div>')
    sizes = f"{r.width}×{r.height} · cloaked in {duration(r.seconds)} · {kb(r.output_bytes)}"
    head = (f'<div class="glz-head"><div><h3>{esc(r.name)}</h3><span class="glz-meta-line">{esc(sizes)}</span></div>'
            f'<div class="glz-dls">{_downloads(r, i)}</div></div>{_export_note(r, i)}')
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


#: plain words for a share, nearest first
SHARES = ((0.0, "nothing"), (0.1, "a tenth"), (0.2, "a fifth"), (0.25, "a quarter"), (1 / 3, "a third"),
          (0.4, "two fifths"), (0.5, "half"), (0.6, "three fifths"), (2 / 3, "two thirds"), (0.75, "three quarters"),
          (0.8, "four fifths"), (0.9, "nine tenths"), (1.0, "all"))


def share_words(r: float | None) -> str:
    """``0.31`` -> ``about a third``: a share kept, in words (no per cent on a card)."""
    if r is None:
        return "nothing"
    r = min(1.0, max(0.0, r))
    return "about " + min(SHARES, key=lambda s: abs(s[0] - r))[1]


def _times(x: float, base: float) -> str:
    """How ``x`` compares with ``base`` in words: ``about half``, ``about the same``, ``about 1.4×``."""
    r = x / base if base else 1.0
    if abs(r - 1) < 0.1:
        return "about the same time as default"
    if abs(r - 0.5) < 0.08:
        return "about half default's time"
    return f"about {r:.1f}× default's time"


def _change(ex: PresetExample, base: PresetExample) -> str:
    """How much the picture is changed against default (the ratio of their RMS changes, from the PSNRs)."""
    ratio = sum(10 ** ((base.rows[c]["psnr"] - ex.rows[c]["psnr"]) / 20) for c in ("painting", "flat")) / 2
    if abs(ratio - 1) < 0.03:
        return "changes your picture as much as default"
    return f"changes your picture about {abs(ratio - 1) * 100:.0f} % {'less' if ratio < 1 else 'more'} than default"


def _versus(key: str, ex: PresetExample, base: PresetExample) -> str:
    """Where ``key`` keeps more or less of its protection after re-compression than default, per crop."""
    more, less = [], []
    for crop, where in (("painting", "on a painting"), ("flat", "on flat colour")):
        r, d = ex.rows[crop]["retained_jpeg75"] or 0.0, base.rows[crop]["retained_jpeg75"] or 0.0
        if r > d + 0.03:
            more.append(f"{where} ({share_words(r)} kept, default {share_words(d)})")
        elif r < d - 0.03:
            less.append(f"{where} ({share_words(r)} kept, default {share_words(d)})")
    parts = ([f"keeps more after re-compression {' and '.join(more)}"] if more else []) + \
            ([f"keeps less {' and '.join(less)}"] if less else [])
    return f"Against default, {key} " + ("; ".join(parts) if parts else "keeps about as much after re-compression") + "."


def why_default(examples: dict[str, PresetExample]) -> str:
    """Why default is recommended over fast, from their measured rows: what fast gains and what it gives up."""
    d, f = examples.get("default"), examples.get("fast")
    if d is None or f is None:
        return ""
    t = sum(f.rows[c]["seconds"] / d.rows[c]["seconds"] for c in ("painting", "flat")) / 2
    fp, dp = f.rows["painting"]["retained_jpeg75"] or 0.0, d.rows["painting"]["retained_jpeg75"] or 0.0
    ff, df = f.rows["flat"]["retained_jpeg75"] or 0.0, d.rows["flat"]["retained_jpeg75"] or 0.0
    gains = [_times(t, 1.0).replace("default's time", "the time")]
    if ff > df + 0.03:
        gains.append(f"keeps more on flat colour after re-compression ({share_words(ff)} against {share_words(df)})")
    if fp < dp - 0.03:
        return (f"Why default over fast: fast takes {' and '.join(gains)}, but on a painting it keeps less "
                f"({share_words(fp)} against {share_words(dp)}): it refines a pattern learned once in "
                f"{PRESETS['fast'].steps} steps, where default fits {PRESETS['default'].steps} steps to your picture. "
                "For paintings, default; for many flat-colour drawings in a hurry, fast.")
    return f"Fast takes {' and '.join(gains)}, and keeps about as much on a painting as default."


def _card_lines(key: str, ex: PresetExample, base: PresetExample | None) -> list[str]:
    """A card's plain lines: how much it changes the picture, how strong, what is kept, time."""
    paint, flat = ex.rows["painting"], ex.rows["flat"]
    lines = [f"<b>Protection:</b> {esc(paint['protection'])} on a painting, {esc(flat['protection'])} on flat colour",
             f"<b>Left after a site re-compresses it:</b> {share_words(paint['retained_jpeg75'])} on a painting, "
             f"{share_words(flat['retained_jpeg75'])} on flat colour"]
    if base is not None and key != "default":
        lines.insert(0, f"<b>Look:</b> {esc(flat['visibility'])}; {_change(ex, base)}")
        t = sum(ex.rows[c]["seconds"] / base.rows[c]["seconds"] for c in ("painting", "flat")) / 2
        lines.append(f"<b>Time:</b> {_times(t, 1.0)}")
    else:
        lines.insert(0, f"<b>Look:</b> {esc(flat['visibility'])}")
    return lines


def _numbers(ex: PresetExample, why: str) -> str:
    """The measured figures behind a card and how the preset works, one click away."""
    rows = "".join(
        f"<tr><td>{where}</td><td>{r['psnr']:.1f} dB</td><td>{(r['retained_jpeg75'] or 0) * 100:.0f} %</td>"
        f"<td>{r['seconds']:.1f} s</td><td>{_ratio(r['bytes'], r['original_bytes'])}</td></tr>"
        for where, r in (("painting", ex.rows["painting"]), ("flat colour", ex.rows["flat"])))
    return ('<details class="glz-numbers"><summary>The numbers</summary><table><tr><th>256 px crop</th>'
            "<th>PSNR (higher: less visible)</th><th>protection kept after JPEG q75</th><th>time here</th>"
            f"<th>PNG size vs uncloaked</th></tr>{rows}</table><p class=\"glz-small\">The PNG is larger because "
            "the cloak's fine grain does not compress; the download is still a PNG so the cloak stays exact.</p>"
            f'<p class="glz-small">How it works: {esc(why)}</p></details>')


def render_presets(chosen: str, examples: dict[str, PresetExample] | None = None) -> str:
    """The presets as cards an artist can choose from (a click anywhere on a card chooses it): in plain words
    how much each changes the picture, how strong it is and what survives a site's re-compression, measured on
    a painting crop and a flat-colour crop, against default; the numbers behind them one click away."""
    examples = preset_examples() if examples is None else examples
    base = examples.get("default")
    cards = []
    for key, p in PRESETS.items():
        ex = examples.get(key)
        lines = _card_lines(key, ex, base) if ex is not None else [esc(p.summary)]
        versus = ""
        if ex is not None and base is not None:
            versus = why_default(examples) if key == "default" else _versus(key, ex, base)
            versus = f'<p class="glz-vs">{esc(versus)}</p>' if versus else ""
        alt = f"{key}: a flat-colour crop, cloaked, at 100 %"
        img = f'<img src="{ex.image}" width="128" height="128" alt="{esc(alt)}">' if ex is not None else ""
        chosen_cls = " glz-chosen" if key == chosen else ""
        items = "".join(f"<li>{ln}</li>" for ln in lines)
        numbers = _numbers(ex, p.why) if ex is not None else ""
        cards.append(f'<div class="glz-preset{chosen_cls}" data-preset="{esc(key)}" role="button" tabindex="0" '
                     f'aria-pressed="{str(key == chosen).lower()}">{img}<div>'
                     f"<h4>{esc(preset_label(key))}</h4><ul>{items}</ul>{versus}{numbers}</div></div>")
    note = ""
    if examples:
        original = ASSETS / "presets" / "original.png"
        uncloaked = ""
        if original.is_file():
            uri = "data:image/png;base64," + base64.b64encode(original.read_bytes()).decode("ascii")
            uncloaked = f'<img src="{uri}" width="128" height="128" alt="the same crop, uncloaked">'
        note = (f'<div class="glz-uncloaked">{uncloaked}<p class="glz-small">Left: the same crop uncloaked. '
                "Measured on a 256 px painting crop and a flat-colour one (its middle shown at 100 %); your own "
                "pictures' figures come with each result. Click a card to choose it.</p></div>")
    return f'<div class="glz-presets">{"".join(cards)}</div>{note}'


def render_written(options: MetadataOptions) -> str:
    """Exactly what goes into each cloaked file's metadata (:func:`glazeish.metadata.describe`)."""
    lines = describe(options)
    head = "Written into each cloaked file:" if options.enabled else "Nothing is added to the file."
    return (f'<div class="glz-written"><p>{esc(head)}</p>'
            f'<ul>{"".join(f"<li>{esc(line)}</li>" for line in lines)}</ul></div>')


def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")
