"""The local web page: drop images, pick a strength, see what the cloak does, download the results.

``python webui.py`` runs :func:`main` and ``glazeish ui`` runs :func:`serve` (serve until Ctrl-C, then
clean up); :func:`launch` starts the page from Python, and :func:`build_app` returns the
:class:`gradio.Blocks` without starting it (tests, embedding).

The module has two halves. The first knows nothing about Gradio: :func:`cloak_batch` runs the same
job as ``glazeish protect`` (:meth:`glazeish.job.Cloaker.cloak_file`) over a batch of uploaded files and
yields one :class:`ImageResult` per image, errors included, with the preview images and the words of
:func:`glazeish.evaluation.judge`. The second half (:func:`build_app`) is the page: Gradio components
wired to that generator.

Nothing here optimises or measures anything: the cloak and its figures are the library's, exactly as on the CLI.
"""

import os

# Gradio reports usage to its servers unless told not to; an artist's machine may be offline, and a
# tool that protects their work should not phone home. Set before gradio is imported (below, lazily).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse
import logging
import shutil
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import PRESETS, ProtectConfig
from .encoders import ENCODERS, load_encoder, load_encoders
from .evaluation import Evaluator, judge
from .imageio import ImageError, save_image
from .job import Cloaker, Job
from .metadata import MetadataOptions
from .objectives import OBJECTIVES
from .protect import Protector
from .report import amplified_delta
from .weights import WeightsError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
#: The page's own limits (the CLI allows 64 MP): a CPU takes minutes per 10 MP, and a web upload is
#: less trusted than a file the artist names on the command line.
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_MAX_FILE_MB = 50
UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".webp"]
#: Job folders older than this are removed when a new job starts (Gradio keeps its own copies of
#: everything the page shows, see ``delete_cache`` in :func:`build_app`).
KEEP_SECONDS = 3600
PANE_HEIGHT = 320  # px; the slider above shows the image at up to full size
VIEW_DECODER = "taef2"  # the decoder that shows "what a model sees" when the attacked encoders have none


class Cancelled(Exception):
    """Raised from the step callback when the user pressed Cancel."""


# ------------------------------------------------------------------------------------------------
# settings, results, and the words for the figures


@dataclass
class Settings:
    """What the page's controls say. ``eps`` in 1/255 units; ``encoders`` a list of registered names."""

    intensity: str = "default"
    eps: float | None = None
    steps: int | None = None
    encoders: Sequence[str] = ("taef2",)
    objective: str | None = None
    target: str | None = None  # path of an uploaded target pattern
    seed: int = 0
    metadata: bool = True
    creator: str | None = None
    copyright: str | None = None

    def config(self, models_dir: str | None = None, device: str = "auto", precision: str = "auto") -> ProtectConfig:
        """The :class:`ProtectConfig` these settings mean (raises ``ValueError`` on a bad value)."""
        encoders = [e for e in self.encoders if e]
        if not encoders:
            raise ValueError("choose at least one encoder (under Advanced)")
        return ProtectConfig(
            intensity=self.intensity, eps_levels=self.eps, steps=None if self.steps is None else int(self.steps),
            objective=self.objective or None, encoder=",".join(encoders), target=self.target,
            seed=int(self.seed or 0), device=device, precision=precision, models_dir=models_dir,
        )

    def job(self, models_dir: str | None = None, device: str = "auto", precision: str = "auto",
            max_pixels: int = DEFAULT_MAX_PIXELS) -> Job:
        """The :class:`~glazeish.job.Job` of these settings: PNG out, figures with JPEG q75 survival."""
        config = self.config(models_dir, device, precision)
        return Job(config=config, meta=self.metadata_options(config), fmt="png", evaluate=True, purify=("jpeg75",),
                   max_pixels=max_pixels)

    def metadata_options(self, config: ProtectConfig) -> MetadataOptions:
        p = PRESETS[self.intensity]
        # name the preset only when its values were used, so the file's note does not mislead
        same = (config.eps_levels, config.steps, config.objective) == (p.eps_levels, p.steps, p.objective)
        return MetadataOptions(
            enabled=bool(self.metadata), creator=(self.creator or "").strip() or None,
            copyright=(self.copyright or "").strip() or None, preset=self.intensity if same else "custom",
        )


