"""Public names of a package imported on first use (PEP 562), so that ``glazeish --help`` and ``glazeish bench
--help`` do not pay the second or two that torch takes to import."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable


def lazy_names(package: str, namespace: dict[str, Any], homes: dict[str, str]) -> tuple[Callable, Callable]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: a name of ``homes`` (name → submodule) or a submodule
    (``glazeish.attack`` was an attribute once the package had imported it) is imported when first asked for
    and kept in ``namespace`` (the package's globals), so it is looked up once."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            value = getattr(importlib.import_module(f".{homes[name]}", package), name)
        elif name.isidentifier() and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f".{name}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
