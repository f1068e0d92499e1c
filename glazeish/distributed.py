"""Scale cloaking (and benchmark grids) out over a Ray cluster: one task per image, models loaded once per worker.

Optional: needs ``pip install "glazeish[ray]"``. Ray is imported only inside the functions that start or use a
cluster, so ``import glazeish.distributed`` works without it and the local (non-Ray) path never imports it.

Two layers:

* :func:`run_tasks` — generic: runs ``task_fn(state, item)`` for every item on a pool of Ray actors, each of
  which builds its ``state`` once (``setup_fn()``, e.g. loading the encoders), streams results back to the
  driver as they finish, records every finished item in a JSON-lines *manifest* keyed by a job key, skips
  items already recorded on a rerun, reports an item whose task raised as a one-line error (the batch goes
  on), and retries an item once on a fresh actor when its worker dies (killed, out of memory, node lost).
* :func:`protect_with_ray` — ``glazeish protect --ray``: the CLI's loop over images, on :func:`run_tasks`.

Exactly once, across worker and driver crashes. The job key of an image is a hash of the input's bytes, the
output name and the :class:`~glazeish.job.Job`'s fingerprint (every setting that decides the output file, the
resolved precision included, and the glazeish version: :meth:`~glazeish.job.Job.key`). A worker writes its cloak atomically to a
staging file named by the key (``OUTDIR/.glazeish-staging/<key>.png``, plus ``<key>.json`` with its row);
the driver then appends the key to ``OUTDIR/.glazeish-manifest.jsonl`` (one line, fsync'd) and only then
renames the staged file onto the output. So at every instant an item is either not started, staged (a rerun
adopts it without recomputing), recorded but not yet renamed (a rerun finishes the rename), or done (a rerun
skips it). A worker killed mid-image leaves at most a hidden temp file, never a half output.

Multi-node: every node must see the inputs and OUTDIR at the same absolute paths (a shared filesystem);
see the README. A result staged on a node whose OUTDIR is not the driver's is reported as an error rather
than recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import time
from collections import deque
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Generic, Sequence, TypeVar

from .errors import first_line
from .imageio import Found, ImageError, _atomic_write, _move_no_clobber
from .job import OutdirBusyError, lock_outdir, plan_outputs

__all__ = [
    "MANIFEST_NAME", "STAGING_DIR", "Manifest", "OutdirBusyError", "ProtectItem", "TaskReport", "WorkerSetupError",
    "check_reachable", "file_sha256", "plan_workers", "protect_with_ray", "run_tasks",
]

MANIFEST_NAME = ".glazeish-manifest.jsonl"
STAGING_DIR = ".glazeish-staging"
#: Environment variables the driver passes on to every worker (a node started with ``ray start`` does not
#: otherwise see the driver's environment). The CPU-level limits go too: a driver held to AVX2 chose its
#: precision for that level, and its workers compute at it.
FORWARDED_ENV = ("GLAZEISH_MODELS", "GLAZEISH_OFFLINE", "HF_HUB_OFFLINE", "HF_HOME", "TORCH_HOME",
                 "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class WorkerSetupError(RuntimeError):
    """A worker could not build its state (e.g. the encoder weights are missing); nothing was run."""


# ---------------------------------------------------------------------------------------------------------
# manifest


class Manifest:
    """Append-only JSON-lines record of finished items: one ``{"key": ..., ...}`` object per line.

    Appends are one ``write`` of one line, flushed and fsync'd, by the driver only, so a crash can at most
    tear the last line; a torn or unparsable line is ignored on reading (its item is simply redone).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self._torn_tail = False
        if self.path.is_file():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self._torn_tail = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                    self.records[rec["key"]] = rec

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def append(self, record: dict) -> None:
        """Record one finished item (``record["key"]`` is its job key)."""
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        if self._torn_tail:  # start on a fresh line after a torn one, so this record is not glued to it
            line = "\n" + line
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._torn_tail = False
        self.records[record["key"]] = record


# ---------------------------------------------------------------------------------------------------------
# generic task pool


@dataclass
class TaskReport(Generic[T]):
    """What :func:`run_tasks` did: results in completion order, items skipped as already done, failures."""

    results: list[tuple[T, Any]] = field(default_factory=list)
    skipped: list[T] = field(default_factory=list)
    failed: list[tuple[T, str]] = field(default_factory=list)
    workers: int = 0
    cpus_per_worker: int = 0
    worker_deaths: int = 0
    seconds: float = 0.0


