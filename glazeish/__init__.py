"""glazeish: cloak artwork against diffusion-model style mimicry, and measure how well cloaks hold up."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

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


def __getattr__(name: str) -> Any:
    """A public name, or a submodule (``glazeish.attack`` was an attribute once the package had imported it),
    imported when first asked for; kept in the package's namespace afterwards, so it is looked up once."""
    if name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    elif name.isidentifier() and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
