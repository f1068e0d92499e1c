"""The Ray actors that run the tasks: each builds its state once (e.g. loads the encoders), then runs one task per
call; :class:`_ActorPool` starts them (failing fast when the first cannot build their state), replaces a dead one and
kills them all at the end. Ray is imported only inside the functions that use it."""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any, Callable

from ..errors import first_line
from ..imageio import ImageError

__all__ = ["FORWARDED_ENV", "WorkerSetupError"]

#: Environment variables the driver passes on to every worker (a node started with ``ray start`` does not
#: otherwise see the driver's environment). The CPU-level limits go too: a driver held to AVX2 chose its
#: precision for that level, and its workers compute at it.
FORWARDED_ENV = ("GLAZEISH_MODELS", "GLAZEISH_OFFLINE", "HF_HUB_OFFLINE", "HF_HOME", "TORCH_HOME",
                 "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


log = logging.getLogger(__package__)


class WorkerSetupError(RuntimeError):
    """A worker could not build its state (e.g. the encoder weights are missing); nothing was run."""


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

        from ..device import cpu_class

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
