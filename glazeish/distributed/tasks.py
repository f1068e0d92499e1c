"""The generic layer, :func:`run_tasks`: plan (what the manifest has not recorded, each key once), run on a pool of
Ray actors sized to the cluster, and publish each result as it streams back (manifest line, report, callbacks); an
item whose task raised fails alone, one whose worker died is retried on a fresh worker."""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

from ..errors import first_line
from .actors import _ActorPool, _task_error
from .manifest import Manifest

__all__ = ["TaskReport", "check_reachable", "plan_workers", "run_tasks"]

T = TypeVar("T")
R = TypeVar("R")


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
