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
import dataclasses
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
from .estimate import POSTING_SIDES, WARN_SECONDS, Estimate, SpeedBook, Work, plan, work
from .evaluation import Evaluator, judge
from .imageio import FORMATS, ImageError, read_image, save_image
from .job import NAME_MAX, Cloaker, Job, fit_name
from .metadata import MetadataOptions
from .objectives import OBJECTIVES
from .platforms import PLATFORMS, for_platforms, parse_platforms, posting_size
from .protect import Protector, Step
from .purify import PURIFICATIONS, WebP
from .report import amplified_delta, checkerboard
from .webpage import (
    Forecast,
    ImageResult,
    Offer,
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
#: how many jobs may wait in line for the one that runs (each tab shows its place and the wait)
MAX_WAITING = 16
VIEW_DECODER = "taef2"  # the decoder that shows "what a model sees" when the attacked encoders have none
#: what the page's "survive JPEG re-compression" switch turns on: the presets' own JPEG robustness
JPEG_ROBUST = PRESETS["default"].robust
#: the purification whose survival every result reports (what a platform does to an upload)
SURVIVAL_PURIFICATION = "jpeg75"
#: the export's default JPEG quality, and WebP's (the ``webp`` purification measures quality 80 only)
EXPORT_QUALITY = 90
WEBP_QUALITY = WebP.quality
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
    max_side: int | None = None  # cloak at a posting size: the long side at most this many px (None: full size)
    export: str = "png"  # the download's format: png (the whole cloak), jpeg or webp
    quality: int = EXPORT_QUALITY  # JPEG quality of the export (WebP is written at its measured quality)

    def export_quality(self) -> int:
        """The quality the export is written at (WebP: the one its survival is measured at)."""
        return WEBP_QUALITY if self.export == "webp" else int(self.quality)

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
        if self.export not in FORMATS:
            raise ValueError(f"the download format must be one of {', '.join(FORMATS)}, not {self.export!r}")
        side = int(self.max_side) if self.max_side else None
        extra = export_purification(self)
        purify = (SURVIVAL_PURIFICATION,) + ((extra,) if extra and extra != "jpeg:75" else ())
        return Job(config=config, meta=self.metadata_options(config), fmt="png", evaluate=True, purify=purify,
                   max_pixels=max_pixels, platforms=platforms, max_side=side)

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


def export_purification(settings: Settings | None) -> str | None:
    """The purification whose survival the export's format has: ``jpeg:Q`` (the chosen quality, 4:2:0 as
    platforms use), ``webp`` (quality 80), or None for PNG."""
    if settings is None or settings.export == "png":
        return None
    if settings.export == "jpeg":
        q = settings.export_quality()
        if not 1 <= q <= 100:
            raise ValueError(f"JPEG quality must be from 1 to 100, not {q}")
        return f"jpeg:{q}"
    return "webp"


def export_label(fmt: str, quality: int) -> str:
    """``JPEG q90`` / ``WebP q80``: the format as the page names it."""
    return f"{'JPEG' if fmt == 'jpeg' else 'WebP'} q{quality}"


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
    """Store ``files`` flat in ``dest``, written atomically (a temp file renamed); returns ``dest``. Pictures are
    stored as they are (already compressed), the HTML reports deflated."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=".zip-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED) as z:
            for f in files:
                packed = zipfile.ZIP_DEFLATED if Path(f).suffix == ".html" else zipfile.ZIP_STORED
                z.write(f, arcname=Path(f).name, compress_type=packed)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
#: inside a phase timed by the clock (loading, the figures) the bar moves toward this share of the phase while
#: on time, and creeps on past it when the phase overruns, never reaching the end before the phase does
TIMED_SHARE = 0.9
#: an image's speed against its plan is believed within these bounds (a first step with warm-up is slow)
RATIO_BOUNDS = (0.25, 4.0)


def _timed(t: float, expected: float) -> float:
    """The share of a phase shown after ``t`` of its ``expected`` seconds: steady while on time, then slower
    and slower (it always moves, and never reaches 1)."""
    if expected <= 0:
        return TIMED_SHARE
    if t <= expected:
        return TIMED_SHARE * t / expected
    return TIMED_SHARE + (1 - TIMED_SHARE) * (1 - expected / t)


class Progress:
    """Where a batch is: one fraction for the whole batch, the phase in words, time so far and left.

    The batch is planned in expected seconds (:func:`glazeish.estimate.plan` from this computer's measured
    speed): loading the models, then per image its cloak (moved by the optimisation steps, over all tiles) and
    its figures (moved by the clock). After each image the caller re-plans the rest from the refined speed
    (:meth:`replan`). The bar never goes back, and the time left never grows while an image is being saved or
    checked: the check's expected time only runs down. A new plan does not move the bar back or make it wait:
    from where it is, it covers what is left of the new plan.
    """

    def __init__(self, names: Sequence[str], plans: Sequence[Estimate] | None = None, load: float = 0.0,
                 tiles: Sequence[int] | None = None, clock: Callable[[], float] = time.monotonic):
        self.names = list(names)
        self.n = len(self.names)
        self.plans = list(plans or [Estimate(1.0, 0.0)] * self.n)
        self.tiles = list(tiles or [1] * self.n)
        self.load = max(0.0, float(load))
        self.clock = clock
        self.started = self.phase_started = self.image_started = clock()
        self.phase = "queued"
        self.index = 0
        self.step: Step | None = None
        self.last_image: float | None = None
        self.ratio = 1.0  # the current image's measured seconds over planned, from its steps
        self._shown = (0.0, None, self.started)  # (fraction, seconds left, when) last shown
        self._base = (0.0, 0.0, 0.0)  # (fraction shown, planned seconds done, planned total) at the last replan
        self._lock = threading.Lock()

    def replan(self, plans: Sequence[Estimate]) -> None:
        """New expected seconds for the images (those done keep theirs: only the rest matter)."""
        with self._lock:
            shown = self._shown[0]
            self.plans = self.plans[:self.index + 1] + list(plans)[self.index + 1:]
            done, total, _ = self._raw(self.clock())
            self._base = (shown, done, total)

    def set_phase(self, phase: str, index: int | None = None) -> None:
        with self._lock:
            now = self.clock()
            if index is not None and index != self.index:
                self.index, self.step, self.ratio = index, None, 1.0
            if phase == "cloak":
                self.image_started = now
            self.phase, self.phase_started = phase, now

    def on_step(self, step: Step) -> None:
        with self._lock:
            self.step = step
            share = step.done / step.total
            planned = self.plans[self.index].cloak * share
            if planned > 0 and self.clock() > self.image_started:
                lo, hi = RATIO_BOUNDS
                self.ratio = min(hi, max(lo, (self.clock() - self.image_started) / planned))

    def seconds_left(self) -> float:
        """The expected seconds still to go (all of it while waiting): what a job behind this one waits."""
        with self._lock:
            if self.phase == "queued":
                return self.load + sum(p.total for p in self.plans)
            left = self._estimate()[1]
            return 0.0 if left is None else left

    def image_done(self, seconds: float) -> None:
        """Image ``index`` finished (also when it failed)."""
        with self._lock:
            self.last_image = seconds

    def fraction(self) -> float:
        with self._lock:
            return self._estimate()[0]

    def _current(self, now: float) -> tuple[float, float]:
        """(planned seconds of the current image done, its real seconds still expected)."""
        p, t = self.plans[self.index], now - self.phase_started
        if self.phase == "cloak":
            if self.step is None:  # warm-up and the first step: move with the time one step should take
                first = p.cloak / max(1, self.tiles[self.index]) / 8
                share = _timed(t, max(first, 0.5)) * 0.1
            else:
                share = self.step.done / self.step.total
            return p.cloak * share, (p.cloak * (1 - share) + p.figures) * self.ratio
        if self.phase == "write":
            return p.cloak, p.figures * self.ratio
        expected = p.figures * self.ratio
        return p.cloak + p.figures * _timed(t, expected), max(0.0, expected - t)

    def _raw(self, now: float) -> tuple[float, float, float]:
        """(planned seconds done, planned total, real seconds left) of the batch."""
        total = self.load + sum(p.total for p in self.plans)
        if self.phase in ("queued", "cancelled", "done"):
            return 0.0, total, total
        if self.phase == "load":
            t = now - self.phase_started
            return self.load * _timed(t, self.load), total, max(0.0, self.load - t) + total - self.load
        i = self.index
        here, rest = self._current(now)
        done = self.load + sum(p.total for p in self.plans[:i]) + here
        return done, total, rest + sum(p.total for p in self.plans[i + 1:])

    def _estimate(self) -> tuple[float, float | None]:
        """(fraction done, seconds left or None while waiting for another job)."""
        now = self.clock()
        if self.phase == "done":
            return 1.0, 0.0
        if self.phase in ("queued", "cancelled") or self.n == 0:
            return self._shown[0], None
        done, total, left = self._raw(now)
        f0, d0, t0 = self._base
        frac = f0 + (1 - f0) * (done - d0) / (total - d0) if total > d0 else f0
        frac = max(self._shown[0], min(0.995, frac))
        self._shown = (frac, left, now)
        return frac, left

    def snapshot(self) -> dict:
        """What the page shows: ``fraction``, ``phase`` (a sentence), ``elapsed`` and ``left`` (words or None)."""
        with self._lock:
            now = self.clock()
            frac, seconds_left = self._estimate()
            left = None
            if seconds_left is not None and self.phase not in ("done", "cancelled"):
                left = duration(seconds_left) if seconds_left >= 2 else "a few seconds"
            return {"fraction": frac, "phase": self._words(now), "elapsed": duration(now - self.started), "left": left,
                    "last_image": None if self.last_image is None else duration(self.last_image)}

    def _words(self, now: float) -> str:
        k, name = min(self.index, max(self.n - 1, 0)) + 1, self.names[min(self.index, self.n - 1)] if self.n else ""
        what = PHASES.get(self.phase, self.phase)
        if self.phase == "cloak":
            what = f"Cloaking {k} of {self.n}: {name}"
            s = self.step
            if s is None:
                what += ", getting ready (the first step also warms up the models)…"
            elif s.tiles > 1:
                what += f", step {s.done} of {s.total} (tile {s.tile} of {s.tiles})"
            else:
                what += f", step {s.step} of {s.steps}"
        elif self.phase == "write":
            what = f"Saving {k} of {self.n}: {name}…"
        elif self.phase == "done":
            what = f"Done: {plural(self.n, 'picture')} in {duration(now - self.started)}"
        elif self.phase in ("figures", "report"):
            what = f"Checking the result of {k} of {self.n}: {name} (how visible, how strong, what survives " \
                   "re-compression)…"
        return what


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

    def ready(self, job: Job) -> bool:
        """Whether ``job``'s encoders are loaded already (the next start has no loading to wait for)."""
        c = job.config.resolved()
        # no lock: the page asks this while a job holds the lock for a whole image (a dict lookup is atomic)
        return (c.encoder, c.models_dir, c.device) in self._ensembles

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
        from .report import report_path, write_report

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
    """The page's jobs, each in its own thread: Cancel reaches its own session's, a shutdown all of them; and
    the line they wait in (first pressed, first cloaked), which tells each waiting tab its place and wait."""

    def __init__(self):
        self._lock = threading.Lock()
        self._flags: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._turn = threading.Condition()
        self._line: list[Progress] = []

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

    def join(self, tracker: Progress) -> None:
        """Put a job at the end of the line."""
        with self._turn:
            self._line.append(tracker)

    def leave(self, tracker: Progress) -> None:
        with self._turn:
            if tracker in self._line:
                self._line.remove(tracker)
            self._turn.notify_all()

    def wait_turn(self, tracker: Progress, stop: threading.Event) -> bool:
        """Block until ``tracker``'s job is first in line (True), or ``stop`` is set first (False)."""
        with self._turn:
            while self._line and self._line[0] is not tracker:
                if stop.is_set():
                    return False
                self._turn.wait(0.25)
            return not stop.is_set()

    def ahead(self, tracker: Progress) -> tuple[int, float]:
        """How many jobs are before ``tracker``'s in line, and the seconds they are expected still to take."""
        with self._turn:
            before = self._line[:self._line.index(tracker)] if tracker in self._line else []
        return len(before), sum(t.seconds_left() for t in before)

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


def ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def waiting_words(ahead: int, wait: float, own: float) -> str:
    """What a tab whose job waits says: its place, the expected wait and its own expected time."""
    jobs = "1 job" if ahead == 1 else f"{ahead} jobs"
    return (f"Waiting: {jobs} ahead of yours on this computer (another tab or person), about {duration(wait)} "
            f"to go; yours then takes about {duration(own)}. Cancel takes yours out of the line.")


#: the "Cloak at" choices: full size, or a posting size's long side
SIZE_CHOICES = [("Full size", "full")] + [(f"Long side {s} px", str(s)) for s in POSTING_SIDES]
FORMAT_CHOICES = [("PNG (keeps all of the cloak; large)", "png"), ("JPEG", "jpeg"),
                  (f"WebP (quality {WEBP_QUALITY})", "webp")]


def forecasts(uploads: Sequence[Upload], settings: Settings, job: Job, book: SpeedBook, key: str) -> dict:
    """Per usable upload (by path), its :class:`~glazeish.webpage.Forecast` under ``job``: the expected time
    at the size it would be cloaked, and past :data:`WARN_SECONDS` the posting sizes it could be cloaked at
    instead, each with its own time."""
    measured = book.measured(key) > 0
    out = {}
    for u in uploads:
        if not u.ok:
            continue
        size = job.posting_size(u.width, u.height)
        seconds = plan(job_work(job, u.width, u.height), book, key).total
        offers = []
        if seconds > WARN_SECONDS:
            for side in POSTING_SIDES:
                if side < max(size):
                    smaller = dataclasses.replace(job, max_side=side)
                    offers.append(Offer(f"long side {side} px", str(side), smaller.posting_size(u.width, u.height),
                                        plan(job_work(smaller, u.width, u.height), book, key).total))
        out[u.path] = Forecast(size, seconds, offers, measured, bool(job.platforms))
    return out


class Page:
    """The page's state and handlers (:func:`build_app` lays out the components and wires them to these)."""

    def __init__(self, gr, models_dir, max_pixels, max_file_mb, device, precision, cache, workspace, book):
        self.gr, self.models_dir, self.max_pixels = gr, models_dir, max_pixels
        self.device, self.precision = device, precision
        self.max_bytes = int(max_file_mb * 1_000_000)
        self.cache, self.workspace, self.book = cache, workspace, book
        self.jobs = Jobs()
        self.uploads_seen: set[str] = set()
        self.examples = preset_examples()

    @staticmethod
    def session(request) -> str:
        return getattr(request, "session_hash", None) or "local"

    def paths_of(self, files) -> list[str]:
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        self.uploads_seen.update(paths)
        return paths

    def check(self, paths: Sequence[str]) -> list[Upload]:
        return [check_upload(f, max_pixels=self.max_pixels, max_bytes=self.max_bytes) for f in paths]

    def job_of(self, settings: Settings) -> tuple[Job, str]:
        job = settings.job(self.models_dir, self.device, self.precision, self.max_pixels)
        return job, speed_key(job.config)

    def render_checks(self, ups: Sequence[Upload], settings: Settings) -> str:
        """The upload check with each picture's expected time (or the one-line reason there is none)."""
        try:
            job, key = self.job_of(settings)
        except ValueError as e:
            return render_checks(ups, note=f"No time estimate: {friendly_error(e)}")
        label = settings.intensity if settings.preset(job.config) != "custom" else "your settings"
        return render_checks(ups, forecasts(ups, settings, job, self.book, key), preset=label)

    def on_files(self, files, *controls):
        ups = self.check(self.paths_of(files))
        checks = self.render_checks(ups, settings_of(*controls))
        return checks, [asdict(u) for u in ups], self.gr.Button(interactive=any(u.ok for u in ups))

    def on_estimate(self, checked, *controls):
        ups = [Upload(**c) for c in (checked or [])]
        return self.render_checks(ups, settings_of(*controls))

    def on_preset(self, intensity: str):
        q = PRESETS[intensity]
        return q.eps_levels, q.steps, q.objective, bool(q.robust), render_presets(intensity, self.examples)

    def on_written(self, *controls):
        return written(settings_of(*controls))

    def begin(self, request):
        """Cloak pressed: a cancel flag at once; the button says what happens once the job knows its place."""
        gr = self.gr
        self.jobs.prepare(self.session(request))
        return (gr.Button("Starting…", interactive=False), gr.Button("Cancel", interactive=True),
                render_progress(None, "Starting…"), "", gr.DownloadButton(visible=False), "")

    def request_cancel(self, request):
        if self.jobs.cancel(self.session(request)):
            return self.gr.Button("Cancelling…", interactive=False)
        return self.gr.Button("Cancel", interactive=False)

    def tracker_for(self, good: Sequence[Upload], settings: Settings) -> Progress:
        """The job's progress, planned from this computer's speed (unplanned when the settings are bad: the
        job then says why)."""
        names = [u.name for u in good]
        try:
            job, key = self.job_of(settings)
        except ValueError:
            return Progress(names)
        works = [job_work(job, u.width, u.height) for u in good]
        load = 0.0 if self.cache.ready(job) else self.book.rate(key, "load")
        return Progress(names, [plan(w, self.book, key) for w in works], load, [w.tiles for w in works])

    def _work(self, good, settings, tracker, flag, box) -> Callable[[], None]:
        """The job's thread: wait its turn in line, then cloak, handing each update to ``box``."""

        def work() -> None:
            try:
                if not self.jobs.wait_turn(tracker, flag):
                    tracker.set_phase("cancelled")
                    box.put(BatchUpdate([], status="Cancelled before it started; nothing was cloaked.", done=True,
                                        cancelled=True))
                    return
                for update in cloak_batch([u.path for u in good], settings, cache=self.cache,
                                          workspace=self.workspace, models_dir=self.models_dir,
                                          names=[u.name for u in good], sizes=[(u.width, u.height) for u in good],
                                          max_pixels=self.max_pixels, max_bytes=self.max_bytes, progress=tracker,
                                          cancel=flag, device=self.device, precision=self.precision, book=self.book):
                    box.put(update)
            except BaseException as ex:  # reported on the page; the console keeps the traceback
                log.exception("web UI job failed")
                box.error = ex
            finally:
                self.jobs.leave(tracker)
                box.ended.set()

        return work

    async def run(self, request, files, checked, *controls):
        gr, sid = self.gr, self.session(request)
        flag = self.jobs.flag(sid)
        known = {c["path"]: Upload(**c) for c in (checked or [])}
        ups = [known.get(f) or self.check([f])[0] for f in self.paths_of(files)]
        good = [u for u in ups if u.ok]
        idle = (gr.Button("Cloak", interactive=bool(good)), gr.Button("Cancel", interactive=False))
        if flag.is_set() or not good:
            self.jobs.finish(sid, flag)
            text = ("Cancelled before it started; nothing was cloaked." if flag.is_set()
                    else "Nothing to cloak: add a picture first." if not ups else
                    "Nothing to cloak: none of the files is a picture this page can use.")
            yield "", render_status(text, error=bool(ups) and not flag.is_set()), "", gr.DownloadButton(visible=False), *idle
            return
        settings = settings_of(*controls)
        skipped = f" ({plural(len(ups) - len(good), 'file')} above could not be used.)" if len(good) < len(ups) else ""
        tracker = self.tracker_for(good, settings)
        box = _Outbox()
        self.jobs.join(tracker)
        self.jobs.start(self._work(good, settings, tracker, flag, box))
        try:
            async for out in self._follow(tracker, box, idle, skipped):
                yield out
        finally:
            if not box.ended.is_set():  # the page went away or Gradio cancelled the event: stop the image too
                flag.set()
                log.info("web UI: the page stopped waiting; stopping the job")
            self.jobs.finish(sid, flag)

    async def _follow(self, tracker: Progress, box: _Outbox, idle: tuple, skipped: str):
        """The page's view of a running job, twice a second: its place in line while it waits, then its
        progress, then the results."""
        gr, shown, button = self.gr, None, None
        skip = gr.skip()
        while True:
            update = box.take()
            if update is not None:
                zip_btn = gr.DownloadButton(value=update.zip_path, visible=update.zip_path is not None)
                status = update.status + (skipped if update.done and not update.cancelled else "")
                shown = render_progress(tracker.snapshot())
                yield shown, render_status(status), render_results(update.results), zip_btn, \
                    *(idle if update.done else (skip, skip))
                if update.done:
                    return
            elif box.ended.is_set():
                msg = friendly_error(box.error) if box.error else "the job ended without a result"
                yield (render_progress(None), render_status(f"⚠ Something went wrong: {msg}", error=True), skip, skip,
                       *idle)
                return
            else:
                if tracker.phase == "queued":
                    ahead, wait = self.jobs.ahead(tracker)
                    now = render_progress(None, waiting_words(ahead, wait, tracker.seconds_left()))
                    label = f"Waiting ({ordinal(ahead + 1)} in line)…"
                else:
                    now, label = render_progress(tracker.snapshot()), "Cloaking…"
                run_btn = gr.Button(label, interactive=False) if label != button else skip
                if now != shown or label != button:
                    shown, button = now, label
                    yield now, skip, skip, skip, run_btn, skip
            await asyncio.sleep(0.25)

    def shutdown(self) -> None:
        """Stop a running job (waiting for its thread), remove the uploads this page saw and its outputs."""
        if not self.jobs.stop_all():
            log.warning("web UI: a job did not stop in time")
        for f in list(self.uploads_seen):
            try:
                Path(f).unlink(missing_ok=True)
                Path(f).parent.rmdir()  # Gradio keeps each upload in a folder of its own
            except OSError:
                pass
        self.workspace.cleanup()


def settings_of(intensity, eps, steps, robust, encoders, objective, target, seed, metadata, note, creator,
                copyright_, platforms=(), size="full", export="png", quality=EXPORT_QUALITY) -> Settings:
    """The page's controls (in :func:`_controls`' order) as :class:`Settings`."""
    return Settings(intensity=intensity, eps=eps, steps=steps, robust=robust, encoders=list(encoders or []),
                    objective=objective, target=target or None, seed=int(seed or 0), metadata=metadata,
                    note=note, creator=creator, copyright=copyright_, platforms=tuple(platforms or ()),
                    max_side=None if size in (None, "", "full") else int(size), export=export or "png",
                    quality=int(quality or EXPORT_QUALITY))


def _uploads_column(gr, page: Page) -> dict:
    """Left: the pictures, their check and time, the size to cloak at, the intensity, Cloak and the progress
    (on a phone, Cloak stays within a screen of the uploads)."""
    c = {}
    c["files"] = gr.File(label="1 · Your pictures", file_count="multiple", file_types=UPLOAD_TYPES,
                         elem_id="glz-files")
    gr.Markdown(f"PNG, JPEG or WebP, up to {page.max_bytes / 1e6:g} MB and {page.max_pixels / 1e6:g} megapixels "
                "each; transparency is kept. Each file is checked as it arrives, with the time it will take here.",
                elem_classes="glz-note", elem_id="glz-upload-note")
    c["checks"] = gr.HTML(elem_id="glz-checks")
    # (no info lines under these two: on a phone, Cloak stays within a screen of the uploads; the warning under a
    # long upload says why a posting size, and the cards what each intensity trades)
    c["size"] = gr.Radio(SIZE_CHOICES, value="full", label="Cloak at (the file is written at that size)",
                         elem_id="glz-size")
    c["intensity"] = gr.Radio([(preset_label(k), k) for k in PRESETS], value="default", label="2 · Intensity",
                              elem_id="glz-intensity")
    with gr.Row(elem_id="glz-actions"):
        c["run_btn"] = gr.Button("Cloak", variant="primary", interactive=False, elem_id="glz-run")
        c["cancel_btn"] = gr.Button("Cancel", variant="stop", interactive=False, elem_id="glz-cancel")
    c["progress"] = gr.HTML(elem_id="glz-progress")
    c["status"] = gr.HTML(elem_id="glz-status")
    c["zip_btn"] = gr.DownloadButton("Download all (ZIP, with a report per picture)", visible=False, elem_id="glz-zip")
    return c


def _choices_column(gr, page: Page) -> dict:
    """Right: the preset cards, where it will be posted, and the download's format."""
    c = {"presets_html": gr.HTML(render_presets("default", page.examples), elem_id="glz-presets")}
    c["post_to"] = gr.CheckboxGroup([(p.title, p.name) for p in PLATFORMS.values()], value=[],
                                    label="Where will you post it? (optional)", elem_id="glz-platforms",
                                    info="Tick yours: the picture is cloaked at the size the site shows and through "
                                         "its re-saving, so more of the protection survives there. The file is "
                                         "written at that size.")
    with gr.Row(elem_id="glz-export"):
        c["export"] = gr.Radio(FORMAT_CHOICES, value="png", label="Download as", elem_id="glz-format",
                               info="JPEG and WebP are smaller, but their own compression weakens the cloak: each "
                                    "result says how much of the protection the file keeps.")
        c["quality"] = gr.Slider(50, 100, value=EXPORT_QUALITY, step=1, label="JPEG quality", elem_id="glz-quality")
    return c


def _meta_column(gr) -> dict:
    c = {}
    gr.Markdown("**3 · Your name and a “no AI training” notice in the file**")
    c["metadata"] = gr.Checkbox(True, elem_id="glz-metadata",
                                label="Ask AI companies not to train on it (a notice in the file's metadata)")
    with gr.Row():
        c["creator"] = gr.Textbox(label="Your name (optional)", elem_id="glz-creator", min_width=220)
        c["copyright_"] = gr.Textbox(label="Copyright notice (optional)", placeholder="© 2025 Your Name",
                                     elem_id="glz-copyright", min_width=220)
    c["note"] = gr.Checkbox(True, label="Also say in the file that it was cloaked with glazeish",
                            info="Untick to leave glazeish out: the note tells whoever reads the file, scrapers "
                                 "included, that the picture is cloaked.", elem_id="glz-note")
    c["written_html"] = gr.HTML(written(Settings()), elem_id="glz-written")
    return c


def _advanced(gr, encoder_names: Sequence[str]) -> dict:
    p, c = PRESETS["default"], {}
    with gr.Accordion("Advanced (optional)", open=False, elem_id="glz-advanced"):
        c["eps"] = gr.Slider(0.5, 16, value=p.eps_levels, step=0.5, label="Largest change per colour value (out of 255)",
                             info="Each red, green and blue value may move by at most this much. Higher is stronger "
                                  "and more visible; the presets use " + PRESET_EPS + ".", elem_id="glz-eps")
        c["steps"] = gr.Slider(1, 200, value=p.steps, step=1, label="Optimisation steps",
                               info="How often the cloak is refined. More is stronger; the time grows in proportion.",
                               elem_id="glz-steps")
        c["robust"] = gr.Checkbox(bool(p.robust), label="Make it survive JPEG re-compression",
                                  info="Optimises through a simulated JPEG re-save, as platforms do to uploads; each "
                                       "step takes longer. On in every preset.", elem_id="glz-robust")
        c["encoders"] = gr.CheckboxGroup(list(encoder_names), value=["taef2"], label="Image models to target",
                                         info=" · ".join(f"{n}: {plain_encoder(n)}" for n in encoder_names),
                                         elem_id="glz-encoders")
        c["objective"] = gr.Dropdown(list(OBJECTIVES), value=p.objective, label="What the cloak aims for",
                                     info=objective_info(p.objective), elem_id="glz-objective")
        c["target"] = gr.File(label="Decoy pattern (optional)", file_types=UPLOAD_TYPES, elem_id="glz-target")
        gr.Markdown("The texture the cloak pulls the model's copy toward; without one, a built-in pattern.",
                    elem_classes="glz-note")
        c["seed"] = gr.Number(0, precision=0, label="Random seed", elem_id="glz-seed",
                              info="The same picture, settings and seed give the same file; another seed gives "
                                   "another random pattern.")
    return c


def _layout(gr, page: Page) -> dict:
    """The page's components by name."""
    encoder_names = [n for n, entry in ENCODERS.items() if entry.weights]
    gr.Markdown(INTRO, elem_id="glz-intro")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            c = _uploads_column(gr, page)
        with gr.Column(scale=1, min_width=300):
            c.update(_choices_column(gr, page))
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300, elem_id="glz-meta"):
            c.update(_meta_column(gr))
        with gr.Column(scale=1, min_width=300):
            c.update(_advanced(gr, encoder_names))
    c["results"] = gr.HTML(elem_id="glz-results")
    c["checked"] = gr.State([])
    return c


