"""How long a cloak will take on this computer, said before it starts and kept honest while it runs.

A cloak's time is its optimisation steps times the pixels of its tiles (tiles overlap, so a large picture costs
more than its own pixels), and its figures' time grows with the pixels they look at (the sampled tiles for what
the model sees, every pixel for the visibility and the previews). :class:`SpeedBook` keeps this computer's
measured seconds per megapixel-step, per figure megapixel and per model load, starting from conservative
defaults measured on a 2-core CPU and refined from every picture cloaked here (kept in a small JSON file, so
the next start of the page already knows this machine). :func:`plan` turns a picture's size and the settings
into expected seconds; the web page shows them per upload before Cloak and its progress bar follows them.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .imageio import _atomic_write
from .tiling import plan_tiles

#: conservative first guesses (a 2-core Xeon VM, fp32, default preset: 2048² in ~102 s of cloak and ~42 s of
#: figures, README "Speed and memory"), replaced by this computer's own figures after its first picture
DEFAULT_RATES = {"step": 2.5, "figure": 15.0, "load": 8.0}
#: how much a new measurement moves the kept figure (the first one replaces the default outright)
LEARN = 0.5
#: a picture longer than this is worth a warning and an offer to cloak at a posting size
WARN_SECONDS = 60.0
#: the posting sizes offered for a long cloak: the long side in px
POSTING_SIDES = (4096, 2048)


def speed_file() -> Path:
    """Where the measured speed is kept: ``$GLAZEISH_SPEED_FILE``, else ``$XDG_CACHE_HOME/glazeish/speed.json``
    (``~/.cache``)."""
    if os.environ.get("GLAZEISH_SPEED_FILE"):
        return Path(os.environ["GLAZEISH_SPEED_FILE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "glazeish" / "speed.json"


class SpeedBook:
    """This computer's measured speed, per kind of work (``step``, ``figure``, ``load``) and per machine key
    (device, precision and encoders: a GPU and a CPU do not share figures). Thread-safe; saved atomically."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else speed_file()
        self._lock = threading.Lock()
        self._rates: dict[str, dict[str, float]] = {}
        self._counts: dict[str, dict[str, int]] = {}
        try:
            data = json.loads(self.path.read_text())
            for key, row in data.get("rates", {}).items():
                self._rates[key] = {k: float(v) for k, v in row.items() if k in DEFAULT_RATES and float(v) > 0}
                self._counts[key] = {k: int(data.get("counts", {}).get(key, {}).get(k, 1)) for k in self._rates[key]}
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # no file yet, or a damaged one: start from the defaults

    def rate(self, key: str, kind: str) -> float:
        """Seconds per unit of ``kind`` on machine ``key``: measured here, else the default."""
        with self._lock:
            return self._rates.get(key, {}).get(kind, DEFAULT_RATES[kind])

    def measured(self, key: str) -> int:
        """How many cloaks have refined ``key``'s step speed (0: still the first guess)."""
        with self._lock:
            return self._counts.get(key, {}).get("step", 0)

    def record(self, key: str, kind: str, units: float, seconds: float) -> None:
        """Learn from ``seconds`` spent on ``units`` of ``kind`` (ignored when either is not positive) and save."""
        if units <= 0 or seconds <= 0:
            return
        with self._lock:
            rates, counts = self._rates.setdefault(key, {}), self._counts.setdefault(key, {})
            new = seconds / units
            n = counts.get(kind, 0)
            rates[kind] = new if n == 0 else (1 - LEARN) * rates[kind] + LEARN * new
            counts[kind] = n + 1
            data = {"rates": self._rates, "counts": self._counts}
        self._save(data)

    def _save(self, data: dict) -> None:
        """Write the file atomically; a read-only home only loses the memory, not the page."""
        text = json.dumps(data, indent=1, sort_keys=True)
        with contextlib.suppress(OSError):
            _atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))


@dataclass(frozen=True)
class Work:
    """One picture's work at the size it is cloaked: megapixels of its tiles (times ``steps``) and of its
    figures, and how many tiles (the progress says "tile 2 of 6")."""

    width: int
    height: int
    steps: int
    tiles: int
    cloak_mpx: float  # the tiles' pixels, overlaps counted, in millions
    figure_mpx: float  # the pixels the figures look at, in millions (0 without figures)

    @property
    def step_units(self) -> float:
        return self.cloak_mpx * self.steps


def work(width: int, height: int, steps: int, *, tile: int = 512, overlap: int = 64, multiple: int = 8,
         figure_tiles: int = 4, figures: bool = True) -> Work:
    """The :class:`Work` of cloaking a ``width × height`` picture in ``steps`` steps, tiled as the cloak tiles
    it (:func:`glazeish.tiling.plan_tiles`) and measured on at most ``figure_tiles`` tiles (0: all)."""
    if width < 1 or height < 1:
        raise ValueError(f"a picture must be at least 1×1 px, not {width}×{height}")
    rounded = (-(-height // multiple) * multiple, -(-width // multiple) * multiple)
    tiles = plan_tiles(*rounded, max(multiple, tile // multiple * multiple), overlap, multiple)
    cloak_mpx = sum(t.h * t.w for t in tiles) / 1e6
    fig = plan_tiles(height, width, tile, 0)
    sampled = fig if figure_tiles <= 0 or figure_tiles >= len(fig) else fig[:figure_tiles]
    figure_mpx = (sum(t.h * t.w for t in sampled) + width * height) / 1e6 if figures else 0.0
    return Work(width, height, max(0, int(steps)), len(tiles), cloak_mpx, figure_mpx)


@dataclass(frozen=True)
class Estimate:
    """Expected seconds of one picture: its cloak and its figures."""

    cloak: float
    figures: float

    @property
    def total(self) -> float:
        return self.cloak + self.figures


def plan(w: Work, book: SpeedBook, key: str) -> Estimate:
    """What ``w`` should take on machine ``key``, from the book's measured speed."""
    return Estimate(w.step_units * book.rate(key, "step"), w.figure_mpx * book.rate(key, "figure"))
