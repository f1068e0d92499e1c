"""The local web page: drop images, pick a strength, see what the cloak does, download the results.

``python webui.py`` runs :func:`main` and ``glazeish ui`` runs :func:`serve` (serve until Ctrl-C or SIGTERM, stop
the running job, then clean up); :func:`launch` starts the page from Python, and :func:`build_app` returns the
:class:`gradio.Blocks` without starting it (tests, embedding).

The module has two halves. The first knows nothing about Gradio: :func:`check_upload` reads an upload as soon as
it arrives (a thumbnail, or one line saying it is not a picture); :func:`cloak_batch` runs the same job as
``glazeish protect`` (:meth:`glazeish.job.Cloaker.cloak_file`) over the uploads and yields one
:class:`ImageResult` per image, errors included, with preview images and the words of
:func:`glazeish.evaluation.judge`, while a :class:`Progress` follows its phases, steps and time;
:mod:`glazeish.webpage` turns all of it into the page's HTML. The second half (:func:`build_app`) is the page: Gradio
components wired to those, with the job in its own thread so that Cancel, a closed tab and a server shutdown
all stop it at the next optimisation step.

Nothing here optimises or measures anything: the cloak and its figures are the library's, exactly as on the CLI,
and every verdict word comes from :mod:`glazeish.evaluation.verdicts`.
"""

import os

# Gradio reports usage to its servers unless told not to; an artist's machine may be offline, and a
# tool that protects their work should not phone home. Set before gradio is imported (below, lazily).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse
import asyncio
import base64
import io
import logging
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .config import PRESETS, ProtectConfig
from .device import resolve_device, resolve_precision
from .encoders import ENCODERS, load_encoder, load_encoders
from .evaluation import Evaluator, judge
from .imageio import ImageError, read_image, save_image
from .job import NAME_MAX, Cloaker, Job, fit_name
from .metadata import MetadataOptions
from .objectives import OBJECTIVES
from .platforms import PLATFORMS, for_platforms, parse_platforms, posting_size
from .protect import Protector, Step
from .report import amplified_delta, checkerboard
from .webpage import (
    ImageResult,
    Upload,
    asset,
    duration,
    plural,
    preset_examples,
    preset_label,
    render_checks,
    render_presets,
    render_progress,
    render_results,
    render_status,
    render_written,
)
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
VIEW_DECODER = "taef2"  # the decoder that shows "what a model sees" when the attacked encoders have none
#: what the page's "survive JPEG re-compression" switch turns on: the presets' own JPEG robustness
JPEG_ROBUST = PRESETS["default"].robust
#: the purification whose survival every result reports (what a platform does to an upload)
SURVIVAL_PURIFICATION = "jpeg75"
#: before the first image is measured, the figures are assumed to cost as much as this many optimisation steps
#: of the same image (measured on 256 px crops on a 2-core CPU: 1.9 with JPEG robustness, 2.5 without)
FIGURE_STEPS = 2.5
THUMB = 96  # px, the upload check's thumbnails
#: the encoders and objectives in plain words (the registries' descriptions are for the command line)
PLAIN_ENCODERS = {
    "taef2": "stands in for FLUX-family image models (their small autoencoder, which can also show what the "
             "model sees); the default",
    "taesana": "stands in for Sana image models (encoder only: it cannot show what the model sees, so the "
               "page uses taef2 for that)",
}
PLAIN_OBJECTIVES = {
    "mimic-away": "push what a model trained on the image would reproduce away from your picture, in no set direction "
                  "(the presets' choice; needs taef2)",
    "mimic": "pull what a model trained on the image would reproduce toward a decoy texture (needs taef2)",
    "texture": "pull the model's reading of the image toward a decoy texture; fastest, does not need a decoder",
    "untargeted": "push the model's reading of the image as far as possible from the original, in no set direction",
    "style": "pull the model's sense of the image's style (colour and texture statistics) toward a decoy style",
}


#: how far each preset lets one colour value move, for the eps slider's explanation
PRESET_EPS = ", ".join(f"{p.eps_levels:g} ({k}{', on busy texture only' if p.budget == 'masked' else ''})"
                       for k, p in PRESETS.items())


class Cancelled(BaseException):
    """Raised from the step callback when the user pressed Cancel (or the page went away).

    A ``BaseException``, like ``KeyboardInterrupt``: a cancel is not a failure, so it must pass through
    :meth:`Cloaker.cloak_file`, which turns every ``Exception`` into a one-line error about the file.
    """


# ------------------------------------------------------------------------------------------------
# settings, uploads and results


