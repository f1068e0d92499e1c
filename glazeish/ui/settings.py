"""What the page's controls mean: :class:`Settings` (all of them as one value) becomes the
:class:`~glazeish.config.ProtectConfig` and :class:`~glazeish.job.Job` that ``glazeish protect`` would run; the
download's format (:func:`export_purification`, :func:`export_label`); the page's limits; and :func:`written`,
what the file's metadata will say.

Nothing here knows about Gradio: :func:`glazeish.ui.page.settings_of` turns the components' values into
:class:`Settings`, and the batch runner (:mod:`glazeish.ui.batch`) takes them from there.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from ..config import PRESETS, ProtectConfig
from ..imageio import FORMATS
from ..job import Job
from ..metadata import MetadataOptions
from ..platforms import for_platforms, parse_platforms
from ..purify import WebP
from ..webpage import render_written

#: The page's own limits (the CLI allows 64 MP): a CPU takes minutes per 10 MP, and a web upload is
#: less trusted than a file the artist names on the command line.
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_MAX_FILE_MB = 50
#: what the page's "survive JPEG re-compression" switch turns on: the presets' own JPEG robustness
JPEG_ROBUST = PRESETS["default"].robust
#: the purification whose survival every result reports (what a platform does to an upload)
SURVIVAL_PURIFICATION = "jpeg75"
#: the export's default JPEG quality, and WebP's (``webp``: the benchmark's WebP setting)
EXPORT_QUALITY = 90
WEBP_QUALITY = WebP.quality


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
    quality: int = EXPORT_QUALITY  # JPEG or WebP quality of the export

    def export_quality(self) -> int:
        """The quality the export is written at (and its survival measured at)."""
        return int(self.quality)

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
        """The :class:`~glazeish.job.Job` of these settings: PNG out, the quick figures (as the CLI's) with JPEG
        q75 survival."""
        config = self.config(models_dir, device, precision)
        platforms = tuple(p.name for p in parse_platforms(self.platforms))
        if self.export not in FORMATS:
            raise ValueError(f"the download format must be one of {', '.join(FORMATS)}, not {self.export!r}")
        side = int(self.max_side) if self.max_side else None
        extra = export_purification(self)
        purify = (SURVIVAL_PURIFICATION,) + ((extra,) if extra and extra != "jpeg:75" else ())
        return Job(config=config, meta=self.metadata_options(config), fmt="png", evaluate=True, purify=purify,
                   max_pixels=max_pixels, platforms=platforms, max_side=side, figures="quick")

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
    platforms use), ``webp:Q`` (``webp`` at the default quality), or None for PNG."""
    if settings is None or settings.export == "png":
        return None
    q = settings.export_quality()
    if not 1 <= q <= 100:
        raise ValueError(f"{settings.export.upper()} quality must be from 1 to 100, not {q}")
    if settings.export == "jpeg":
        return f"jpeg:{q}"
    return "webp" if q == WEBP_QUALITY else f"webp:{q}"


def export_label(fmt: str, quality: int) -> str:
    """``JPEG q90`` / ``WebP q80``: the format as the page names it."""
    return f"{'JPEG' if fmt == 'jpeg' else 'WebP'} q{quality}"


def written(settings: Settings) -> str:
    """:func:`~glazeish.webpage.render_written` for the page's settings (a bad value: the job reports it; the
    preset's name is then a guess)."""
    try:
        options = settings.metadata_options()
    except ValueError:
        options = settings.metadata_options(ProtectConfig(intensity=settings.intensity))
    return render_written(options)
