"""The batch runner: :func:`cloak_batch` runs the same job as ``glazeish protect``
(:meth:`glazeish.job.Cloaker.cloak_file`) over the uploads and yields a :class:`BatchUpdate` after each image, errors
included; :func:`cloak_one` cloaks one upload and writes what the page shows of it (previews, the words of
:func:`glazeish.evaluation.judge`, the JPEG/WebP export and the HTML report); the ZIP of them all; and the
:class:`Workspace`, the private temp folder they are written in.

Nothing here knows about Gradio or optimises anything itself: the cloak and its figures are the library's, exactly
as on the CLI. The job's time is planned from this computer's measured speed (:mod:`glazeish.estimate`) and
followed in a :class:`~glazeish.ui.progress.Progress`; setting the ``cancel`` event stops the job at its next
optimisation step.
"""

import logging
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import ProtectConfig
from ..estimate import SpeedBook, Work, plan, work
from ..evaluation import Evaluator, judge
from ..imageio import FORMATS, ImageError, _atomic_write, save_image
from ..job import Cloaker, Job
from ..metadata import MetadataOptions
from ..protect import Step
from ..purify import PURIFICATIONS
from ..report import amplified_delta
from ..webpage import ImageResult, plural
from ..weights import WeightsError
from .models import ProtectorCache
from .progress import Progress
from .settings import (
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MAX_PIXELS,
    SURVIVAL_PURIFICATION,
    Settings,
    export_label,
    export_purification,
)
from .uploads import _preview, friendly_error, unique_names

log = logging.getLogger(__package__)  # "glazeish.ui": one logger for the whole page

#: Job folders older than this are removed when a new job starts (Gradio keeps its own copies of
#: everything the page shows, see ``delete_cache`` in :func:`build_app`).
KEEP_SECONDS = 3600


class Cancelled(BaseException):
    """Raised from the step callback when the user pressed Cancel (or the page went away).

    A ``BaseException``, like ``KeyboardInterrupt``: a cancel is not a failure, so it must pass through
    :meth:`Cloaker.cloak_file`, which turns every ``Exception`` into a one-line error about the file.
    """


class Workspace:
    """A private temp folder for this server's job outputs, pruned by age and removed on exit."""

    def __init__(self, root: str | Path | None = None, keep_seconds: float = KEEP_SECONDS):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="glazeish-ui-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
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


@dataclass
class BatchUpdate:
    """What :func:`cloak_batch` yields: every image so far, the ZIP of those cloaked once the batch ends (also
    when cancelled), and a status line."""

    results: list[ImageResult]
    zip_path: str | None = None
    status: str = ""
    done: bool = False
    cancelled: bool = False
    not_cloaked: list[str] = field(default_factory=list)  # cancelled: the names left, with where each stopped


def _save_png(path: Path, rgb: np.ndarray, alpha: np.ndarray | None = None) -> str:
    save_image(path, _preview(rgb, alpha), metadata=MetadataOptions(enabled=False))
    return str(path)


def _export_name(download_name: str, fmt: str) -> str:
    """``<stem>.protected.png`` -> ``<stem>.protected.jpg`` / ``.webp``."""
    return download_name.removesuffix(".png") + FORMATS[fmt][1]


def _previews(res: ImageResult, sub: Path, stem: str, art, rgb: np.ndarray, viewer: Evaluator,
              eps: float) -> list[np.ndarray]:
    """The page's PNG previews: the upright input, the cloak over the checkerboard (transparent inputs), the
    amplified change and what the model sees of each (returned too: the report shows them)."""
    res.original = _save_png(sub / f"{stem}.original.png", art.rgb, art.alpha)
    if art.alpha is not None:
        res.cloaked_preview = _save_png(sub / f"{stem}.cloaked-preview.png", rgb, art.alpha)
    res.difference = _save_png(sub / f"{stem}.difference.png", amplified_delta(art.rgb, rgb, eps), art.alpha)
    res.view_model = viewer.mimic.name
    views = viewer.views(art.rgb, rgb)
    for which, view in zip(("original", "cloaked"), views):
        setattr(res, f"view_{which}", _save_png(sub / f"{stem}.model-view-{which}.png", view, art.alpha))
    return views


