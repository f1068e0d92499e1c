"""One job, one way to cloak a file: what ``glazeish protect``, the Ray workers, the web UI and the benchmark's
protections all run.

A :class:`Job` is everything a batch shares (the :class:`~glazeish.config.ProtectConfig`, how outputs are
written, which figures to compute) and knows its fingerprint; a :class:`Cloaker` holds one job's loaded models
and cloaks files (:meth:`Cloaker.cloak_file`: read, cloak, write atomically, measure the file that was
written) or in-memory images (:meth:`Cloaker.cloak`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator, Sequence

import numpy as np

from ._version import __version__
from .config import ProtectConfig, digest, fingerprint_of, machine_local
from .encoders import sharing_passes
from .errors import first_line
from .evaluation import FIGURE_MODES, Evaluator, Figures, assess, judge
from .imageio import DEFAULT_MAX_PIXELS, FORMATS, Artwork, Found, ImageError, read_image, resized, save_image
from .metadata import MetadataOptions, check_fits
from .platforms import parse_platforms, posting_size, purification_specs
from .protect import ImageCallback, Protector

#: the longest file name (in bytes) that Linux, macOS and Windows filesystems all take
NAME_MAX = 255
LOCK_NAME = ".glazeish.lock"


@dataclass(frozen=True)
class Job:
    """The settings of one batch, shared by every image.

    Attributes:
        config: what decides the cloak.
        meta: what is written into the file's metadata.
        fmt, quality: ``png`` (lossless) or ``jpeg``/``webp`` at ``quality`` (1-100).
        evaluate: compute the figures (next to same-PSNR and same-L∞ noise) of each file written.
        purify: purifications whose survival the figures include (e.g. ``("jpeg75",)``).
        figure_tiles: measure what the model sees on at most this many tiles of a large image (0: all of it;
            see :class:`~glazeish.evaluation.Evaluator`'s ``sample``). Images up to 4 tiles are always
            measured whole.
        report: also write an HTML report next to each output.
        figures: ``full`` or ``quick`` (:data:`~glazeish.evaluation.FIGURE_MODES`): quick leaves out the same-L∞
            uniform baseline and the pixels' ꟻLIP (the verdict words and every figure they read are the same),
            in 6 passes through the models instead of 8.
        max_pixels: refuse larger images (machine-local: it decides whether, not how, an image is cloaked).
        platforms: where the cloak will be posted (:data:`glazeish.platforms.PLATFORMS` names): each image is
            scaled down (Lanczos) to the largest size they serve, cloaked and written at that size, and the figures
            include what survives each (``platform:NAME`` is added to ``purify``); build the config with
            :func:`glazeish.platforms.for_platforms` so that it is optimised through their chains.
        max_side: scale each image down (Lanczos) so that its longest side is at most this many px, before cloaking.
    """

    config: ProtectConfig = field(default_factory=ProtectConfig)
    meta: MetadataOptions = field(default_factory=MetadataOptions)
    fmt: str = "png"
    quality: int = 95
    evaluate: bool = True
    purify: tuple[str, ...] = ()
    figure_tiles: int = 4
    report: bool = False
    figures: str = "full"
    max_pixels: int = machine_local(DEFAULT_MAX_PIXELS)
    platforms: tuple[str, ...] = ()
    max_side: int | None = None

    def __post_init__(self):
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.fmt!r}")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be a whole number from 1 to 100, not {self.quality}")
        if isinstance(self.figure_tiles, bool) or not isinstance(self.figure_tiles, int) or self.figure_tiles < 0:
            raise ValueError(f"figure tiles must be a whole number ≥ 0 (0: every tile), not {self.figure_tiles}")
        if self.figures not in FIGURE_MODES:
            raise ValueError(f"figures must be one of {', '.join(FIGURE_MODES)}, not {self.figures!r}")
        if self.max_pixels < 1:
            raise ValueError(f"max pixels must be at least 1, not {self.max_pixels}")
        # an unknown platform is refused here, before any work; each one's survival is part of the figures
        wanted = purification_specs(parse_platforms(self.platforms))
        object.__setattr__(self, "purify", tuple(self.purify) + tuple(w for w in wanted if w not in self.purify))
        _check_purifications(self.purify)
        check_fits(self.meta, self.fmt)
        if self.max_side is not None and (isinstance(self.max_side, bool) or not isinstance(self.max_side, int)
                                          or self.max_side < 16):
            raise ValueError(f"max side must be a whole number of px, at least 16, not {self.max_side}")

    def posting_size(self, width: int, height: int) -> tuple[int, int]:
        """The size an image of ``width × height`` is cloaked and written at (its own unless ``platforms`` or
        ``max_side`` scale it down)."""
        return posting_size(width, height, parse_platforms(self.platforms), self.max_side)

    def fingerprint(self) -> dict:
        """Every field that decides the output file (the config resolved; the quality only for lossy formats)."""
        fp = fingerprint_of(self)
        fp["config"] = self.config.fingerprint()
        if self.fmt == "png":
            fp["quality"] = None
        if fp["figures"] == "full":  # the figures before there was a choice: the keys of earlier runs still hold
            del fp["figures"]
        return {**fp, "glazeish": __version__}

    def key(self, input_sha256: str, output_name: str) -> str:
        """The key of one image of this job: same key, same output file (the Ray manifest's record key).
        ``output_name``: the output's path under the output folder (:attr:`Planned.rel`)."""
        return digest({"input": input_sha256, "output": output_name, "job": self.fingerprint()})

    def output_name(self, src: str | Path) -> str:
        """``<stem>.protected.<ext>`` (:func:`plan_outputs` decides the final name of each file of a batch)."""
        return f"{Path(src).stem}.protected{FORMATS[self.fmt][1]}"


#: the ``glazeish check`` option that gives a purification its diffusers pipeline (``Purification.needs_pipeline``)
PIPELINE_OPTIONS = {"upscaler": "--upscaler", "img2img": "--purify-pipeline"}


def _check_purifications(names: Sequence[str]) -> None:
    """A job's figures build their purifications with no diffusers pipeline (a batch loads none): one that
    needs one is refused before any work, rather than failing every file."""
    from .purify import PURIFICATIONS

    for name in names:
        needs = PURIFICATIONS[name].needs_pipeline
        if needs:
            option = PIPELINE_OPTIONS.get(needs, "a pipeline")
            raise ValueError(f"purification {name!r} needs a diffusers pipeline ({option}), which cloaking does not "
                             f"load; measure it on a cloak with glazeish check --purify {name} {option} PATH")


# ---------------------------------------------------------------------------------------------------------
# where a batch's cloaks go


@dataclass(frozen=True)
class Planned:
    """Where one input's cloak goes: ``dest`` (the output folder as given joined with ``rel``, the output's
    path under it), or nowhere, with ``error`` saying why; ``note`` says why a name is not the plain one."""

    src: Path
    dest: Path | None
    rel: str = ""  # posix; part of the Ray manifest key
    note: str | None = None
    error: str | None = None


def fit_name(stem: str, tail: str, room: int = NAME_MAX) -> tuple[str, bool]:
    """``stem + tail`` cut to ``room`` bytes (a long stem keeps its start and gains ``~`` + 8 hex of a hash of
    itself, so that two long names stay apart); returns the name and whether it was shortened."""
    raw = os.fsencode(stem)
    if len(raw) + len(os.fsencode(tail)) <= room:
        return stem + tail, False
    keep = raw[: max(0, room - len(os.fsencode(tail)) - 9)].decode("utf-8", "ignore")  # whole characters only
    return f"{keep}~{hashlib.sha256(raw).hexdigest()[:8]}{tail}", True


def _fold(rel: Path) -> str:
    """One spelling per name on every filesystem: case-insensitive ones (macOS, Windows) and Unicode forms."""
    return unicodedata.normalize("NFC", rel.as_posix()).casefold()


def plan_outputs(inputs: Sequence[Found | str | os.PathLike], outdir: str | os.PathLike, job: Job) -> list[Planned]:
    """Where each input's cloak goes: the one naming rule of ``glazeish protect``, local and on Ray.

    ``OUT/<stem>.protected.<ext>``, under the sub-folder the input was found in below a folder given
    (:attr:`Found.rel`: ``-r`` keeps the folder structure, so ``x/art.png`` and ``y/art.png`` go to
    ``OUT/x/`` and ``OUT/y/``). Names that still collide (``a.png`` and ``a.jpg``; two folders given that
    both hold ``art.png``; names differing only in case) are resolved in input order: the first keeps the
    plain name, each later one is numbered (``a-2.protected.png``), with a ``note``. A name over
    :data:`NAME_MAX` bytes (with its report's, when the job writes reports) is shortened, with a ``note``.
    An output (or report) that would land on an input is an ``error``: nothing is written for it.
    Deterministic: the same inputs in the same order give the same names, whatever is on disk.
    """
    from .report import report_path

    out = Path(outdir)
    found = [f if isinstance(f, Found) else Found(Path(f), Path(Path(f).name)) for f in inputs]
    tail = Path(job.output_name("x")).suffix
    tails = [f".protected{tail}"] + ([report_path(f"x.protected{tail}").name[1:]] if job.report else [])
    room = NAME_MAX - max(len(t) for t in tails) + len(tails[0])

    def name(f: Found, n: int = 1) -> tuple[Path, bool]:
        stem = Path(f.rel.name).stem + (f"-{n}" if n > 1 else "")
        fitted, short = fit_name(stem, tails[0], room)
        return f.rel.parent / fitted, short

    natural = [name(f) for f in found]
    reserved = {_fold(rel) for rel, _ in natural}
    inputs_real = {os.path.realpath(f.path) for f in found}
    taken: dict[str, Path] = {}
    plan = []
    for f, (rel, short) in zip(found, natural):
        note = f"{f.path}: its output name would be over {NAME_MAX} bytes; shortened to {out / rel}" if short else None
        if _fold(rel) in taken:
            n = 2
            while _fold(name(f, n)[0]) in reserved | taken.keys():
                n += 1
            note = f"{f.path}: written as {out / name(f, n)[0]} ({taken[_fold(rel)]} already makes {out / rel})"
            rel = name(f, n)[0]
        taken[_fold(rel)] = f.path
        dest = out / rel
        if {os.path.realpath(dest), os.path.realpath(report_path(dest))} & inputs_real:
            plan.append(Planned(f.path, None, rel.as_posix(),
                                error=f"{f.path}: output {dest} would overwrite an input; choose another --out"))
            continue
        plan.append(Planned(f.path, dest, rel.as_posix(), note))
    return plan


class OutdirBusyError(RuntimeError):
    """Another ``glazeish protect`` run holds the output folder."""


@contextlib.contextmanager
def lock_outdir(outdir: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``OUTDIR/.glazeish.lock`` for a run (local or on Ray): a second run into the
    same folder is refused (:class:`OutdirBusyError`) rather than let the two replace each other's files.
    The lock file is removed when the run ends (a killed run leaves it; the next run takes it over).
    Where the filesystem has no locks, this quietly does nothing (writes then still never replace a file
    that appeared meanwhile, unless ``--overwrite``)."""
    path = Path(outdir) / LOCK_NAME
    f, held = _take_lock(path, outdir)
    try:
        yield
    finally:
        if held:  # unlinked while still locked: a run waiting on this file finds it gone and locks a new one
            with contextlib.suppress(OSError):
                os.unlink(path)
        f.close()


def _take_lock(path: Path, outdir: str | os.PathLike) -> tuple[IO, bool]:
    """The open, locked lock file at ``path`` and whether it is locked (False: no lock support here).

    A run that ends unlinks its lock file while holding it; another run may have opened that file just before
    and lock it just after, holding a lock on a file no longer at ``path``. So after locking, the file at
    ``path`` must still be the one locked; otherwise it starts again with whatever is there now."""
    import fcntl

    while True:
        f = open(path, "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise OutdirBusyError(f"another glazeish run is writing to {outdir}; wait for it or choose another "
                                  "--out") from None
        except OSError:
            return f, False  # no lock support (some network filesystems)
        try:
            same = os.path.samestat(os.fstat(f.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return f, True
        f.close()  # the lock of a run that has just ended: take the file now at the path


@dataclass
class FileResult:
    """One cloaked file: where it came from and went, its size, timings (seconds) and figures (or None)."""

    src: str
    dest: str
    width: int
    height: int
    seconds: float  # the cloak: attack + 8-bit rounding
    figure_seconds: float = 0.0
    image_seconds: float = 0.0  # read, cloak, write, figures, report
    load_seconds: float = 0.0  # the one-off model loading of this job's cloaker
    figures: Figures | None = None
    report: str | None = None
    art: Artwork | None = field(default=None, repr=False)  # the input as read (for previews)
    rgb: np.ndarray | None = field(default=None, repr=False)  # the pixels as written (read back when lossy)
    warnings: list[str] = field(default_factory=list)  # one line each: what was dropped on the way (e.g. EXIF)
    resized_from: tuple[int, int] | None = None  # the input's (width, height) when it was scaled down to post

    def row(self, config: ProtectConfig, precision: str) -> dict:
        """The ``protect --json`` row (the CLI and the Ray workers print the same rows)."""
        row = {"input": self.src, "output": self.dest, "width": self.width, "height": self.height,
               "encoder": config.encoder, "objective": config.objective, "intensity": config.intensity,
               "eps_levels": config.eps_levels, "steps": config.steps, "robust": config.robust, "seed": config.seed,
               "budget": config.budget, "precision": precision, "seconds": round(self.seconds, 3),
               "figure_seconds": round(self.figure_seconds, 3), "image_seconds": round(self.image_seconds, 3),
               "load_seconds": round(self.load_seconds, 3)}
        if self.resized_from:
            row["resized_from"] = list(self.resized_from)
        if self.report:
            row["report"] = self.report
        if self.warnings:
            row["warnings"] = list(self.warnings)
        if self.figures is not None:
            row["figures"] = self.figures.to_dict()
            row["verdict"] = judge(self.figures).to_dict()
        return row


class Cloaker:
    """One job's models, loaded once: cloaks files (CLI, Ray workers, web UI) and images (the benchmark).

    Args:
        job: the batch's settings.
        protector: an already built :class:`Protector` for ``job.config`` (shares loaded models).
    """

    def __init__(self, job: Job | None = None, protector: Protector | None = None):
        self.job = job or Job()
        self.protector = protector or Protector(self.job.config)
        # the figures stay fp32 whatever the cloak's precision: bf16 autocast would make them ~3x faster on a
        # CPU but moves the noise baselines' view figures by up to ~1 dB (benchmarks/figures_precision/)
        self.evaluator = Evaluator(self.protector.ensemble, tile=self.protector.config.tile, precision="fp32",
                                   sample=self.job.figure_tiles)

    @property
    def load_seconds(self) -> float:
        return self.protector.load_seconds

    def cloak(self, art: Artwork, callback: ImageCallback | None = None, seed: int | None = None) -> np.ndarray:
        """Cloaked ``H×W×3`` uint8 pixels of an in-memory :class:`Artwork`."""
        return self.protector.protect(art, callback, seed).rgb

    def figures(self, art: Artwork, cloaked: np.ndarray) -> Figures:
        """The figures of ``cloaked`` against ``art`` (its visible pixels), with this job's purifications."""
        c = self.protector.config
        return assess(art.rgb, cloaked, self.evaluator, alpha=art.alpha, eps_levels=c.eps_levels, seed=c.seed,
                      purifications=self.job.purify, figures=self.job.figures)

    def cloak_file(
        self,
        src: str | Path,
        dest: str | Path,
        *,
        write_to: str | Path | None = None,
        overwrite: bool = True,
        callback: ImageCallback | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> FileResult:
        """Read ``src``, cloak it, write it atomically to ``write_to`` (default ``dest``), measure the file as
        written (a lossy format is read back), and write the HTML report if the job asks for one.

        ``overwrite=False`` never replaces an existing file (one that appeared while cloaking included).
        ``on_phase("cloak" | "write" | "figures" | "report")`` says what it is doing (progress displays).
        Raises :class:`ImageError` with one line naming the file when it cannot be read, cloaked or written,
        whatever went wrong (the batch goes on with the next file); what was dropped on the way (e.g. EXIF that
        does not fit the format) is in :attr:`FileResult.warnings`.
        """
        try:
            return self._cloak_file(src, dest, write_to, overwrite, callback, on_phase or (lambda phase: None))
        except ImageError:
            raise
        except (RuntimeError, MemoryError) as e:  # e.g. out of memory on a huge image
            raise ImageError(f"{src}: {first_line(e)}") from None
        except Exception as e:  # a bug or a library's surprise: still one line, and the batch goes on
            raise ImageError(f"{src}: failed ({type(e).__name__}: {first_line(e)})") from e

    def _cloak_file(self, src, dest, write_to, overwrite, callback, say) -> FileResult:
        # the attack's clean passes of the original are the figures' too (same bits; one pass pair saved in fp32)
        with sharing_passes(self.protector.ensemble.models):
            return self._cloak_and_measure(src, dest, write_to, overwrite, callback, say)

    def _cloak_and_measure(self, src, dest, write_to, overwrite, callback, say) -> FileResult:
        job = self.job
        t0 = time.perf_counter()
        art = read_image(src, max_pixels=job.max_pixels)
        warnings = list(art.warnings)
        size0 = art.size
        art = resized(art, job.posting_size(*size0))

        def warn(msg: str) -> None:  # the same problem seen on reading and on writing is said once
            if msg not in warnings:
                warnings.append(msg)

        say("cloak")
        cloak = self.protector.protect(art, callback)
        say("write")
        out = Path(write_to or dest)
        save_image(out, cloak.rgb, art.alpha, art.source, job.meta, job.fmt, job.quality, overwrite=overwrite,
                   warn=warn)
        written = cloak.rgb if job.fmt == "png" else read_image(out, max_pixels=job.max_pixels).rgb
        result = FileResult(src=str(src), dest=str(dest), width=art.size[0], height=art.size[1],
                            seconds=cloak.seconds, load_seconds=self.load_seconds, art=art, rgb=written,
                            warnings=warnings, resized_from=size0 if art.size != size0 else None)
        if job.evaluate or job.report:
            say("figures")
            t1 = time.perf_counter()
            result.figures = self.figures(art, written)
            result.figure_seconds = time.perf_counter() - t1
            if job.report:
                say("report")
                from .report import report_path, write_report

                path = write_report(report_path(dest), art.rgb, written, result.figures, self.evaluator,
                                    title=f"glazeish: {Path(src).name}", alpha=art.alpha)
                result.report = str(path)
        result.image_seconds = time.perf_counter() - t0
        return result
