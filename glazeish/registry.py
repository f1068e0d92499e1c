"""One rule for every name registry (objectives, transforms, purifications, benchmark protections).

A class registers under its ``name``: non-empty, no surrounding spaces, no ``,`` or ``:`` (those separate
names and arguments on the command line). Re-registering the same class (a module reloaded) is fine; a
different class under a taken name is refused, so a plug-in cannot silently replace a built-in.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T", bound=type)


def registrar(registry: dict[str, T], kind: str) -> Callable[[T], T]:
    """A class decorator that adds classes to ``registry`` under ``cls.name``; ``kind`` names them in errors."""

    def register(cls: T) -> T:
        name = getattr(cls, "name", "")
        if not name or not isinstance(name, str) or "," in name or ":" in name or name != name.strip():
            raise ValueError(f"{cls.__name__}: a {kind} needs a non-empty name without ',' or ':' ({name!r})")
        old = registry.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"{kind} name {name!r} already taken by {old.__qualname__}")
        registry[name] = cls
        return cls

    return register