@dataclass
class ImageResult:
    """One uploaded image after a run: paths of the PNGs the page shows, figures, or an error.

    ``cloaked`` is the download (``<stem>.protected.png``, the input's size, alpha kept); ``original``
    the upright input as PNG; ``difference`` the amplified δ; ``view_original`` / ``view_cloaked`` the
    decoder round trips ``D(E(x))``. Plain strings and dicts, so a list of them sits in ``gr.State``.
    """

    name: str  # the uploaded file's name
    download_name: str = ""
    width: int = 0
    height: int = 0
    original: str | None = None
    cloaked: str | None = None
    difference: str | None = None
    view_original: str | None = None
    view_cloaked: str | None = None
    view_model: str | None = None
    eps: float | None = None  # the budget used, 1/255 units
    figures: dict = field(default_factory=dict)  # Figures.to_dict()
    verdicts: list[str] = field(default_factory=list)  # judge(figures).sentences
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def describe_figures(sentences: Sequence[str]) -> str:
    """Markdown for the verdict sentences of :func:`glazeish.evaluation.judge`: the topic in bold."""
    out = []
    for line in sentences:
        head, sep, rest = line.partition(": ")
        out.append(f"**{md_escape(head)}:** {md_escape(rest)}" if sep else md_escape(line))
    return "\n\n".join(out)


def unique_names(names: Sequence[str], suffix: str = ".protected.png") -> list[str]:
    """``<stem><suffix>`` per upload, numbered (``a-2.protected.png``) where two stems collide."""
    out, seen = [], set()
    for name in names:
        stem = Path(name).stem or "image"
        cand, k = f"{stem}{suffix}", 1
        while cand.lower() in seen:
            k += 1
            cand = f"{stem}-{k}{suffix}"
        seen.add(cand.lower())
        out.append(cand)
    return out


def make_zip(files: Sequence[str | Path], dest: str | Path) -> Path:
    """Store ``files`` (already-compressed PNGs: no deflate) flat in ``dest``; returns ``dest``."""
    dest = Path(dest)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as z:
        for f in files:
            z.write(f, arcname=Path(f).name)
    return dest


def friendly_error(err: BaseException, path: str | Path | None = None, name: str | None = None) -> str:
    """One readable line for the page: no traceback, and the upload's name instead of its temp path."""
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    if path is not None and name:
        msg = msg.replace(str(path), name)
    if isinstance(err, MemoryError) or "out of memory" in msg.lower():
        return f"{name or 'image'}: not enough memory for an image this large; try a smaller one"
    if isinstance(err, WeightsError):
        return f"model weights are missing or damaged: {msg}"
    return msg


# ------------------------------------------------------------------------------------------------
# models, once


