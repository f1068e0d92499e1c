"""``glazeish protect --ray``: the CLI's loop over images on :func:`~glazeish.distributed.tasks.run_tasks`, each
image staged by its worker under its job key, recorded in the manifest by the driver, then renamed onto its output
(so a rerun resumes exactly where a crash left off)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from ..imageio import Found, ImageError, _atomic_write, _move_no_clobber
from ..job import lock_outdir, plan_outputs
from .manifest import MANIFEST_NAME, STAGING_DIR, Manifest
from .tasks import run_tasks

__all__ = ["ProtectItem", "file_sha256", "protect_with_ray"]

def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a regular file's bytes (OSError for anything else: a FIFO must not hang the driver)."""
    h = hashlib.sha256()
    with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path}: not a regular file")
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ProtectItem:
    """One image: where it is, where its cloak goes, its job key and where the worker stages the file."""

    src: str  # absolute: workers do not share the driver's working directory
    dest: str
    key: str
    staged: str
    label_src: str = ""  # the paths as the user gave them, for rows and messages (as the local CLI prints)
    label_dest: str = ""


def _protect_task(cloaker, item: ProtectItem) -> dict:
    """Worker side: cloak one image into its staging file (the one job path, :meth:`Cloaker.cloak_file`), then
    write its row next to it (that order: a staged ``.json`` therefore always has a complete image beside it)."""
    from ..evaluation import jsonable, one_line

    staged = Path(item.staged)
    try:
        done = cloaker.cloak_file(item.src, item.dest, write_to=staged)
    except ImageError as e:
        msg = str(e)
        if item.label_src and msg.startswith(item.src):
            raise ImageError(item.label_src + msg[len(item.src):]) from None
        raise
    done.src, done.dest = item.label_src or item.src, item.label_dest or item.dest
    row = jsonable(done.row(cloaker.protector.config, cloaker.protector.precision))
    summary = one_line(Path(done.dest).name, done.figures) if done.figures is not None else None
    out = {"row": row, "summary": summary, "bytes": staged.stat().st_size, "warnings": done.warnings}
    _atomic_write(staged.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(out, default=str)))
    return out


