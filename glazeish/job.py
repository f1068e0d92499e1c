"""One job, one way to cloak a file: what ``glazeish protect``, the Ray workers, the web UI and the benchmark's
protections all run.

A :class:`Job` is everything a batch shares (the :class:`~glazeish.config.ProtectConfig`, how outputs are
written, which figures to compute) and knows its fingerprint; a :class:`Cloaker` holds one job's loaded models
and cloaks files (:meth:`Cloaker.cloak_file`: read, cloak, write atomically, measure the file that was
written) or in-memory images (:meth:`Cloaker.cloak`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._version import __version__
from .config import ProtectConfig, digest, fingerprint_of, machine_local
from .evaluation import Evaluator, Figures, assess
from .imageio import DEFAULT_MAX_PIXELS, FORMATS, Artwork, ImageError, read_image, save_image
from .metadata import MetadataOptions
from .protect import ImageCallback, Protector


@dataclass(frozen=True)
class Job:
    """The settings of one batch, shared by every image.

    Attributes:
        config: what decides the cloak.
        meta: what is written into the file's metadata.
        fmt, quality: ``png`` (lossless) or ``jpeg``/``webp`` at ``quality`` (1-100).
        evaluate: compute the figures (next to same-PSNR and same-L∞ noise) of each file written.
        purify: purifications whose survival the figures include (e.g. ``("jpeg75",)``).
        report: also write an HTML report next to each output.
        max_pixels: refuse larger images (machine-local: it decides whether, not how, an image is cloaked).
    """

    config: ProtectConfig = field(default_factory=ProtectConfig)
    meta: MetadataOptions = field(default_factory=MetadataOptions)
    fmt: str = "png"
    quality: int = 95
    evaluate: bool = True
    purify: tuple[str, ...] = ()
    report: bool = False
    max_pixels: int = machine_local(DEFAULT_MAX_PIXELS)

    def __post_init__(self):
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.fmt!r}")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be a whole number from 1 to 100, not {self.quality}")
        if self.max_pixels < 1:
            raise ValueError(f"max pixels must be at least 1, not {self.max_pixels}")

    def fingerprint(self) -> dict:
        """Every field that decides the output file (the config resolved; the quality only for lossy formats)."""
        fp = fingerprint_of(self)
        fp["config"] = self.config.fingerprint()
        if self.fmt == "png":
            fp["quality"] = None
        return {**fp, "glazeish": __version__}

    def key(self, input_sha256: str, output_name: str) -> str:
        """The key of one image of this job: same key, same output file (the Ray manifest's record key)."""
        return digest({"input": input_sha256, "output": output_name, "job": self.fingerprint()})

    def output_name(self, src: str | Path) -> str:
        """``<stem>.protected.<ext>``."""
        return f"{Path(src).stem}.protected{FORMATS[self.fmt][1]}"


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

    def row(self, config: ProtectConfig, precision: str) -> dict:
        """The ``protect --json`` row (the CLI and the Ray workers print the same rows)."""
        row = {"input": self.src, "output": self.dest, "width": self.width, "height": self.height,
               "encoder": config.encoder, "objective": config.objective, "intensity": config.intensity,
               "eps_levels": config.eps_levels, "steps": config.steps, "robust": config.robust, "seed": config.seed,
               "budget": config.budget, "precision": precision, "seconds": round(self.seconds, 3),
               "figure_seconds": round(self.figure_seconds, 3), "image_seconds": round(self.image_seconds, 3),
               "load_seconds": round(self.load_seconds, 3)}
        if self.report:
            row["report"] = self.report
        if self.figures is not None:
            row["figures"] = self.figures.to_dict()
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
        self.evaluator = Evaluator(self.protector.ensemble, tile=self.protector.config.tile)

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
                      purifications=self.job.purify)

    def cloak_file(
        self,
        src: str | Path,
        dest: str | Path,
        *,
        write_to: str | Path | None = None,
        callback: ImageCallback | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> FileResult:
        """Read ``src``, cloak it, write it atomically to ``write_to`` (default ``dest``), measure the file as
        written (a lossy format is read back), and write the HTML report if the job asks for one.

        ``on_phase("cloak" | "write" | "figures" | "report")`` says what it is doing (progress displays).
        Raises :class:`ImageError` with one line naming the file when it cannot be read, cloaked or written.
        """
        job, say = self.job, on_phase or (lambda phase: None)
        t0 = time.perf_counter()
        art = read_image(src, max_pixels=job.max_pixels)
        say("cloak")
        try:
            cloak = self.protector.protect(art, callback)
        except (RuntimeError, MemoryError) as e:  # e.g. out of memory on a huge image
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ImageError(f"{src}: {msg}") from None
        say("write")
        out = Path(write_to or dest)
        save_image(out, cloak.rgb, art.alpha, art.source, job.meta, job.fmt, job.quality)
        written = cloak.rgb if job.fmt == "png" else read_image(out, max_pixels=job.max_pixels).rgb
        result = FileResult(src=str(src), dest=str(dest), width=art.size[0], height=art.size[1],
                            seconds=cloak.seconds, load_seconds=self.load_seconds, art=art, rgb=written)
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
