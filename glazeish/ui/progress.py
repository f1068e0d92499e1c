"""The progress of a batch: one overall bar, named phases, time so far and time left (:class:`Progress`).

The batch runner (:mod:`glazeish.ui.batch`) moves it; the waiting line (:mod:`glazeish.ui.jobs`) asks it how long a
job still takes; :func:`glazeish.webpage.render_progress` draws its :meth:`Progress.snapshot`.
"""

import threading
import time
from collections.abc import Callable, Sequence

from ..estimate import Estimate
from ..protect import Step
from ..webpage import duration, plural

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