@dataclass
class Settings:
    """What the page's controls say. ``eps`` in 1/255 units; ``encoders`` a list of registered names;
    ``robust`` None = the preset's, True = optimise through a simulated JPEG re-save, False = not."""

    intensity: str = "default"
    eps: float | None = None
    steps: int | None = None
    robust: bool | None = None
    encoders: Sequence[str] = ("taef2",)
    objective: str | None = None
    target: str | None = None  # path of an uploaded target pattern
    seed: int = 0
    metadata: bool = True
    note: bool = True  # say in the file that it was cloaked with glazeish
    creator: str | None = None
    copyright: str | None = None
    platforms: Sequence[str] = ()  # where it will be posted: cloaked at that size, through those chains

    def config(self, models_dir: str | None = None, device: str = "auto", precision: str = "auto") -> ProtectConfig:
        """The :class:`ProtectConfig` these settings mean (raises ``ValueError`` on a bad value)."""
        encoders = [e for e in self.encoders if e]
        if not encoders:
            raise ValueError("choose at least one image model to target (under Advanced)")
        # checked = the preset's own JPEG simulation (its order decides the cloak), or JPEG_ROBUST for one without
        robust = None if self.robust is None else ((PRESETS[self.intensity].robust or JPEG_ROBUST) if self.robust else "")
        config = ProtectConfig(
            intensity=self.intensity, eps_levels=self.eps, steps=None if self.steps is None else int(self.steps),
            objective=self.objective or None, encoder=",".join(encoders), target=self.target,
            seed=int(self.seed or 0), device=device, precision=precision, models_dir=models_dir, robust=robust,
        )
        return for_platforms(config, parse_platforms(self.platforms))

    def job(self, models_dir: str | None = None, device: str = "auto", precision: str = "auto",
            max_pixels: int = DEFAULT_MAX_PIXELS) -> Job:
        """The :class:`~glazeish.job.Job` of these settings: PNG out, figures with JPEG q75 survival."""
        config = self.config(models_dir, device, precision)
        platforms = tuple(p.name for p in parse_platforms(self.platforms))
        return Job(config=config, meta=self.metadata_options(config), fmt="png", evaluate=True,
                   purify=(SURVIVAL_PURIFICATION,), max_pixels=max_pixels, platforms=platforms)

    def preset(self, config: ProtectConfig) -> str:
        """The preset's name when its values are the ones used, else ``custom``."""
        p = PRESETS[self.intensity]
        same = ((config.eps_levels, config.steps, config.objective, config.robust)
                == (p.eps_levels, p.steps, p.objective, p.robust))
        return self.intensity if same else "custom"

    def metadata_options(self, config: ProtectConfig | None = None) -> MetadataOptions:
        # name the preset only when its values were used, so the file's note does not mislead
        return MetadataOptions(
            enabled=bool(self.metadata), creator=(self.creator or "").strip() or None,
            copyright=(self.copyright or "").strip() or None, note=bool(self.note),
            preset=self.preset(config or self.config()),
        )


#: the longest name :func:`cloak_one` writes beside a download, ``<stem>`` + this
LONGEST_BESIDE = ".model-view-original.png"


def unique_names(names: Sequence[str], suffix: str = ".protected.png") -> list[str]:
    """``<stem><suffix>`` per upload, numbered (``a-2.protected.png``) where two stems collide; a long stem is
    shortened as the command line does (:func:`~glazeish.job.fit_name`), so that every file written beside the
    download fits a file name (a 240-byte CJK name would not)."""
    room = NAME_MAX - len(LONGEST_BESIDE.encode()) + len(suffix.encode())
    out, seen = [], set()
    for name in names:
        stem = Path(name).stem or "image"
        cand, k = fit_name(stem, suffix, room)[0], 1
        while cand.lower() in seen:
            k += 1
            cand = fit_name(f"{stem}-{k}", suffix, room)[0]
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


NOT_A_PICTURE = "this file is not a picture or is damaged"


def friendly_error(err: BaseException, path: str | Path | None = None, name: str | None = None) -> str:
    """One readable line for the page: no traceback, no library names, the upload's name (once) instead of its
    temp path."""
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    if path is not None and name:
        msg = msg.replace(str(path), name)
    if isinstance(err, MemoryError) or "out of memory" in msg.lower() or "too large to decode" in msg:
        return f"{name or 'image'}: not enough memory for an image this large; try a smaller one"
    if isinstance(err, WeightsError):
        return f"model weights are missing or damaged: {msg}"
    if isinstance(err, ImageError) and any(s in msg for s in ("corrupt", "not an image", "empty file", "is a folder")):
        return f"{name}: {NOT_A_PICTURE}" if name else NOT_A_PICTURE
    return msg