class ProtectorCache:
    """One :class:`~glazeish.job.Cloaker` per job, and one loaded encoder set per encoder spec.

    Loading weights is the slow part, so ensembles are shared between jobs that differ only in eps, steps,
    objective, seed, target or metadata. Both caches are small LRUs keyed by fingerprints; ``lock`` serialises
    the heavy work so that one job (or a cancelled job's last step) never overlaps another.
    """

    def __init__(self, max_protectors: int = 8, max_ensembles: int = 2):
        self.max_protectors, self.max_ensembles = max_protectors, max_ensembles
        self._cloakers: OrderedDict[str, Cloaker] = OrderedDict()
        self._ensembles: OrderedDict[tuple, object] = OrderedDict()
        self._viewers: dict[tuple, Evaluator] = {}
        self.lock = threading.RLock()
        self.loads = 0  # how many times weights were loaded (tests check the cache works)

    def get(self, job: Job) -> Cloaker:
        config = job.config.resolved()
        key = job.key("", "")
        with self.lock:
            if key in self._cloakers:
                self._cloakers.move_to_end(key)
                return self._cloakers[key]
            ens_key = (config.encoder, config.models_dir, config.device)
            ensemble = self._ensembles.get(ens_key)
            if ensemble is None:
                ensemble = load_encoders(config.encoder, config.models_dir, config.device)
                self.loads += 1
                self._ensembles[ens_key] = ensemble
                while len(self._ensembles) > self.max_ensembles:
                    self._ensembles.popitem(last=False)
            else:
                self._ensembles.move_to_end(ens_key)
            cloaker = Cloaker(job, Protector(config, ensemble=ensemble))
            self._cloakers[key] = cloaker
            while len(self._cloakers) > self.max_protectors:
                self._cloakers.popitem(last=False)
            return cloaker

    def viewer(self, cloaker: Cloaker) -> Evaluator:
        """What draws "what a model sees": the attacked encoders' first decoder, else taef2's."""
        if cloaker.evaluator.mimic is not None:
            return cloaker.evaluator
        config = cloaker.protector.config
        key = (VIEW_DECODER, config.models_dir, str(cloaker.protector.device))
        with self.lock:
            if key not in self._viewers:
                model = load_encoder(VIEW_DECODER, config.models_dir).to(cloaker.protector.device)
                self._viewers[key] = Evaluator([model])
                self.loads += 1
            return self._viewers[key]


