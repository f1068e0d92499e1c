"""The waiting line: :class:`Jobs` runs each tab's job in its own thread, one at a time (first pressed, first
cloaked), tells each waiting tab its place and wait, and lets Cancel (the tab's own job) or a shutdown (all of them)
stop them at the next optimisation step.
"""

import threading
import time
from collections.abc import Callable

from ..webpage import duration
from .batch import BatchUpdate
from .progress import Progress

#: how many jobs may wait in line for the one that runs (each tab shows its place and the wait)
MAX_WAITING = 16


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