def data_uri(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _preview(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """What the page shows of ``rgb``: transparent areas over the checkerboard, as everywhere."""
    return rgb if alpha is None else checkerboard(alpha, rgb)


def check_upload(path: str | Path, name: str | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_bytes: int | None = DEFAULT_MAX_FILE_MB * 1_000_000) -> Upload:
    """Read an upload the moment it arrives (the same reader as the job): a thumbnail, or one line saying why it
    cannot be cloaked, naming the file once."""
    name = name or Path(path).name
    up = Upload(path=str(path), name=name)
    try:
        up.bytes = Path(path).stat().st_size
        if max_bytes is not None and up.bytes > max_bytes:
            up.error = f"{name}: {up.bytes / 1e6:.1f} MB is over this page's limit of {max_bytes / 1e6:.0f} MB"
            return up
        art = read_image(path, max_pixels=max_pixels)
    except (ImageError, OSError) as e:
        up.error = friendly_error(e, path, name)
        return up
    up.width, up.height = art.size
    up.alpha = art.alpha is not None
    thumb = Image.fromarray(_preview(art.rgb, art.alpha), "RGB")
    thumb.thumbnail((THUMB, THUMB), Image.LANCZOS)
    up.thumb = data_uri(np.asarray(thumb))
    return up


# ------------------------------------------------------------------------------------------------
# progress: one overall bar, named phases, time left


#: the words of the phases that say no more than their name (the others name the picture and the step)
PHASES = {"queued": "Waiting for the job before this one to finish…", "load": "Loading the models…",
          "cancelled": "Cancelled"}


class Progress:
    """Where a batch is: one fraction for the whole batch, the phase in words, time so far and left.

    The work of an image is counted in optimisation steps times pixels; its figures count as
    :data:`FIGURE_STEPS` steps until the first image has been measured, then as what they really cost. While
    the figures are computed (they report no steps), the bar moves with the time they are expected to take, and
    stops short of the end of the phase.
    """

    def __init__(self, names: Sequence[str], pixels: Sequence[int] | None = None, steps: int = 1,
                 clock: Callable[[], float] = time.monotonic):
        self.names = list(names)
        self.n = len(self.names)
        self.pixels = [max(1, int(p)) for p in (pixels or [1] * self.n)]
        self.steps = max(1, int(steps))
        self.figure_steps = FIGURE_STEPS
        self.clock = clock
        self.started = clock()
        self.phase = "queued"
        self.index = 0
        self.step: Step | None = None
        self.image_started = self.phase_started = self.started
        self.work_started: float | None = None
        self.cloak_seconds = 0.0
        self.finished = 0.0  # work units of the images done
        self.measured = (0.0, 0.0)  # (work units, seconds) observed at the last step or image end
        self.last_image: float | None = None
        self._lock = threading.Lock()

    def _units(self, i: int) -> float:
        return self.pixels[i] * (self.steps + self.figure_steps)

    @property
    def total(self) -> float:
        return sum(self._units(i) for i in range(self.n))

    def set_phase(self, phase: str, index: int | None = None) -> None:
        with self._lock:
            now = self.clock()
            if index is not None and index != self.index:
                self.index, self.step = index, None
            if phase == "cloak":
                self.image_started = now
                if self.work_started is None:
                    self.work_started = now
            if phase == "figures" and self.phase in ("cloak", "write"):
                self.cloak_seconds = now - self.image_started
            self.phase, self.phase_started = phase, now

    def on_step(self, step: Step) -> None:
        with self._lock:
            self.step = step
            if self.work_started is not None:
                done = self.finished + self.pixels[self.index] * self.steps * step.done / step.total
                self.measured = (done, self.clock() - self.work_started)

    def image_done(self, seconds: float, figure_seconds: float = 0.0, cloak_seconds: float = 0.0) -> None:
        """Image ``index`` finished (also when it failed): learn what its figures cost."""
        with self._lock:
            if figure_seconds > 0 and cloak_seconds > 0:
                self.figure_steps = figure_seconds / (cloak_seconds / self.steps)
            self.finished = sum(self._units(i) for i in range(self.index + 1))
            self.last_image = seconds
            if self.work_started is not None:
                self.measured = (self.finished, self.clock() - self.work_started)

    def fraction(self) -> float:
        with self._lock:
            return self._estimate()[0]

    def _rate(self) -> float | None:
        units, seconds = self.measured
        return units / seconds if units > 0 and seconds > 0 else None

    def _estimate(self) -> tuple[float, float | None]:
        """(fraction done, seconds left or None before anything was measured)."""
        if self.phase == "done":
            return 1.0, 0.0
        if self.phase in ("queued", "load") or self.n == 0:
            return 0.0, None
        i = min(self.index, self.n - 1)
        px, rate = self.pixels[i], self._rate()
        done, extra = self.finished, 0.0  # extra: seconds of the current figures still expected
        if self.phase == "cloak" and self.step is not None:
            done += px * self.steps * self.step.done / self.step.total
        elif self.phase in ("write", "figures", "report"):
            done += px * self.steps
            if self.phase != "write" and rate:  # figures report no steps: move with the time they should take,
                t = self.clock() - self.phase_started  # and when they overrun, expect a quarter more than so far
                expected = max(px * self.figure_steps / rate, 1.25 * t)
                done += px * self.figure_steps * t / expected
                extra = expected - t
        total = self.total
        later = total - self.finished - (self._units(i) if self.phase in ("figures", "report") else 0.0)
        if self.phase in ("figures", "report"):
            left = None if rate is None else extra + later / rate
        else:
            left = None if rate is None else (total - done) / rate
        return min(1.0, done / total), left

    def snapshot(self) -> dict:
        """What the page shows: ``fraction``, ``phase`` (a sentence), ``elapsed`` and ``left`` (words or None)."""
        with self._lock:
            now = self.clock()
            frac, seconds_left = self._estimate()
            left = None
            if seconds_left is not None and self.phase not in ("done", "cancelled"):
                left = duration(seconds_left)
            k, name = min(self.index, max(self.n - 1, 0)) + 1, self.names[min(self.index, self.n - 1)] if self.n else ""
            what = PHASES.get(self.phase, self.phase)
            if self.phase == "cloak":
                what = f"Cloaking {k} of {self.n}: {name}"
                if self.step is not None:
                    what += f", step {self.step.step} of {self.step.steps}"
                    if self.step.tiles > 1:
                        what += f" (part {self.step.tile} of {self.step.tiles})"
            elif self.phase == "write":
                what = f"Saving {k} of {self.n}: {name}…"
            elif self.phase == "done":
                what = f"Done: {plural(self.n, 'picture')} in {duration(now - self.started)}"
            elif self.phase in ("figures", "report"):
                what = f"Checking the result of {k} of {self.n}: {name} (how visible, how strong, what survives " \
                       "re-compression)…"
            return {"fraction": frac, "phase": what, "elapsed": duration(now - self.started), "left": left,
                    "last_image": None if self.last_image is None else duration(self.last_image)}


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


# ------------------------------------------------------------------------------------------------
# the job


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
) -> tuple[ImageResult, float, float]:
    """Cloak one uploaded file into ``outdir`` with the one job path; any failure is returned as
    ``ImageResult.error``. Also returns the seconds of the cloak and of the figures (for the progress)."""
    res = ImageResult(name=name, download_name=download_name, preset=preset)
    path = Path(path)
    t0 = time.perf_counter()
    try:
        res.input_bytes = size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise ImageError(f"{name}: {size / 1e6:.1f} MB is over this page's upload limit of "
                             f"{max_bytes / 1e6:.0f} MB")
        sub = outdir / f"{len(list(outdir.iterdir())):03d}"  # one folder per image: names stay the user's
        sub.mkdir()
        cloaked = sub / download_name
        done = cloaker.cloak_file(path, cloaked, callback=callback, on_phase=on_phase)
        art, rgb = done.art, done.rgb
        res.width, res.height = art.size
        stem = download_name.removesuffix(".protected.png")
        res.cloaked = str(cloaked)
        res.output_bytes = cloaked.stat().st_size
        res.original = _save_png(sub / f"{stem}.original.png", art.rgb, art.alpha)
        if art.alpha is not None:
            res.cloaked_preview = _save_png(sub / f"{stem}.cloaked-preview.png", rgb, art.alpha)
        eps = cloaker.protector.config.eps_levels
        res.difference = _save_png(sub / f"{stem}.difference.png", amplified_delta(art.rgb, rgb, eps), art.alpha)
        res.view_model = viewer.mimic.name
        for which, view in zip(("original", "cloaked"), viewer.views(art.rgb, rgb)):
            setattr(res, f"view_{which}", _save_png(sub / f"{stem}.model-view-{which}.png", view, art.alpha))
        if done.figures is not None:
            verdict = judge(done.figures)
            res.figures = done.figures.to_dict()
            res.verdicts = verdict.sentences
            res.visibility, res.protection = verdict.visibility, verdict.protection
            res.survival = verdict.survival.get(SURVIVAL_PURIFICATION)
        res.eps = float(eps)
        res.seconds = time.perf_counter() - t0
        return res, done.seconds, done.figure_seconds
    except Cancelled:
        raise
    except (ImageError, WeightsError, ValueError, OSError, RuntimeError, MemoryError) as e:
        res.error = friendly_error(e, path, name)
        log.warning("web UI: %s failed: %s", name, res.error)
    res.seconds = time.perf_counter() - t0
    return res, 0.0, 0.0


def cloak_batch(
    files: Sequence[str | Path],
    settings: Settings,
    *,
    cache: ProtectorCache,
    workspace: Workspace,
    models_dir: str | None = None,
    names: Sequence[str] | None = None,
    pixels: Sequence[int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_FILE_MB * 1_000_000,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> Iterator[BatchUpdate]:
    """Cloak uploaded ``files`` one by one, yielding a :class:`BatchUpdate` after each.

    A file that fails (corrupt, too large) becomes an error row and the others still complete; a setting or
    weight problem that stops every image becomes one error row per file. ``pixels`` (per file, from the upload
    check) weighs the images in ``progress``, which is created when not given (``progress.phase`` etc. follow the
    job). Setting ``cancel`` stops the current image at its next optimisation step (or before its figures): the
    last update is then ``cancelled``, lists what was not cloaked, and zips what was.
    """
    files = [str(f) for f in files]
    names = list(names) if names is not None else [Path(f).name for f in files]
    downloads = unique_names(names)
    results: list[ImageResult] = []
    if not files:
        yield BatchUpdate(results, status="Add one or more pictures first (PNG, JPEG or WebP).", done=True)
        return
    try:
        config = settings.config(models_dir, device, precision)
    except ValueError as e:
        config = None
        setting_error: Exception | None = e
    else:
        setting_error = None
    tracker = progress or Progress(names, pixels, config.steps if config else 1)
    if config is not None:
        tracker.steps = max(1, config.steps)
    n = len(files)

    def stopped() -> bool:
        return cancel is not None and cancel.is_set()

    tracker.set_phase("load")
    try:
        if setting_error is not None:
            raise setting_error
        cloaker = cache.get(settings.job(models_dir, device, precision, max_pixels))
        viewer = cache.viewer(cloaker)
    except (ImageError, WeightsError, ValueError, OSError, RuntimeError) as e:
        msg = friendly_error(e, settings.target, "target pattern")
        results = [ImageResult(name=nm, download_name=d, error=msg) for nm, d in zip(names, downloads)]
        tracker.set_phase("done")
        yield BatchUpdate(results, status=f"Nothing was cloaked: {msg}", done=True)
        return
    preset = settings.preset(cloaker.protector.config)
    outdir = workspace.new_job()
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
                res, cloak_s, fig_s = cloak_one(cloaker, viewer, f, name, dl, outdir, max_bytes=max_bytes,
                                                preset=preset, callback=step, on_phase=phase)
            results.append(res)
            tracker.image_done(res.seconds, fig_s, cloak_s)
            if i + 1 < n:
                yield BatchUpdate(list(results), status=_status(results, n))
    except Cancelled:
        log.info("web UI: job cancelled; the optimisation stopped")
        where = tracker.step
        left = [names[i] + (f" (stopped at step {where.step} of {where.steps})" if where is not None
                            and tracker.index == i and tracker.phase == "cloak" else "")]
        left += names[i + 1:]
        tracker.set_phase("cancelled")
        good = [r.cloaked for r in results if r.ok]
        zip_path = str(make_zip(good, outdir / "glazeish-protected.zip")) if good else None
        yield BatchUpdate(list(results), zip_path=zip_path, status=_cancelled(results, left), done=True,
                          cancelled=True, not_cloaked=left)
        return
    good = [r.cloaked for r in results if r.ok]
    zip_path = str(make_zip(good, outdir / "glazeish-protected.zip")) if good else None
    tracker.set_phase("done")
    yield BatchUpdate(list(results), zip_path=zip_path, status=_status(results, n, done=True), done=True)


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


def written(settings: Settings) -> str:
    """:func:`~glazeish.webpage.render_written` for the page's settings (a bad value: the job reports it; the
    preset's name is then a guess)."""
    try:
        options = settings.metadata_options()
    except ValueError:
        options = settings.metadata_options(ProtectConfig(intensity=settings.intensity))
    return render_written(options)


def plain_encoder(name: str) -> str:
    return PLAIN_ENCODERS.get(name, ENCODERS[name].description)


def objective_info(name: str | None) -> str:
    if not name or name not in OBJECTIVES:
        return ""
    return PLAIN_OBJECTIVES.get(name, OBJECTIVES[name].description)


INTRO = """# glazeish — cloak your artwork
Add your pictures, choose an intensity and press **Cloak**. Each result shows your picture before and after, how
visible the change is, and **what an AI model sees**: the picture after the model's encoder and decoder, which is
what a model trained on your work would learn to reproduce — and how much of the protection is left once a platform
re-compresses the upload. Everything runs on this computer; nothing is sent anywhere else."""


# ------------------------------------------------------------------------------------------------
# the page


class Jobs:
    """The page's jobs, each in its own thread: Cancel reaches its own session's, a shutdown all of them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._flags: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []

    def prepare(self, session: str) -> threading.Event:
        """A fresh cancel flag for the session's next job (made when Cloak is pressed, so that Cancel works while
        the job still waits for another to finish)."""
        with self._lock:
            flag = self._flags[session] = threading.Event()
            return flag

    def flag(self, session: str) -> threading.Event:
        with self._lock:
            return self._flags.setdefault(session, threading.Event())

    def cancel(self, session: str) -> bool:
        """Ask the session's job to stop; False when it has none."""
        with self._lock:
            flag = self._flags.get(session)
        if flag is not None:
            flag.set()
        return flag is not None

    def start(self, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=target, name="glazeish-job")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def finish(self, session: str, flag: threading.Event) -> None:
        with self._lock:
            if self._flags.get(session) is flag:
                del self._flags[session]

    def stop_all(self, timeout: float = 300) -> bool:
        """Stop every job at its next step and wait for the threads (torch must not be running when Python
        exits); True when all ended in time."""
        with self._lock:
            for flag in self._flags.values():
                flag.set()
            threads = list(self._threads)
        end = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in threads)


class _Outbox:
    """What the job's thread hands the page: the latest :class:`BatchUpdate`, an error, and whether it ended."""

    def __init__(self):
        self._lock = threading.Lock()
        self.update: BatchUpdate | None = None
        self.fresh = False
        self.error: BaseException | None = None
        self.ended = threading.Event()

    def put(self, update: BatchUpdate) -> None:
        with self._lock:
            self.update, self.fresh = update, True

    def take(self) -> BatchUpdate | None:
        with self._lock:
            fresh, self.fresh = self.fresh, False
            return self.update if fresh else None


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
    """The page as a :class:`gradio.Blocks` (queued: one cloaking job at a time, others wait in line).

    Launch it with ``css=demo.glazeish_css, head=demo.glazeish_head`` (as :func:`launch` does) and call
    ``demo.glazeish_shutdown()`` when the server stops: it stops a running job, waits for it, and removes the
    uploads and outputs.
    """
    gr = _gradio()

    cache = cache or ProtectorCache()
    workspace = workspace or Workspace()
    gr.set_static_paths([str(workspace.root)])  # the previews and downloads are served from there, uncopied
    jobs = Jobs()
    uploads_seen: set[str] = set()
    encoder_names = [n for n, entry in ENCODERS.items() if entry.weights]
    max_bytes = int(max_file_mb * 1_000_000)
    examples = preset_examples()
    p = PRESETS["default"]

    def session(request) -> str:
        return getattr(request, "session_hash", None) or "local"

    def paths_of(files) -> list[str]:
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        uploads_seen.update(paths)
        return paths

    def check(paths: Sequence[str]) -> list[Upload]:
        return [check_upload(f, max_pixels=max_pixels, max_bytes=max_bytes) for f in paths]

    def on_files(files):
        ups = check(paths_of(files))
        return render_checks(ups), [asdict(u) for u in ups], gr.Button(interactive=any(u.ok for u in ups))

    def settings_of(intensity, eps, steps, robust, encoders, objective, target, seed, metadata, note, creator,
                    copyright_, platforms=()) -> Settings:
        return Settings(intensity=intensity, eps=eps, steps=steps, robust=robust, encoders=list(encoders or []),
                        objective=objective, target=target or None, seed=int(seed or 0), metadata=metadata,
                        note=note, creator=creator, copyright=copyright_, platforms=tuple(platforms or ()))

    def on_preset(intensity: str):
        q = PRESETS[intensity]
        return q.eps_levels, q.steps, q.objective, bool(q.robust), render_presets(intensity, examples)

    def on_written(intensity, eps, steps, robust, objective, metadata, note, creator, copyright_):
        return written(settings_of(intensity, eps, steps, robust, ["taef2"], objective, None, 0, metadata, note,
                                   creator, copyright_))

    def begin(request: gr.Request):
        jobs.prepare(session(request))
        return (gr.Button("Cloaking…", interactive=False), gr.Button("Cancel", interactive=True),
                render_progress(None, "Starting… (if a job is already running on this computer, after it)"), "",
                gr.DownloadButton(visible=False), "")

    async def run(files, checked, intensity, eps, steps, robust, encoders, objective, target, seed, metadata, note,
                  creator, copyright_, platforms, request: gr.Request):
        sid = session(request)
        flag = jobs.flag(sid)
        known = {c["path"]: Upload(**c) for c in (checked or [])}
        paths = paths_of(files)
        ups = [known.get(f) or check([f])[0] for f in paths]
        good = [u for u in ups if u.ok]
        idle = (gr.Button("Cloak", interactive=bool(good)), gr.Button("Cancel", interactive=False))
        skipped = f" ({plural(len(ups) - len(good), 'file')} above could not be used.)" if len(good) < len(ups) else ""
        if flag.is_set() or not good:
            jobs.finish(sid, flag)
            text = ("Cancelled before it started; nothing was cloaked." if flag.is_set()
                    else "Nothing to cloak: add a picture first." if not ups else
                    "Nothing to cloak: none of the files is a picture this page can use.")
            error = bool(ups) and not flag.is_set()
            yield "", render_status(text, error=error), "", gr.DownloadButton(visible=False), *idle
            return
        settings = settings_of(intensity, eps, steps, robust, encoders, objective, target, seed, metadata, note,
                               creator, copyright_, platforms)
        posted = [posting_size(u.width, u.height, parse_platforms(settings.platforms)) for u in good]
        tracker = Progress([u.name for u in good], [w * h for w, h in posted])
        box = _Outbox()

        def work() -> None:
            try:
                for update in cloak_batch([u.path for u in good], settings, cache=cache, workspace=workspace,
                                          models_dir=models_dir, names=[u.name for u in good],
                                          pixels=[u.width * u.height for u in good], max_pixels=max_pixels,
                                          max_bytes=max_bytes, progress=tracker, cancel=flag, device=device,
                                          precision=precision):
                    box.put(update)
            except BaseException as ex:  # reported on the page; the console keeps the traceback
                log.exception("web UI job failed")
                box.error = ex
            finally:
                box.ended.set()

        jobs.start(work)
        shown = None
        try:
            while True:
                ended = box.ended.is_set()
                update = box.take()
                if update is not None:
                    zip_btn = gr.DownloadButton(value=update.zip_path, visible=update.zip_path is not None)
                    status = update.status + (skipped if update.done and not update.cancelled else "")
                    shown = render_progress(tracker.snapshot())
                    buttons = idle if update.done else (gr.skip(), gr.skip())
                    yield shown, render_status(status), render_results(update.results), zip_btn, *buttons
                    if update.done:
                        return
                elif ended:
                    msg = friendly_error(box.error) if box.error else "the job ended without a result"
                    yield (render_progress(None), render_status(f"⚠ Something went wrong: {msg}", error=True),
                           gr.skip(), gr.skip(), *idle)
                    return
                else:
                    now = render_progress(tracker.snapshot())
                    if now != shown:
                        shown = now
                        yield now, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
                await asyncio.sleep(0.25)
        finally:
            if not box.ended.is_set():  # the page went away or Gradio cancelled the event: stop the image too
                flag.set()
                log.info("web UI: the page stopped waiting; stopping the job")
            jobs.finish(sid, flag)

    def request_cancel(request: gr.Request):
        if jobs.cancel(session(request)):
            return gr.Button("Cancelling…", interactive=False)
        return gr.Button("Cancel", interactive=False)

    with gr.Blocks(title="glazeish", delete_cache=(1800, KEEP_SECONDS)) as demo:
        gr.Markdown(INTRO, elem_id="glz-intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                files = gr.File(label="1 · Your pictures", file_count="multiple", file_types=UPLOAD_TYPES,
                                elem_id="glz-files")
                gr.Markdown(f"PNG, JPEG or WebP, up to {max_file_mb:g} MB and {max_pixels / 1e6:g} megapixels each; "
                            "transparency is kept. Each file is checked as it arrives.", elem_classes="glz-note")
                checks = gr.HTML(elem_id="glz-checks")
            with gr.Column(scale=1, min_width=300):
                intensity = gr.Radio([(preset_label(k), k) for k in PRESETS], value="default", label="2 · Intensity",
                                     elem_id="glz-intensity")
                presets_html = gr.HTML(render_presets("default", examples), elem_id="glz-presets")
                post_to = gr.CheckboxGroup([(p.title, p.name) for p in PLATFORMS.values()], value=[],
                                           label="Where will you post it? (optional)", elem_id="glz-platforms",
                                           info="Each site shrinks uploads and saves them again as JPEG. Tick yours: "
                                                "the picture is cloaked at the size the site shows and through its "
                                                "re-saving, so more of the protection survives there, and a big "
                                                "picture takes far less time. The file is written at that size.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300, elem_id="glz-meta"):
                gr.Markdown("**3 · Your name and a “no AI training” notice in the file**")
                metadata = gr.Checkbox(True, elem_id="glz-metadata",
                                       label="Ask AI companies not to train on it (a notice in the file's metadata)")
                with gr.Row():
                    creator = gr.Textbox(label="Your name (optional)", elem_id="glz-creator", min_width=220)
                    copyright_ = gr.Textbox(label="Copyright notice (optional)", placeholder="© 2025 Your Name",
                                            elem_id="glz-copyright", min_width=220)
                note = gr.Checkbox(True, label="Also say in the file that it was cloaked with glazeish",
                                   info="Untick to leave glazeish out: the note tells whoever reads the file, scrapers "
                                        "included, that the picture is cloaked.", elem_id="glz-note")
                written_html = gr.HTML(written(Settings()), elem_id="glz-written")
            with gr.Column(scale=1, min_width=300):
                with gr.Accordion("Advanced (optional)", open=False, elem_id="glz-advanced"):
                    eps = gr.Slider(0.5, 16, value=p.eps_levels, step=0.5,
                                    label="Largest change per colour value (out of 255)",
                                    info="Each red, green and blue value may move by at most this much. Higher is "
                                         "stronger and more visible; the presets use " + PRESET_EPS + ".",
                                    elem_id="glz-eps")
                    steps = gr.Slider(1, 200, value=p.steps, step=1, label="Optimisation steps",
                                      info="How often the cloak is refined. More is stronger; the time grows in "
                                           "proportion.", elem_id="glz-steps")
                    robust = gr.Checkbox(bool(p.robust), label="Make it survive JPEG re-compression",
                                         info="Optimises through a simulated JPEG re-save, as platforms do to uploads; "
                                              "each step takes longer. On in every preset.",
                                         elem_id="glz-robust")
                    encoders = gr.CheckboxGroup(encoder_names, value=["taef2"], label="Image models to target",
                                                info=" · ".join(f"{n}: {plain_encoder(n)}" for n in encoder_names),
                                                elem_id="glz-encoders")
                    objective = gr.Dropdown(list(OBJECTIVES), value=p.objective, label="What the cloak aims for",
                                            info=objective_info(p.objective), elem_id="glz-objective")
                    target = gr.File(label="Decoy pattern (optional)", file_types=UPLOAD_TYPES, elem_id="glz-target")
                    gr.Markdown("The texture the cloak pulls the model's copy toward; without one, a built-in pattern.",
                                elem_classes="glz-note")
                    seed = gr.Number(0, precision=0, label="Random seed", elem_id="glz-seed",
                                     info="The same picture, settings and seed give the same file; another seed gives "
                                          "another random pattern.")
        with gr.Row(elem_id="glz-actions"):
            run_btn = gr.Button("Cloak", variant="primary", interactive=False, elem_id="glz-run")
            cancel_btn = gr.Button("Cancel", variant="stop", interactive=False, elem_id="glz-cancel")
        progress = gr.HTML(elem_id="glz-progress")
        status = gr.HTML(elem_id="glz-status")
        zip_btn = gr.DownloadButton("Download all cloaked pictures (ZIP)", visible=False, elem_id="glz-zip")
        results = gr.HTML(elem_id="glz-results")
        checked = gr.State([])

        files.change(on_files, files, [checks, checked, run_btn], queue=False)
        intensity.change(on_preset, intensity, [eps, steps, objective, robust, presets_html], queue=False)
        objective.change(lambda name: gr.Dropdown(info=objective_info(name)), objective, objective, queue=False)
        meta_inputs = [intensity, eps, steps, robust, objective, metadata, note, creator, copyright_]
        for comp in meta_inputs:
            comp.change(on_written, meta_inputs, written_html, queue=False)
        run_inputs = [files, checked, intensity, eps, steps, robust, encoders, objective, target, seed, metadata, note,
                      creator, copyright_, post_to]
        run_btn.click(begin, None, [run_btn, cancel_btn, progress, status, zip_btn, results], queue=False).then(
            run, run_inputs, [progress, status, results, zip_btn, run_btn, cancel_btn], concurrency_limit=1,
            concurrency_id="cloak", show_progress="hidden",
        )
        cancel_btn.click(request_cancel, None, cancel_btn, queue=False)

    def shutdown() -> None:
        """Stop a running job (waiting for its thread), remove the uploads this page saw and its outputs."""
        if not jobs.stop_all():
            log.warning("web UI: a job did not stop in time")
        for f in list(uploads_seen):
            try:
                Path(f).unlink(missing_ok=True)
                Path(f).parent.rmdir()  # Gradio keeps each upload in a folder of its own
            except OSError:
                pass
        workspace.cleanup()

    demo.glazeish_workspace = workspace  # for launch() to clean up, and tests
    demo.glazeish_cache = cache
    demo.glazeish_jobs = jobs
    demo.glazeish_shutdown = shutdown
    demo.glazeish_css = asset("webui.css")
    demo.glazeish_head = f"<script>{asset('webui.js')}</script>"
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
    ``block=False`` returns the running :class:`gradio.Blocks` (call ``.close()`` and then
    ``.glazeish_shutdown()`` when done)."""
    import atexit

    demo = build_app(models_dir, max_pixels=max_pixels, max_file_mb=max_file_mb, device=device, precision=precision)
    atexit.register(demo.glazeish_shutdown)
    demo.queue(max_size=64, default_concurrency_limit=4)
    try:
        demo.launch(
            server_name=host, server_port=port, share=share, inbrowser=open_browser, prevent_thread_lock=not block,
            max_file_size=f"{int(max_file_mb * 1000)}kb", show_error=False, ssr_mode=False, run_history=False,
            footer_links=["settings"], theme=_theme(), css=demo.glazeish_css, head=demo.glazeish_head, quiet=False,
        )
    finally:
        if block:  # Ctrl-C / SIGTERM: stop the job before Python exits (a torch thread at exit aborts the process)
            demo.glazeish_shutdown()
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

    try:  # a device or precision this machine cannot run is said before the page starts, not on every image
        resolve_precision(options.get("precision", "auto"), resolve_device(options.get("device", "auto")))
    except ValueError as e:
        print(f"glazeish ui: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
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