def _place(staged: Path, dest: Path, overwrite: bool) -> None:
    """Move a staged cloak onto its output (into its sub-folder), never over an existing file unless ``overwrite``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        os.replace(staged, dest)
    else:
        _move_no_clobber(staged, dest)


def _output_ok(dest: Path, record: dict) -> bool:
    """The recorded output is there and is the file that was recorded (same size)."""
    try:
        return dest.stat().st_size == record.get("bytes")
    except OSError:
        return False


def protect_with_ray(
    files: Sequence[str | os.PathLike | Found],
    outdir: str | os.PathLike,
    job,
    *,
    overwrite: bool = False,
    address: str | None = None,
    num_workers: int | None = None,
    on_row: Callable[[dict, str | None], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    cpus_per_worker: int | None = None,
    gpus_per_worker: float = 0.0,
) -> tuple[list[dict], list[str]]:
    """``glazeish protect --ray``: cloak ``files`` into ``outdir`` on Ray workers; resumable, exactly once.

    ``job`` is the :class:`~glazeish.job.Job` (its config resolved, so every worker runs the same precision).
    Same outputs as the local CLI loop (the names of :func:`~glazeish.job.plan_outputs`; ``files`` may be the
    :class:`~glazeish.imageio.Found` entries of a listing, whose sub-folders are kept), the same bytes for
    the same seed, the same ``--json`` rows, passed to ``on_row(row, summary line)`` as each image finishes.
    Messages for stderr (errors, notes, warnings, skipped files; each one line starting ``glazeish:``) go to
    ``on_message``;
    ``on_progress(n)`` says that ``n`` more files were dealt with (done, resumed, skipped or failed). An
    existing output is skipped unless ``overwrite``, as in the CLI, except one that this command recorded in
    ``OUTDIR/.glazeish-manifest.jsonl`` under the same job key: that one counts as done even with
    ``overwrite`` (it would come out the same). ``num_workers``, ``cpus_per_worker``, ``gpus_per_worker`` and
    ``address``: see :func:`run_tasks`.

    Returns ``(rows done in this run, error messages)``; the CLI exits 1 if there are any errors. Raises
    :class:`WorkerSetupError` when the workers cannot load the models, :class:`OutdirBusyError` when another
    run holds ``outdir``, ``ConnectionError`` when ``address`` cannot be reached, and ``ImportError`` without Ray.
    """
    import sys

    from ..job import Cloaker

    say = on_message or (lambda s: print(s, file=sys.stderr))
    job = replace(job, config=job.config.resolved())  # absolute paths, device and precision decided here
    out = Path(outdir).resolve()
    (out / STAGING_DIR).mkdir(parents=True, exist_ok=True)
    with lock_outdir(out):
        run = _RayProtect(job, out, overwrite, say, on_progress or (lambda n: None), on_row)
        todo = run.plan(files, outdir)
        try:
            report = run_tasks(
                _protect_task, todo, setup_fn=partial(Cloaker, job), key_fn=lambda it: it.key,
                manifest_path=out / MANIFEST_NAME, is_done=lambda it, rec: _output_ok(Path(it.dest), rec),
                record_fn=run.record, on_result=run.commit, on_error=run.error, num_workers=num_workers,
                address=address, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
            )
        finally:
            try:
                run.staging.rmdir()  # only if empty: leftovers are staged results a rerun will adopt
            except OSError:
                pass
        if report.worker_deaths:
            say(f"glazeish: {report.worker_deaths} worker(s) died during the run and were replaced")
        return run.rows, run.errors


def _digest(src: Path) -> str:
    try:
        return file_sha256(src)
    except OSError:
        return "unreadable"  # the worker reports why, in the CLI's words


class _RayProtect:
    """One ``protect --ray`` run in a locked output folder: :meth:`plan` (the CLI's names, the inputs' job keys,
    what an earlier run finished or staged), then, as the workers finish, :meth:`record` (the manifest's line),
    :meth:`commit` (the staged file onto its output, the row out) or :meth:`error`."""

    def __init__(self, job, out: Path, overwrite: bool, say: Callable[[str], None], progress: Callable[[int], None],
                 on_row: Callable[[dict, str | None], None] | None):
        self.job, self.out, self.overwrite = job, out, overwrite
        self.say, self.progress, self.on_row = say, progress, on_row
        self.staging = out / STAGING_DIR
        for junk in self.staging.glob(".*.tmp"):  # temp files of workers killed mid-write (writes are atomic)
            junk.unlink(missing_ok=True)
        self.manifest = Manifest(out / MANIFEST_NAME)
        self.errors: list[str] = []
        self.rows: list[dict] = []
        self.notes: dict[str, str] = {}  # said once written, as in the CLI

    # -- plan ------------------------------------------------------------------------------------

    def plan(self, files, outdir) -> list[ProtectItem]:
        """The items to run; those an earlier run finished are completed here, existing outputs skipped."""
        from concurrent.futures import ThreadPoolExecutor

        wanted = self._wanted(files, outdir)
        # the inputs are hashed up front (that is what makes a rerun safe); threads overlap the reads
        with ThreadPoolExecutor(max_workers=8) as pool:
            digests = list(pool.map(_digest, [w[1] for w in wanted]))
        ext = Path(self.job.output_name("x")).suffix
        todo: list[ProtectItem] = []
        resumed = 0
        for (f, src, dest, label_dest, rel), dig in zip(wanted, digests):
            key = self.job.key(dig, rel)
            staged = self.staging / f"{key}{ext}"
            if self._resume(f, dest, label_dest, key, staged):
                resumed += 1
            elif dest.exists() and not self.overwrite:
                self.say(f"glazeish: skipped {f}: {label_dest} exists (use --overwrite to replace it)")
                self.progress(1)
            else:
                todo.append(ProtectItem(src=str(src), dest=str(dest), key=key, staged=str(staged), label_src=str(f),
                                        label_dest=label_dest))
        if resumed:
            self.say(f"glazeish: {resumed} of {len(files)} images were already done in {self.out} (resumed)")
            self.progress(resumed)
        return todo

    def _wanted(self, files, outdir) -> list[tuple[Any, Path, Path, str, str]]:
        """(as given, absolute source, output, as the CLI names it, rel) of each input the CLI's names accept."""
        wanted = []
        for item in plan_outputs(files, outdir, self.job):  # the CLI's names: one rule for both
            if item.error:
                self.errors.append(f"glazeish: error: {item.error}")
                self.say(self.errors[-1])
                self.progress(1)
                continue
            # absolute (workers do not share the driver's working directory), but not resolved: as in the CLI
            wanted.append((item.src, Path(os.path.abspath(item.src)), self.out / item.rel, str(item.dest), item.rel))
            if item.note:
                self.notes[str(item.dest)] = item.note
        return wanted

    def _resume(self, f, dest: Path, label_dest: str, key: str, staged: Path) -> bool:
        """Whether an earlier run finished this item: recorded and written, recorded with the rename interrupted
        (finished here), or staged by a worker before the driver died (adopted here)."""
        staged_json = staged.with_suffix(".json")
        rec = self.manifest.get(key)
        if rec is not None and _output_ok(dest, rec):
            return True
        if rec is not None and staged.is_file():
            _place(staged, dest, overwrite=True)
            staged_json.unlink(missing_ok=True)
            return True
        if rec is None and staged_json.is_file():
            try:
                done = json.loads(staged_json.read_text())
                if staged.stat().st_size == done["bytes"]:
                    self.manifest.append({"key": key, "input": str(f), "output": label_dest, "bytes": done["bytes"],
                                          "row": done["row"]})
                    _place(staged, dest, overwrite=True)
                    staged_json.unlink(missing_ok=True)
                    return True
            except (OSError, ValueError, KeyError):
                pass  # a torn staging pair: redo the image
        return False

    # -- publish ---------------------------------------------------------------------------------

    def record(self, item: ProtectItem, result: dict) -> dict:
        if not Path(item.staged).is_file():
            raise ImageError(f"{item.label_src}: the worker wrote {item.staged}, which this machine cannot see: "
                             "every node must share the output folder at the same path")
        return {"input": item.label_src, "output": item.label_dest, "bytes": result["bytes"], "row": result["row"]}

    def commit(self, item: ProtectItem, result: dict) -> None:
        staged = Path(item.staged)
        try:
            _place(staged, Path(item.dest), self.overwrite)
        except OSError as e:  # e.g. the output appeared meanwhile (never replaced without --overwrite)
            staged.unlink(missing_ok=True)
            staged.with_suffix(".json").unlink(missing_ok=True)
            return self.error(item, f"{item.label_dest}: not written ({e.strerror or e})")
        staged.with_suffix(".json").unlink(missing_ok=True)
        self.rows.append(result["row"])
        self.progress(1)
        if item.label_dest in self.notes:
            self.say(f"glazeish: note: {self.notes[item.label_dest]}")
        for w in result.get("warnings") or ():
            self.say(f"glazeish: warning: {item.label_src}: {w}")
        if self.on_row is not None:
            self.on_row(result["row"], result.get("summary"))

    def error(self, item: ProtectItem, msg: str) -> None:
        if not msg.startswith(item.label_src):  # e.g. "worker died 2 times ...": say which file
            msg = f"{item.label_src}: {msg}"
        self.errors.append(f"glazeish: error: {msg}")
        self.say(self.errors[-1])
        self.progress(1)