def _judged(res: ImageResult, figures, export: str | None) -> None:
    """The verdict's words and levels, and what the export format keeps (its purification's share)."""
    verdict = judge(figures)
    res.figures = figures.to_dict()
    res.verdicts = verdict.sentences
    res.visibility, res.protection = verdict.visibility, verdict.protection
    res.survival = verdict.survival.get(SURVIVAL_PURIFICATION)
    if export:
        key = PURIFICATIONS.build(export).name
        res.export_survival = verdict.survival.get(key)
        res.export_retained = figures.summary.retained.get(key)


def _extras(res: ImageResult, cloaker: Cloaker, done, sub: Path, settings: Settings | None,
            views: Sequence[np.ndarray]) -> None:
    """The export copy (JPEG/WebP at the chosen quality, metadata as in the PNG) and the HTML report, both
    written atomically next to the download."""
    job, art = cloaker.job, done.art
    if settings is not None and settings.export != "png":
        dest = sub / _export_name(res.download_name, settings.export)
        save_image(dest, done.rgb, art.alpha, art.source, job.meta, settings.export, settings.export_quality())
        res.export, res.export_name, res.export_bytes = str(dest), dest.name, dest.stat().st_size
        res.export_label = export_label(settings.export, settings.export_quality())
    if done.figures is not None:
        from ..report import report_path, write_report

        path = write_report(report_path(res.cloaked), art.rgb, done.rgb, done.figures, views=views,
                            title=f"glazeish: {res.name}", alpha=art.alpha)
        res.report = str(path)


def cloak_one(
    cloaker: Cloaker,
    viewer: Evaluator,
    path: str | Path,
    name: str,
    download_name: str,
    outdir: Path,
    *,
    max_bytes: int | None = DEFAULT_MAX_FILE_MB * 1_000_000,
    preset: str = "",
    callback=None,
    on_phase=None,
    settings: Settings | None = None,
) -> tuple[ImageResult, float, float]:
    """Cloak one uploaded file into ``outdir`` with the one job path; any failure is returned as
    ``ImageResult.error``. Also returns the seconds of the cloak and of everything after it that the page
    calls checking the result (figures, previews, export and report: what the progress plans for)."""
    res = ImageResult(name=name, download_name=download_name, preset=preset)
    path = Path(path)
    t0 = time.perf_counter()
    marks: dict[str, float] = {}

    def phase(what: str) -> None:
        marks.setdefault(what, time.perf_counter())
        if on_phase is not None:
            on_phase(what)

    try:
        res.input_bytes = size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise ImageError(f"{name}: {size / 1e6:.1f} MB is over this page's upload limit of "
                             f"{max_bytes / 1e6:.0f} MB")
        sub = outdir / f"{len(list(outdir.iterdir())):03d}"  # one folder per image: names stay the user's
        sub.mkdir()
        cloaked = sub / download_name
        done = cloaker.cloak_file(path, cloaked, callback=callback, on_phase=phase)
        res.width, res.height = done.art.size
        res.cloaked, res.output_bytes = str(cloaked), cloaked.stat().st_size
        eps = cloaker.protector.config.eps_levels
        views = _previews(res, sub, download_name.removesuffix(".protected.png"), done.art, done.rgb, viewer, eps)
        if done.figures is not None:
            _judged(res, done.figures, export_purification(settings))
        _extras(res, cloaker, done, sub, settings, views)
        res.eps = float(eps)
        res.seconds = time.perf_counter() - t0
        checked = time.perf_counter() - marks.get("figures", marks.get("write", time.perf_counter()))
        return res, done.seconds, checked
    except Cancelled:
        raise
    except (ImageError, WeightsError, ValueError, OSError, RuntimeError, MemoryError) as e:
        res.error = friendly_error(e, path, name)
        log.warning("web UI: %s failed: %s", name, res.error)
    res.seconds = time.perf_counter() - t0
    return res, 0.0, 0.0