#: the controls that make up :class:`Settings`, in :func:`settings_of`'s order
CONTROLS = ("intensity", "eps", "steps", "robust", "encoders", "objective", "target", "seed", "metadata", "note",
            "creator", "copyright_", "post_to", "size", "export", "quality")
#: the controls that change a picture's expected time
TIMING = ("intensity", "steps", "robust", "encoders", "objective", "post_to", "size", "export")


def _wire(gr, page: Page, c: dict) -> None:
    """Connect the components to :class:`Page`'s handlers."""
    controls = [c[k] for k in CONTROLS]

    def begin(request: gr.Request):
        return page.begin(request)

    async def run(request: gr.Request, files, checked, *values):
        async for out in page.run(request, files, checked, *values):
            yield out

    def request_cancel(request: gr.Request):
        return page.request_cancel(request)

    c["files"].change(page.on_files, [c["files"], *controls], [c["checks"], c["checked"], c["run_btn"]], queue=False)
    c["intensity"].change(page.on_preset, c["intensity"],
                          [c["eps"], c["steps"], c["objective"], c["robust"], c["presets_html"]], queue=False)
    for k in TIMING:
        c[k].change(page.on_estimate, [c["checked"], *controls], c["checks"], queue=False)
    c["objective"].change(lambda name: gr.Dropdown(info=objective_info(name)), c["objective"], c["objective"],
                          queue=False)
    for k in ("intensity", "eps", "steps", "robust", "objective", "metadata", "note", "creator", "copyright_"):
        c[k].change(page.on_written, controls, c["written_html"], queue=False)
    outputs = [c["progress"], c["status"], c["results"], c["zip_btn"], c["run_btn"], c["cancel_btn"]]
    c["run_btn"].click(begin, None, [c["run_btn"], c["cancel_btn"], c["progress"], c["status"], c["zip_btn"],
                                     c["results"]], queue=False).then(
        run, [c["files"], c["checked"], *controls], outputs, concurrency_limit=MAX_WAITING, concurrency_id="cloak",
        show_progress="hidden")
    c["cancel_btn"].click(request_cancel, None, c["cancel_btn"], queue=False)


