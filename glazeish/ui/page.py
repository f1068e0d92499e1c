"""The page's event handlers: :class:`Page` holds its state (the models, the workspace, the measured speed, the
waiting line) and answers each event: an upload (checked at once, with each picture's expected time and the posting
sizes it could be cloaked at instead, :func:`forecasts`), a preset or setting changed, Cloak (the job in its own
thread, followed twice a second), Cancel, and the server's shutdown.

The handlers return HTML from :mod:`glazeish.webpage` and Gradio updates made with the ``gr`` module they are given;
:mod:`glazeish.ui.layout` lays out the components and wires them to these.
"""

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from ..config import PRESETS
from ..estimate import POSTING_SIDES, WARN_SECONDS, SpeedBook, plan
from ..job import Job
from ..webpage import (
    Forecast,
    Offer,
    Upload,
    plural,
    preset_examples,
    render_checks,
    render_presets,
    render_progress,
    render_results,
    render_status,
)
from .batch import BatchUpdate, cloak_batch, job_work, speed_key
from .jobs import Jobs, _Outbox, ordinal, waiting_words
from .progress import Progress
from .settings import EXPORT_QUALITY, Settings, written
from .uploads import check_upload, friendly_error

log = logging.getLogger(__package__)  # "glazeish.ui": one logger for the whole page


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
    """The page's controls (in :data:`CONTROLS`' order) as :class:`Settings`."""
    return Settings(intensity=intensity, eps=eps, steps=steps, robust=robust, encoders=list(encoders or []),
                    objective=objective, target=target or None, seed=int(seed or 0), metadata=metadata,
                    note=note, creator=creator, copyright=copyright_, platforms=tuple(platforms or ()),
                    max_side=None if size in (None, "", "full") else int(size), export=export or "png",
                    quality=int(quality or EXPORT_QUALITY))


#: the controls that make up :class:`Settings`, in :func:`settings_of`'s order
CONTROLS = ("intensity", "eps", "steps", "robust", "encoders", "objective", "target", "seed", "metadata", "note",
            "creator", "copyright_", "post_to", "size", "export", "quality")
