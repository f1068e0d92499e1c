"""The models, loaded once: :class:`ProtectorCache` keeps the loaded encoders and a
:class:`~glazeish.job.Cloaker` per job between batches, and the decoder that shows "what a model sees".

Loading weights is the slow part of a first Cloak; everything after it reuses what is here.
"""

import threading
from collections import OrderedDict

from ..encoders import load_encoder, load_encoders
from ..evaluation import Evaluator
from ..job import Cloaker, Job
from ..protect import Protector

VIEW_DECODER = "taef2"  # the decoder that shows "what a model sees" when the attacked encoders have none


class ProtectorCache:
    """One :class:`~glazeish.job.Cloaker` per job, and one loaded encoder set per encoder spec.

    Loading weights is the slow part, so ensembles are shared between jobs that differ only in eps, steps,
    objective, seed, target or metadata. Both caches are small LRUs keyed by fingerprints; ``lock`` serialises
    the heavy work so that one job (or a cancelled job's last step) never overlaps another.
    """

    def __init__(self, max_protectors: int = 8, max_ensembles: int = 2):
        self.max_protectors, self.max_ensembles = max_protectors, max_ensembles
        self._cloakers: OrderedDict[str, Cloaker] = OrderedDict()
        self._ensembles: OrderedDict[tuple, object] = OrderedDict()
        self._viewers: dict[tuple, Evaluator] = {}
        self.lock = threading.RLock()
        self.loads = 0  # how many times weights were loaded (tests check the cache works)

    def ready(self, job: Job) -> bool:
        """Whether ``job``'s encoders are loaded already (the next start has no loading to wait for)."""
        c = job.config.resolved()
        # no lock: the page asks this while a job holds the lock for a whole image (a dict lookup is atomic)
        return (c.encoder, c.models_dir, c.device) in self._ensembles

    def get(self, job: Job) -> Cloaker:
        config = job.config.resolved()
        key = job.key("", "")
        with self.lock:
            if key in self._cloakers:
                self._cloakers.move_to_end(key)
                return self._cloakers[key]
            ens_key = (config.encoder, config.models_dir, config.device)
            ensemble = self._ensembles.get(ens_key)
            if ensemble is None:
                ensemble = load_encoders(config.encoder, config.models_dir, config.device)
                self.loads += 1
                self._ensembles[ens_key] = ensemble
                while len(self._ensembles) > self.max_ensembles:
                    self._ensembles.popitem(last=False)
            else:
                self._ensembles.move_to_end(ens_key)
            cloaker = Cloaker(job, Protector(config, ensemble=ensemble))
            self._cloakers[key] = cloaker
            while len(self._cloakers) > self.max_protectors:
                self._cloakers.popitem(last=False)
            return cloaker

    def viewer(self, cloaker: Cloaker) -> Evaluator:
        """What draws "what a model sees": the attacked encoders' first decoder, else taef2's."""
        if cloaker.evaluator.mimic is not None:
            return cloaker.evaluator
        config = cloaker.protector.config
        key = (VIEW_DECODER, config.models_dir, str(cloaker.protector.device))
        with self.lock:
            if key not in self._viewers:
                model = load_encoder(VIEW_DECODER, config.models_dir).to(cloaker.protector.device)
                self._viewers[key] = Evaluator([model])
                self.loads += 1
            return self._viewers[key]