def plan_workers(total_cpus: float, num_workers: int | None = None,
                 cpus_per_worker: int | None = None) -> tuple[int, int]:
    """``(workers, cpus_per_worker)`` for a cluster with ``total_cpus`` CPUs.

    Given a worker count, each worker gets an equal share of the CPUs (at least 1; its torch thread count);
    otherwise one worker per ``cpus_per_worker`` (default 1) CPUs. Never plans more CPUs than exist unless
    the caller asked for more workers than CPUs (then each gets 1 and the CPUs are oversubscribed).
    """
    total = max(1, int(total_cpus))
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"workers must be ≥ 1, not {num_workers}")
    if cpus_per_worker is not None and cpus_per_worker < 1:
        raise ValueError(f"cpus per worker must be ≥ 1, not {cpus_per_worker}")
    if num_workers:
        return num_workers, cpus_per_worker or max(1, total // num_workers)
    cpw = cpus_per_worker or 1
    return max(1, total // cpw), cpw


def _task_error(e: Exception) -> str:
    """A one-line message for an exception raised inside a task (unwrapping Ray's wrapper)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, ImageError):
        return str(cause)  # one line already, but for what a file name may hold
    if isinstance(cause, BaseException):
        return first_line(cause)
    # Ray's own text is "ray::Actor.method() (pid=..., ip=...)\n  traceback...\npkg.mod.SomeError: message"
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    m = re.match(r"^[\w.]+(?:Error|Exception): (.+)$", lines[-1].strip())
    return m.group(1) if m else lines[-1].strip()


class _TaskActorImpl:
    """What each Ray actor runs: builds ``setup_fn()`` once, then ``task_fn(state, item)`` per call."""

    def __init__(self, setup_fn: Callable[[], Any] | None, task_fn: Callable[[Any, Any], Any], threads: int):
        import torch

        # one intra-op thread per CPU the actor holds: actors on one node must not fight over cores
        torch.set_num_threads(max(1, threads))
        t0 = time.perf_counter()
        try:
            self.state = setup_fn() if setup_fn is not None else None
        except Exception as e:  # said with the node's name: on a mixed cluster, which kind of node could not
            import socket

            raise WorkerSetupError(f"a worker on {socket.gethostname()}: {first_line(e)}") from None
        self.setup_seconds = time.perf_counter() - t0
        self.task_fn = task_fn

    def ready(self) -> dict:
        import socket

        from .device import cpu_class

        return {"pid": os.getpid(), "host": socket.gethostname(), "setup_seconds": self.setup_seconds,
                "cpu": cpu_class()}

    def run(self, item: Any) -> Any:
        return self.task_fn(self.state, item)


_ACTOR_CLASSES: dict[str, Any] = {}


def _task_actor_class():
    """The Ray actor class around :class:`_TaskActorImpl` (created on first use: Ray is optional)."""
    if "task" not in _ACTOR_CLASSES:
        import ray

        # a named class so that `ray list actors` and process titles ("ray::TaskActor.run") say what it is
        _ACTOR_CLASSES["task"] = ray.remote(type("TaskActor", (_TaskActorImpl,), {"__module__": __name__}))
    return _ACTOR_CLASSES["task"]


def _warn_if_mixed(nodes: list[dict]) -> None:
    """Say so when the workers' CPUs compute differently (see :func:`glazeish.device.cpu_class`): the same input
    may then give other bytes depending on the worker that takes it."""
    classes: dict[str, str] = {}
    for n in nodes:
        classes.setdefault(n.get("cpu", "?"), n.get("host", "?"))
    if len(classes) > 1:
        seen = "; ".join(f"{c} (e.g. {h})" for c, h in classes.items())
        log.warning("glazeish: warning: the Ray workers' CPUs compute differently (%s): a cloak's bytes may depend "
                    "on the worker that makes it; pass --precision fp32 and use one kind of node for the same bytes "
                    "everywhere", seen)


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Raise ``ConnectionError`` unless ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts a TCP connection.

    Needed because ``ray.init`` retries an unreachable address for many minutes; ``auto`` is not checked.
    """
    import socket

    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and the like: Ray resolves and reports these itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(f"cannot reach a Ray cluster at {address} ({e.strerror or e}); start one with "
                              "`ray start --head` there, or check the address and firewall") from None


def _init_ray(address: str | None, num_workers: int | None) -> bool:
    """Connect to ``address`` or start a local Ray instance; returns whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        check_reachable(address)
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        # the local instance gets every core here, or more when more workers were asked for explicitly
        ray.init(num_cpus=max(os.cpu_count() or 1, num_workers or 0), include_dashboard=False,
                 logging_level=logging.WARNING)
    return True


def run_tasks(
    task_fn: Callable[[Any, T], R],
    items: Sequence[T],
    *,
    setup_fn: Callable[[], Any] | None = None,
    key_fn: Callable[[T], str] | None = None,
    manifest_path: str | os.PathLike | None = None,
    is_done: Callable[[T, dict], bool] | None = None,
    record_fn: Callable[[T, R], dict] | None = None,
    on_result: Callable[[T, R], None] | None = None,
    on_error: Callable[[T, str], None] | None = None,
    num_workers: int | None = None,
    address: str | None = None,
    cpus_per_worker: int | None = None,
    gpus_per_worker: float = 0.0,
    retries: int = 1,
    env_vars: dict[str, str] | None = None,
) -> TaskReport[T]:
    """Run ``task_fn(state, item)`` for every item on a pool of Ray actors; results stream back as they finish.

    Args:
        task_fn: runs on a worker; ``state`` is that worker's ``setup_fn()`` (None without one). Its return
            value must be picklable (and JSON-able if it goes into the manifest). An exception it raises
            fails that item only, reported as one line.
        items: picklable work items (paths, small dataclasses, tuples of names...).
        setup_fn: builds a worker's state once (e.g. ``partial(Protector, config)``: models loaded once per
            worker, not per item). If it fails on the first workers, :class:`WorkerSetupError` is raised
            before anything runs.
        key_fn: an item's job key (same key = same work with the same result). Items whose key repeats an
            earlier item's are run once.
        manifest_path: JSON-lines record of finished items keyed by ``key_fn`` (needs ``key_fn``). On a
            rerun an item whose key is recorded is skipped (if ``is_done(item, record)`` also agrees).
        record_fn: the manifest record for a finished item (driver side; ``"key"`` is added); raising here
            fails the item and records nothing. Default: ``{"result": result}``.
        on_result: called on the driver for each finished item, after it is recorded.
        on_error: called on the driver for each failed item with a one-line message.
        num_workers, cpus_per_worker: see :func:`plan_workers`; each worker uses ``cpus_per_worker`` torch
            threads. Default: one single-threaded worker per CPU of the cluster.
        address: a Ray cluster (``"auto"``, ``"HEAD:6379"``, ``"ray://HEAD:10001"``); None starts a local
            instance with this machine's cores. A Ray instance already initialised in this process is used
            as it is and left running.
        gpus_per_worker: GPUs (or a fraction) reserved per worker; 0 leaves actors CPU-only.
        retries: how many times an item is re-run on a fresh worker after its worker died.
        env_vars: extra environment for the workers (:data:`FORWARDED_ENV` from the driver is always passed).
    """
    t_start = time.perf_counter()
    items = list(items)
    if manifest_path is not None and key_fn is None:
        raise ValueError("a manifest needs a key_fn")
    manifest = Manifest(manifest_path) if manifest_path is not None else None
    keys = [key_fn(it) for it in items] if key_fn else [None] * len(items)
    report: TaskReport[T] = TaskReport()
    todo = _plan_tasks(items, keys, manifest, is_done, report)
    if todo:
        publish = _Publisher(items, keys, manifest, record_fn, on_result, on_error, report)
        pool = _ActorPool(setup_fn, task_fn, gpus_per_worker, env_vars)
        _run_pool(pool, publish, todo, address, num_workers, cpus_per_worker, retries)
    report.seconds = time.perf_counter() - t_start
    return report


def _plan_tasks(items: list, keys: list, manifest: Manifest | None, is_done, report: TaskReport) -> list[int]:
    """The indices of the items to run: not those the manifest records as done (and ``is_done`` agrees), and
    each key once (the same work twice in one batch is done once); the others go to ``report.skipped``."""
    todo: list[int] = []
    seen: set[str] = set()
    for i, (it, k) in enumerate(zip(items, keys)):
        rec = manifest.get(k) if manifest is not None and k is not None else None
        if (rec is not None and (is_done is None or is_done(it, rec))) or (k is not None and k in seen):
            report.skipped.append(it)
            continue
        if k is not None:
            seen.add(k)
        todo.append(i)
    return todo


def _kill(actor) -> None:
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already gone
        pass


class _ActorPool:
    """The Ray actors of one :func:`run_tasks` call: each builds ``setup_fn()`` once and runs ``task_fn``;
    ``spawn`` starts one more (a replacement for a dead one), ``drop`` kills one, ``close`` all."""

    def __init__(self, setup_fn, task_fn, gpus_per_worker: float, env_vars: dict[str, str] | None):
        self.setup_fn, self.task_fn = setup_fn, task_fn
        self.env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
        self.env.update(env_vars or {})
        self.gpus_per_worker = gpus_per_worker
        self.workers, self.cpus_per_worker = 0, 0
        self.actors: list = []

    def start(self, workers: int, cpus_per_worker: int) -> None:
        """Start ``workers`` actors and wait until they have built their state: fail fast (like the local CLI,
        with :class:`WorkerSetupError`) when the first workers cannot load their models."""
        import ray
        from ray.exceptions import RayError

        self.workers, self.cpus_per_worker = workers, cpus_per_worker
        for _ in range(workers):
            self.spawn()
        try:
            _warn_if_mixed(ray.get([a.ready.remote() for a in self.actors]))
        except RayError as e:
            raise WorkerSetupError(_task_error(e)) from None

    def spawn(self):
        opts: dict[str, Any] = {"num_cpus": self.cpus_per_worker, "max_restarts": 0, "max_task_retries": 0}
        if self.gpus_per_worker:
            opts["num_gpus"] = self.gpus_per_worker
        if self.env:
            opts["runtime_env"] = {"env_vars": self.env}
        self.actors.append(_task_actor_class().options(**opts).remote(self.setup_fn, self.task_fn, self.cpus_per_worker))
        return self.actors[-1]

    def drop(self, actor) -> None:
        self.actors.remove(actor)
        _kill(actor)

    def close(self) -> None:
        for a in self.actors:
            _kill(a)


@dataclass
class _Publisher:
    """The driver's side of a finished or failed item: its manifest record, the report, the callbacks."""

    items: list
    keys: list
    manifest: Manifest | None
    record_fn: Callable | None
    on_result: Callable | None
    on_error: Callable | None
    report: TaskReport

    def fail(self, i: int, msg: str) -> None:
        self.report.failed.append((self.items[i], msg))
        if self.on_error is not None:
            self.on_error(self.items[i], msg)

    def done(self, i: int, result: Any) -> None:
        try:
            record = self.record_fn(self.items[i], result) if self.record_fn is not None else {"result": result}
        except Exception as e:  # e.g. the output is not visible from the driver
            return self.fail(i, first_line(e))
        if self.manifest is not None:
            self.manifest.append({**record, "key": self.keys[i]})
        self.report.results.append((self.items[i], result))
        if self.on_result is not None:
            self.on_result(self.items[i], result)


def _run_pool(pool: _ActorPool, publish: _Publisher, todo: list[int], address: str | None, num_workers: int | None,
              cpus_per_worker: int | None, retries: int) -> None:
    """Start Ray (unless it runs) and the pool sized to the cluster, run ``todo`` on it, and tear both down."""
    import ray

    owns = _init_ray(address, num_workers)
    try:
        total = ray.cluster_resources().get("CPU", os.cpu_count() or 1)
        workers, cpw = plan_workers(total, num_workers, cpus_per_worker)
        workers = min(workers, len(todo))
        publish.report.workers, publish.report.cpus_per_worker = workers, cpw
        pool.start(workers, cpw)
        _stream(pool, publish, todo, retries)
    finally:
        pool.close()
        if owns:
            ray.shutdown()


def _stream(pool: _ActorPool, publish: _Publisher, todo: list[int], retries: int) -> None:
    """One item in flight per worker (a dead worker takes one item with it); results published as they come.
    An item whose task raised fails; one whose worker died is retried on a fresh worker up to ``retries`` times."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    pending = deque(todo)
    idle = list(pool.actors)
    flight: dict[Any, tuple[Any, int]] = {}
    deaths: dict[int, int] = {}
    while pending or flight:
        while len(pool.actors) < pool.workers and len(idle) < len(pending):  # replace dead workers, when needed
            idle.append(pool.spawn())
        while idle and pending:
            a, i = idle.pop(), pending.popleft()
            flight[a.run.remote(publish.items[i])] = (a, i)
        (ref,), _ = ray.wait(list(flight), num_returns=1)
        a, i = flight.pop(ref)
        try:
            result = ray.get(ref)
        except RayTaskError as e:  # the task raised: this item's fault; the worker is fine
            idle.append(a)
            publish.fail(i, _task_error(e))
            continue
        except RayError as e:  # the worker died (killed, out of memory, node lost): drop it (replaced above)
            publish.report.worker_deaths += 1
            pool.drop(a)
            deaths[i] = deaths.get(i, 0) + 1
            if deaths[i] <= retries:
                pending.appendleft(i)
            else:
                publish.fail(i, f"worker died {deaths[i]} times running this item ({first_line(e)[:200]})")
            continue
        idle.append(a)
        publish.done(i, result)


# ---------------------------------------------------------------------------------------------------------
# protect


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
    from .evaluation import jsonable, one_line

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

    from .job import Cloaker

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