def build_app(
    models_dir: str | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    device: str = "auto",
    precision: str = "auto",
    cache: ProtectorCache | None = None,
    workspace: Workspace | None = None,
    book: SpeedBook | None = None,
):
    """The page as a :class:`gradio.Blocks`: one cloaking job runs at a time, the others wait in line (each tab
    is told its place and the wait); ``book`` keeps this computer's measured speed (default: the user's cache).

    Launch it with ``css=demo.glazeish_css, head=demo.glazeish_head`` (as :func:`launch` does) and call
    ``demo.glazeish_shutdown()`` when the server stops: it stops a running job, waits for it, and removes the
    uploads and outputs.
    """
    gr = _gradio()
    workspace = workspace or Workspace()
    gr.set_static_paths([str(workspace.root)])  # the previews and downloads are served from there, uncopied
    page = Page(gr, models_dir, max_pixels, max_file_mb, device, precision, cache or ProtectorCache(), workspace,
                book or SpeedBook())
    with gr.Blocks(title="glazeish", delete_cache=(1800, KEEP_SECONDS)) as demo:
        _wire(gr, page, _layout(gr, page))
    demo.glazeish_workspace = workspace  # for launch() to clean up, and tests
    demo.glazeish_cache = page.cache
    demo.glazeish_jobs = page.jobs
    demo.glazeish_book = page.book
    demo.glazeish_shutdown = page.shutdown
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