def speed_key(config: ProtectConfig) -> str:
    """Which measured speed applies: the device, precision, encoders and whether the steps go through a
    simulated re-save (those decide a step's cost; eps, seed and the like do not)."""
    c = config.resolved()
    return f"{c.device}/{c.precision}/{c.encoder}/{'eot' if c.robust else 'plain'}"


def job_work(job: Job, width: int, height: int) -> Work:
    """The work of one upload of ``width × height`` under ``job`` (at the size it is cloaked)."""
    c = job.config
    w, h = job.posting_size(width, height)
    return work(w, h, c.steps, tile=c.tile, overlap=c.overlap, figure_tiles=job.figure_tiles, figures=job.evaluate)


def _size_of(path: str | Path) -> tuple[int, int]:
    """An image's size from its header (for planning only: a file that cannot be read fails later, in words)."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return 1, 1


def _load(cache: ProtectorCache, job: Job, book: SpeedBook, key: str) -> tuple[Cloaker, Evaluator]:
    """The job's cloaker and viewer, timing any weights that had to be loaded (the next estimate knows)."""
    loads, t0 = cache.loads, time.perf_counter()
    cloaker = cache.get(job)
    viewer = cache.viewer(cloaker)
    if cache.loads > loads:
        book.record(key, "load", 1, time.perf_counter() - t0)
    return cloaker, viewer


def cloak_batch(
    files: Sequence[str | Path],
    settings: Settings,
    *,
    cache: ProtectorCache,
    workspace: Workspace,
    models_dir: str | None = None,
    names: Sequence[str] | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_FILE_MB * 1_000_000,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    device: str = "auto",
    precision: str = "auto",
    book: SpeedBook | None = None,
) -> Iterator[BatchUpdate]:
    """Cloak uploaded ``files`` one by one, yielding a :class:`BatchUpdate` after each.

    A file that fails (corrupt, too large) becomes an error row and the others still complete; a setting or
    weight problem that stops every image becomes one error row per file. ``sizes`` (per file, from the upload
    check; read from the headers when not given) plan the time in ``progress`` (created when not given) from
    ``book``'s measured speed, which every image refines. Setting ``cancel`` stops the current image at its next
    optimisation step (or before its figures): the last update is then ``cancelled``, lists what was not
    cloaked, and zips what was.
    """
    files = [str(f) for f in files]
    names = list(names) if names is not None else [Path(f).name for f in files]
    downloads = unique_names(names)
    if not files:
        yield BatchUpdate([], status="Add one or more pictures first (PNG, JPEG or WebP).", done=True)
        return
    book = book or SpeedBook()
    tracker = progress or Progress(names)
    tracker.set_phase("load")
    try:
        job = settings.job(models_dir, device, precision, max_pixels)
        key = speed_key(job.config)
        works = [job_work(job, w, h) for w, h in (sizes or [_size_of(f) for f in files])]
        tracker.tiles = [w.tiles for w in works]
        tracker.replan([plan(w, book, key) for w in works])
        cloaker, viewer = _load(cache, job, book, key)
    except (ImageError, WeightsError, ValueError, OSError, RuntimeError) as e:
        msg = friendly_error(e, settings.target, "target pattern")
        tracker.set_phase("done")
        yield BatchUpdate([ImageResult(name=nm, download_name=d, error=msg) for nm, d in zip(names, downloads)],
                          status=f"Nothing was cloaked: {msg}", done=True)
        return
    yield from _run_images(files, names, downloads, settings, cloaker, viewer, cache, workspace, tracker, cancel,
                           max_bytes, lambda i, cloak_s, check_s: _learn(book, key, works, tracker, i, cloak_s,
                                                                         check_s))


