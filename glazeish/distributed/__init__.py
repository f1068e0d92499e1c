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

The package, by stage: :mod:`.manifest` (the record of finished items), :mod:`.actors` (the Ray actors and their
pool), :mod:`.tasks` (:func:`run_tasks`: plan, run, publish), :mod:`.protect` (:func:`protect_with_ray`).
"""

from __future__ import annotations

from ..job import OutdirBusyError
from .actors import FORWARDED_ENV, WorkerSetupError  # noqa: F401
from .manifest import MANIFEST_NAME, STAGING_DIR, Manifest
from .protect import ProtectItem, file_sha256, protect_with_ray
from .tasks import TaskReport, check_reachable, plan_workers, run_tasks

__all__ = [
    "MANIFEST_NAME", "STAGING_DIR", "Manifest", "OutdirBusyError", "ProtectItem", "TaskReport", "WorkerSetupError",
    "check_reachable", "file_sha256", "plan_workers", "protect_with_ray", "run_tasks",
]
