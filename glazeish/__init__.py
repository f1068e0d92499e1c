"""glazeish: cloak artwork against diffusion-model style mimicry, and measure how well cloaks hold up."""

from __future__ import annotations

from ._lazy import lazy_names
from ._version import __version__  # noqa: F401  (glazeish.__version__)

#: the public names and the module each comes from: imported on first use (PEP 562), so that ``import
#: glazeish.cli`` (every ``glazeish --help``) does not pay the second or two that torch takes to import
_HOMES = {
    "PGD": "attack", "project": "attack",
    "PRESETS": "config", "ProtectConfig": "config",
    "Ensemble": "encoders", "LatentModel": "encoders", "load_encoder": "encoders", "load_encoders": "encoders",
    "register_encoder": "encoders",
    "Evaluator": "evaluation", "Figures": "evaluation", "assess": "evaluation", "judge": "evaluation",
    "Cloaker": "job", "Job": "job",
    "OBJECTIVES": "objectives", "Objective": "objectives", "make_objective": "objectives",
    "register_objective": "objectives",
    "Protector": "protect",
}

__all__ = list(_HOMES)


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES)