def _learn(book: SpeedBook, key: str, works: Sequence[Work], tracker: Progress, i: int, cloak_s: float,
           check_s: float) -> None:
    """Refine the measured speed from image ``i`` and re-plan the images still to come."""
    book.record(key, "step", works[i].step_units, cloak_s)
    book.record(key, "figure", works[i].figure_mpx, check_s)
    tracker.replan([plan(w, book, key) for w in works])


def _run_images(files, names, downloads, settings, cloaker, viewer, cache, workspace, tracker, cancel, max_bytes,
                learn) -> Iterator[BatchUpdate]:
    """:func:`cloak_batch`'s loop over the images, once the models are loaded."""
    results: list[ImageResult] = []
    n = len(files)
    preset = settings.preset(cloaker.protector.config)
    outdir = workspace.new_job()

    def stopped() -> bool:
        return cancel is not None and cancel.is_set()

    i = 0
    try:
        for i, (f, name, dl) in enumerate(zip(files, names, downloads)):
            if stopped():
                raise Cancelled()

            def step(s: Step) -> None:
                if stopped():
                    raise Cancelled()
                tracker.on_step(s)

            def phase(what: str, i=i) -> None:
                if what == "figures" and stopped():
                    raise Cancelled()  # the cloak is written, but the batch stops here
                tracker.set_phase(what, i)

            tracker.set_phase("cloak", i)
            with cache.lock:
                res, cloak_s, check_s = cloak_one(cloaker, viewer, f, name, dl, outdir, max_bytes=max_bytes,
                                                  preset=preset, callback=step, on_phase=phase, settings=settings)
            results.append(res)
            tracker.image_done(res.seconds)
            if res.ok:
                learn(i, cloak_s, check_s)
            if i + 1 < n:
                yield BatchUpdate(list(results), status=_status(results, n))
    except Cancelled:
        log.info("web UI: job cancelled; the optimisation stopped")
        where = tracker.step
        left = [names[i] + (f" (stopped at step {where.done} of {where.total})" if where is not None
                            and tracker.index == i and tracker.phase == "cloak" else "")]
        left += names[i + 1:]
        tracker.set_phase("cancelled")
        yield BatchUpdate(list(results), zip_path=_zip_results(results, outdir), status=_cancelled(results, left),
                          done=True, cancelled=True, not_cloaked=left)
        return
    tracker.set_phase("done")
    yield BatchUpdate(list(results), zip_path=_zip_results(results, outdir), status=_status(results, n, done=True),
                      done=True)

def make_zip(files: Sequence[str | Path], dest: str | Path) -> Path:
    """Store ``files`` flat in ``dest``, written atomically (a temp file renamed); returns ``dest``. Pictures are
    stored as they are (already compressed), the HTML reports deflated."""
    dest = Path(dest)

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
            for f in files:
                packed = zipfile.ZIP_DEFLATED if Path(f).suffix == ".html" else zipfile.ZIP_STORED
                z.write(f, arcname=Path(f).name, compress_type=packed)

    _atomic_write(dest, write)
    return dest


def _zip_results(results: Sequence[ImageResult], outdir: Path) -> str | None:
    """The ZIP of the batch's downloads: each picture in the chosen format and its HTML report."""
    files = []
    for r in results:
        if r.ok:
            files.append(r.export or r.cloaked)
            if r.report:
                files.append(r.report)
    return str(make_zip(files, outdir / "glazeish-protected.zip")) if files else None


def _status(results: list[ImageResult], total: int, done: bool = False) -> str:
    ok = sum(r.ok for r in results)
    head = f"{ok} of {plural(total, 'image')} cloaked"
    if not done:
        return head + f"; {total - len(results)} to go…"
    bad = len(results) - ok
    return head + "." + (f" {plural(bad, 'image')} could not be cloaked (see below)." if bad else "")


def _cancelled(results: list[ImageResult], left: list[str]) -> str:
    ok = [r.name for r in results if r.ok]
    out = "Cancelled. "
    out += f"Cloaked: {', '.join(ok)}. " if ok else "Nothing was cloaked. "
    return out + f"Not cloaked: {', '.join(left)}."
