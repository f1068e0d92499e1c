"""One registry protocol for every kind of plug-in: encoders, objectives, transforms, purifications and the
benchmark's protections.

An entry is a class with a ``name`` (non-empty; no surrounding spaces, no ``,`` or ``:``, which separate names
and arguments on the command line) and a one-line ``description``. A :class:`Registry` keeps the entries of one
kind; its decorator refuses a name that another class already holds, so a plug-in cannot silently replace a
built-in (re-registering the same class, e.g. a reloaded module, is fine).

Specs are ``name`` or ``name:argument`` (``ae:taesana``, ``diffusers:stabilityai/sd-vae-ft-mse``,
``external:glaze``); :meth:`Registry.build` parses one and calls the entry's :meth:`Registered.from_spec` with
the argument and a *context* of keywords (the loaded model, a seed, a target pattern, ...). The default
``from_spec`` refuses an argument and passes the entry's constructor those context keywords that it accepts,
so every kind is built the same way::

    OBJECTIVES.build("mimic", target=pattern)
    PURIFICATIONS.build_all("jpeg75,ae:taesana", model=taef2, seed=0)
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Generic, Iterator, TypeVar

T = TypeVar("T", bound=type)


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"name:arg"`` -> ``("name", "arg")``; ``"name"`` -> ``("name", None)`` (split at the first ``:``)."""
    name, sep, arg = str(spec).strip().partition(":")
    return name.strip(), (arg.strip() if sep else None)


def split_specs(specs: str | Any) -> list[str]:
    """``"a, b:x,"`` or ``["a", "b:x"]`` -> ``["a", "b:x"]`` (empty parts dropped, order kept)."""
    parts = [specs] if isinstance(specs, str) else list(specs)
    return [s.strip() for p in parts for s in str(p).split(",") if s.strip()]


def accepted(fn, context: dict[str, Any]) -> dict[str, Any]:
    """The keywords of ``context`` that the callable ``fn`` accepts (all of them if it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(context)
    return {k: v for k, v in context.items() if k in params}


class Registered:
    """Base of every registry entry: a ``name``, a ``description`` and how to build it from a spec."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @classmethod
    def from_spec(cls, arg: str | None = None, **context: Any):
        """Build the entry for ``name[:arg]``; ``context`` keywords go to the constructor where it takes them.

        Entries that take an argument (``ae:<encoder>``) override this; the default refuses one.
        """
        if arg is not None:
            raise ValueError(f"{cls.name!r} takes no ':' argument (got {cls.name}:{arg})")
        return cls(**accepted(cls, context))


class Registry(Generic[T]):
    """The registered classes of one kind (``kind`` names them in messages), in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator: add ``cls`` under ``cls.name``; a name held by another class is refused."""
        name = getattr(cls, "name", "")
        if not name or not isinstance(name, str) or "," in name or ":" in name or name != name.strip():
            raise ValueError(f"{cls.__name__}: a {self.kind} needs a non-empty name without ',' or ':' ({name!r})")
        old = self._entries.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"{self.kind} name {name!r} already taken by {old.__qualname__}")
        self._entries[name] = cls
        return cls

    __call__ = register  # so that ``@REGISTRY`` works as well as ``@REGISTRY.register``

    def unregister(self, name: str) -> None:
        """Remove ``name`` if registered (a plug-in unloading itself; tests that register a temporary entry)."""
        self._entries.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return parse_spec(name)[0] in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, spec: str) -> T:
        name, _ = parse_spec(spec)
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries)}") from None

    def get(self, name: str, default=None):
        return self._entries.get(name, default)

    def items(self):
        return self._entries.items()

    def names(self) -> list[str]:
        return list(self._entries)

    def help(self, sep: str = "; ") -> str:
        """``name: description`` of every entry, for ``--help`` texts."""
        return sep.join(f"{n}: {c.description}" if c.description else n for n, c in self._entries.items())

    def build(self, spec: str, **context: Any):
        """Build the entry named by ``spec`` (``name`` or ``name:arg``) with ``context`` (see the module doc)."""
        name, arg = parse_spec(spec)
        return self[name].from_spec(arg, **context)

    def build_all(self, specs: str | Any, **context: Any) -> list:
        """Build every comma-separated spec; all names are checked before anything is built (some are slow)."""
        wanted = split_specs(specs)
        for s in wanted:
            self[s]
        return [self.build(s, **context) for s in wanted]