class Workspace:
    """A private temp folder for this server's job outputs, pruned by age and removed on exit."""

    def __init__(self, root: str | Path | None = None, keep_seconds: float = KEEP_SECONDS):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="glazeish-ui-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep_seconds = keep_seconds

    def new_job(self) -> Path:
        self.prune()
        return Path(tempfile.mkdtemp(prefix="job-", dir=self.root))

    def prune(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for d in self.root.glob("job-*"):
            try:
                if now - d.stat().st_mtime > self.keep_seconds:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# the job

ProgressFn = Callable[[float, str], None]  # (fraction in [0, 1], description)


@dataclass
class BatchUpdate:
    """What :func:`cloak_batch` yields: every image so far, the ZIP once all are done, a status line."""

    results: list[ImageResult]
    zip_path: str | None = None
    status: str = ""
    done: bool = False


def _save_png(path: Path, rgb: np.ndarray, alpha: np.ndarray | None = None) -> str:
    save_image(path, rgb, alpha, metadata=MetadataOptions(enabled=False))
    return str(path)


def cloak_one(
    cloaker: Cloaker,
    viewer: Evaluator,
    path: str | Path,
    name: str,
    download_name: str,
    outdir: Path,
    *,
    max_bytes: int | None = DEFAULT_MAX_FILE_MB * 1_000_000,
    callback=None,
) -> ImageResult:
    """Cloak one uploaded file into ``outdir`` with the one job path; any failure is returned as
    ``ImageResult.error``."""
    res = ImageResult(name=name, download_name=download_name)
    path = Path(path)
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise ImageError(f"{name}: {size / 1e6:.1f} MB is over this page's upload limit of "
                             f"{max_bytes / 1e6:.0f} MB")
        sub = outdir / f"{len(list(outdir.iterdir())):03d}"  # one folder per image: names stay the user's
        sub.mkdir()
        cloaked = sub / download_name
        done = cloaker.cloak_file(path, cloaked, callback=callback)
        art, rgb = done.art, done.rgb
        res.width, res.height = art.size
        stem = download_name.removesuffix(".protected.png")
        res.cloaked = str(cloaked)
        res.original = _save_png(sub / f"{stem}.original.png", art.rgb, art.alpha)
        eps = cloaker.protector.config.eps_levels
        res.difference = _save_png(sub / f"{stem}.difference.png", amplified_delta(art.rgb, rgb, eps))
        res.view_model = viewer.mimic.name
        for which, view in zip(("original", "cloaked"), viewer.views(art.rgb, rgb)):
            setattr(res, f"view_{which}", _save_png(sub / f"{stem}.model-view-{which}.png", view))
        res.figures = done.figures.to_dict() if done.figures else {}
        res.verdicts = judge(done.figures).sentences if done.figures else []
        res.eps = float(eps)
        res.seconds = done.seconds
    except Cancelled:
        raise
    except (ImageError, WeightsError, ValueError, OSError, RuntimeError, MemoryError) as e:
        res.error = friendly_error(e, path, name)
        log.warning("web UI: %s failed: %s", name, res.error)
    return res


def cloak_batch(
    files: Sequence[str | Path],
    settings: Settings,
    *,
    cache: ProtectorCache,
    workspace: Workspace,
    models_dir: str | None = None,
    names: Sequence[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_FILE_MB * 1_000_000,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> Iterator[BatchUpdate]:
    """Cloak uploaded ``files`` one by one, yielding a :class:`BatchUpdate` after each.

    A file that fails (corrupt, too large) becomes an error row and the others still complete; a
    setting or weight problem that stops every image becomes one error row per file. Setting
    ``cancel`` stops at the next optimisation step with :class:`Cancelled`.
    """
    files = [str(f) for f in files]
    names = list(names) if names is not None else [Path(f).name for f in files]
    downloads = unique_names(names)
    results: list[ImageResult] = []
    if not files:
        yield BatchUpdate(results, status="Add one or more images first (PNG, JPEG or WebP).", done=True)
        return
    say = progress or (lambda frac, desc: None)
    say(0.0, "Loading the models…")
    try:
        cloaker = cache.get(settings.job(models_dir, device, precision, max_pixels))
        viewer = cache.viewer(cloaker)
    except (ImageError, WeightsError, ValueError, OSError, RuntimeError) as e:
        msg = friendly_error(e, settings.target, "target pattern")
        results = [ImageResult(name=n, download_name=d, error=msg) for n, d in zip(names, downloads)]
        yield BatchUpdate(results, status=f"Nothing was cloaked: {msg}", done=True)
        return
    outdir = workspace.new_job()
    n = len(files)
    for i, (f, name, dl) in enumerate(zip(files, names, downloads)):

        def step(s, i=i, name=name) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            tile = f", part {s.tile}/{s.tiles}" if s.tiles > 1 else ""
            say((i + s.done / max(s.total, 1)) / n, f"{name} ({i + 1}/{n}): step {s.step}/{s.steps}{tile}")

        say(i / n, f"{name} ({i + 1}/{n}): starting")
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        with cache.lock:
            results.append(cloak_one(cloaker, viewer, f, name, dl, outdir, max_bytes=max_bytes, callback=step))
        if i + 1 < n:
            yield BatchUpdate(list(results), status=_status(results, n))
    good = [r.cloaked for r in results if r.ok]
    zip_path = str(make_zip(good, outdir / "glazeish-protected.zip")) if good else None
    say(1.0, "Done")
    yield BatchUpdate(list(results), zip_path=zip_path, status=_status(results, n, done=True), done=True)


def md_escape(text: str) -> str:
    """Backslash-escape Markdown and HTML specials in user-given text (file names, error lines)."""
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+!|~" else c for c in str(text))


def _status(results: list[ImageResult], total: int, done: bool = False) -> str:
    ok = sum(r.ok for r in results)
    bad = [r for r in results if not r.ok]
    head = f"{ok} of {total} image{'s' if total != 1 else ''} cloaked"
    head += "." if done else f"; {total - len(results)} to go…"
    for r in bad:
        head += f"\n\n- ⚠️ **{md_escape(r.name)}** could not be cloaked: {md_escape(r.error)}"
    return head


# ------------------------------------------------------------------------------------------------
# the page

INTRO = """# glazeish — cloak your artwork
Drop images, pick a strength, press **Cloak**. Each result shows the original next to the cloaked
image, the change made visible, and **what an AI model sees**: the image after the model's encoder
and decoder, which is what a model fine-tuned on your work would learn to reproduce.
Everything runs on this computer; nothing is uploaded anywhere else."""

CSS = """
.glz-error { color: var(--error-text-color, #b91c1c); }
/* small images fill their pane, with hard pixels so the amplified change stays readable */
.glz-pane img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
"""


def _intensity_choices() -> list[tuple[str, str]]:
    return [(f"{k} — {p.summary}", k) for k, p in PRESETS.items()]


def build_app(
    models_dir: str | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    device: str = "auto",
    precision: str = "auto",
    cache: ProtectorCache | None = None,
    workspace: Workspace | None = None,
):
    """The page as a :class:`gradio.Blocks` (queued: one cloaking job at a time, others wait in line)."""
    gr = _gradio()

    cache = cache or ProtectorCache()
    workspace = workspace or Workspace()
    cancel_flags: dict[str, threading.Event] = {}
    encoder_names = [n for n, entry in ENCODERS.items() if entry.weights]
    max_bytes = int(max_file_mb * 1_000_000)

    def preset_values(intensity: str):
        p = PRESETS[intensity]
        return p.eps_levels, p.steps, p.objective

    def run(files, intensity, eps, steps, encoders, objective, target, seed, metadata, creator, copyright_,
            request: gr.Request, progress=gr.Progress()):  # noqa: B008 (how Gradio injects a progress bar)
        session = getattr(request, "session_hash", None) or "local"
        flag = cancel_flags[session] = threading.Event()  # a fresh flag per job: Cancel stops this one
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        settings = Settings(intensity=intensity, eps=eps, steps=steps, encoders=list(encoders or []),
                            objective=objective, target=target or None, seed=int(seed or 0), metadata=metadata,
                            creator=creator, copyright=copyright_)
        yield [], "", gr.DownloadButton(visible=False)  # clear the previous run's results
        try:
            for update in cloak_batch(paths, settings, cache=cache, workspace=workspace, models_dir=models_dir,
                                      max_pixels=max_pixels, max_bytes=max_bytes, device=device,
                                      precision=precision, cancel=flag,
                                      progress=lambda frac, desc: progress(frac, desc=desc)):
                rows = [asdict(r) for r in update.results]
                zip_btn = gr.DownloadButton(value=update.zip_path, visible=update.zip_path is not None)
                yield rows, update.status, zip_btn
        except Cancelled:
            log.info("web UI: job cancelled; the optimisation stopped")
            yield gr.skip(), "Cancelled.", gr.skip()
        except Exception as e:  # never a traceback in the page; the console keeps it
            log.exception("web UI job failed")
            yield gr.skip(), f"⚠️ Something went wrong: {md_escape(friendly_error(e))}", gr.skip()
        finally:
            if cancel_flags.get(session) is flag:
                del cancel_flags[session]

    def request_cancel(request: gr.Request):
        flag = cancel_flags.get(getattr(request, "session_hash", None) or "local")
        if flag is not None:
            flag.set()
        return "Cancelled; images finished before that are kept below."

    with gr.Blocks(title="glazeish", delete_cache=(1800, KEEP_SECONDS)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                files = gr.File(label=f"Images (PNG, JPEG or WebP; up to {max_file_mb:g} MB and "
                                f"{max_pixels / 1e6:g} megapixels each)", file_count="multiple",
                                file_types=UPLOAD_TYPES, elem_id="glz-files")
                with gr.Row():
                    run_btn = gr.Button("Cloak", variant="primary", elem_id="glz-run")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="glz-cancel")
                status = gr.Markdown(elem_id="glz-status", min_height=64, container=True)
                zip_btn = gr.DownloadButton("Download all (ZIP)", visible=False, elem_id="glz-zip")
            with gr.Column(scale=2):
                intensity = gr.Radio(_intensity_choices(), value="default", label="Intensity", elem_id="glz-intensity")
                with gr.Accordion("Advanced", open=False, elem_id="glz-advanced"):
                    p = PRESETS["default"]
                    eps = gr.Slider(0.5, 16, value=p.eps_levels, step=0.5, label="Budget eps (1/255 per colour value)",
                                    elem_id="glz-eps")
                    steps = gr.Slider(1, 200, value=p.steps, step=1, label="Optimisation steps", elem_id="glz-steps")
                    encoders = gr.CheckboxGroup(encoder_names, value=["taef2"], label="Encoders to attack",
                                                info="; ".join(f"{n}: {ENCODERS[n].description}"
                                                               for n in encoder_names),
                                                elem_id="glz-encoders")
                    objective = gr.Dropdown([(f"{k} — {c.description}", k) for k, c in OBJECTIVES.items()],
                                            value=p.objective, label="Objective", elem_id="glz-objective")
                    target = gr.File(label="Target / decoy pattern (optional; default: built-in pattern)",
                                     file_types=UPLOAD_TYPES, elem_id="glz-target")
                    seed = gr.Number(0, precision=0, label="Seed", elem_id="glz-seed")
                    metadata = gr.Checkbox(True, label="Write a 'no AI training' notice into the file's metadata")
                    creator = gr.Textbox(label="Your name (metadata, optional)")
                    copyright_ = gr.Textbox(label="Copyright notice (metadata, optional)")
        results = gr.State([])

        intensity.change(preset_values, intensity, [eps, steps, objective], queue=False)
        run_event = run_btn.click(
            run, [files, intensity, eps, steps, encoders, objective, target, seed, metadata, creator, copyright_],
            [results, status, zip_btn], concurrency_limit=1, concurrency_id="cloak", show_progress_on=[status],
        )
        cancel_btn.click(request_cancel, None, status, queue=False, cancels=[run_event])

        @gr.render(inputs=results)
        def show(rows):
            for i, row in enumerate(rows or []):
                r = ImageResult(**row)
                with gr.Group(elem_id=f"glz-result-{i}", elem_classes="glz-result"):
                    size = f" — {r.width}×{r.height}" if r.width else ""
                    gr.Markdown(f"### {md_escape(r.name)}{size}")
                    if not r.ok:
                        gr.Markdown(f"⚠️ **Could not cloak this image:** {md_escape(r.error)}",
                                    elem_classes="glz-error", elem_id=f"glz-error-{i}")
                        continue
                    gr.ImageSlider((r.original, r.cloaked), label="Original ↔ cloaked (drag the handle)",
                                   format="png", max_height=640, interactive=False, buttons=["fullscreen"],
                                   elem_id=f"glz-slider-{i}")
                    gr.Markdown(f"Left: the change itself, amplified {127.5 / max(r.eps or 1, 1):.0f}× (grey = "
                                f"unchanged). Middle and "
                                f"right: **what an AI model sees**, the image after the {r.view_model} encoder and "
                                "decoder, i.e. what a model trained on it would learn to reproduce.")
                    pane = {"format": "png", "height": PANE_HEIGHT, "interactive": False,
                            "buttons": ["download", "fullscreen"], "elem_classes": "glz-pane"}
                    with gr.Row():
                        gr.Image(r.difference, label="Change, amplified", **pane,
                                 elem_id=f"glz-diff-{i}")
                        gr.Image(r.view_original, label="Model sees: original", **pane,
                                 elem_id=f"glz-view-original-{i}")
                        gr.Image(r.view_cloaked, label="Model sees: cloaked", **pane,
                                 elem_id=f"glz-view-cloaked-{i}")
                    gr.Markdown(describe_figures(r.verdicts), elem_id=f"glz-figures-{i}")
                    gr.DownloadButton(f"Download {r.download_name}", r.cloaked, elem_id=f"glz-download-{i}")

    demo.glazeish_workspace = workspace  # for launch() to clean up, and tests
    demo.glazeish_cache = cache
    return demo


def launch(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    share: bool = False,
    models_dir: str | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    device: str = "auto",
    precision: str = "auto",
    open_browser: bool = False,
    block: bool = True,
):
    """Start the page on ``http://host:port`` (127.0.0.1 unless told otherwise). ``share`` asks Gradio
    for a public link (needs the internet; anyone with the link can use the page). With
    ``block=False`` returns the running :class:`gradio.Blocks` (call ``.close()`` when done)."""
    import atexit

    demo = build_app(models_dir, max_pixels=max_pixels, max_file_mb=max_file_mb, device=device, precision=precision)
    atexit.register(demo.glazeish_workspace.cleanup)
    demo.queue(max_size=64, default_concurrency_limit=4)
    demo.launch(
        server_name=host, server_port=port, share=share, inbrowser=open_browser, prevent_thread_lock=not block,
        max_file_size=f"{int(max_file_mb * 1000)}kb", show_error=False, ssr_mode=False, run_history=False,
        footer_links=["settings"], theme=_theme(), css=CSS, quiet=False,
    )
    if block:
        demo.glazeish_workspace.cleanup()
    return demo


def _gradio():
    try:
        import gradio
    except ImportError:
        raise RuntimeError("the web UI needs gradio: pip install 'glazeish[ui]'") from None
    return gradio


def _theme():
    gr = _gradio()

    # system fonts only: nothing fetched from font servers
    return gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="webui.py", description="glazeish web UI: cloak images from a local web page.")
    ap.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default 127.0.0.1: this computer only; "
                    "0.0.0.0 opens it to your network)")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    ap.add_argument("--share", action="store_true", help="also make a public gradio.live link (needs the internet)")
    ap.add_argument("--models", default=None, help="folder with the encoder weights (default: $GLAZEISH_MODELS, "
                    "then the download cache)")
    ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    ap.add_argument("--max-file-mb", type=float, default=DEFAULT_MAX_FILE_MB, help="refuse larger uploads")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    ap.add_argument("--precision", default="auto", help="auto (fastest measured here), fp32, bf16 or fp16")
    ap.add_argument("--open", action="store_true", help="open the page in the default browser")
    return ap.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, share: bool = False, models_dir: str | None = None, **options
) -> None:
    """Serve the page until Ctrl-C or SIGTERM, then remove its temp files: what ``webui.py`` and
    ``glazeish ui`` run. ``options`` are :func:`launch`'s keyword options (``max_pixels``, ``device``, …).
    A missing gradio or a taken port ends with one line, not a traceback."""
    import signal

    # SIGTERM (kill, systemd, a test harness) ends like Ctrl-C, so the temp files are removed
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    if share or host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the page is reachable from other machines (%s); anyone who can reach it can use it",
                    "public share link" if share else f"--host {host}")
    try:
        launch(host, port, share, models_dir, **options)
    except OSError as e:  # port taken, address not available
        log.debug("launch failed: %s", e)
        raise SystemExit(f"glazeish ui: error: cannot listen on {host}:{port} (in use, or not an address of this "
                         "computer); choose another with --port / --host") from None
    except RuntimeError as e:  # gradio missing
        raise SystemExit(f"glazeish ui: error: {str(e).splitlines()[0]}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """``python webui.py [--host H] [--port P] [--share] ...``."""
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve(a.host, a.port, a.share, a.models, max_pixels=a.max_pixels, max_file_mb=a.max_file_mb, device=a.device,
          precision=a.precision, open_browser=a.open)
