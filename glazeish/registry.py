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

import importlib
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

    def __init__(self, kind: str, plugins: tuple[str, ...] = ()):
        """``plugins``: modules (absolute names) that register more entries, imported when the registry is
        first read rather than when it is defined: a module can then define the registry, and a command's
        ``--help`` that only names the module pays nothing for its plug-ins (the benchmark's peers import
        torch)."""
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._plugins = list(plugins)

    @property
    def _all(self) -> dict[str, T]:
        """Every entry, the plug-ins imported first (once; each is dropped before its import, so that its own
        registering does not import it again)."""
        while self._plugins:
            importlib.import_module(self._plugins.pop(0))
        return self._entries

    def alias(self, name: str, spec: str) -> None:
        """Let ``name`` stand for ``spec`` (``jpeg75`` for ``jpeg:75``): the one place where a setting that became
        an argument keeps its old name. An alias takes no argument of its own."""
        if name in self._all:
            raise ValueError(f"{self.kind} name {name!r} is already an entry")
        self[spec]  # the entry it names exists
        self._aliases[name] = spec

    def resolve(self, spec: str) -> str:
        """``spec`` with an alias replaced by what it stands for (``jpeg75`` -> ``jpeg:75``)."""
        name, arg = parse_spec(spec)
        return self._aliases[name] if name in self._aliases and arg is None else str(spec).strip()

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
        return parse_spec(self.resolve(name))[0] in self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __getitem__(self, spec: str) -> T:
        name, arg = parse_spec(self.resolve(spec))
        if name in self._aliases:  # an alias given an argument
            raise ValueError(f"{name!r} takes no ':' argument (got {name}:{arg}); it stands for {self._aliases[name]}")
        try:
            return self._all[name]
        except KeyError:
            known = ", ".join([*self._all, *self._aliases])
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def get(self, name: str, default=None):
        return self._all.get(name, default)

    def items(self):
        return self._all.items()

    def names(self) -> list[str]:
        return list(self._all)

    def help(self, sep: str = "; ") -> str:
        """``name: description`` of every entry, for ``--help`` texts (aliases after the entry they name)."""
        def line(n: str, c) -> str:
            also = [a for a, spec in self._aliases.items() if parse_spec(spec)[0] == n]
            return (f"{n}: {c.description}" if c.description else n) + (f" ({', '.join(also)})" if also else "")

        return sep.join(line(n, c) for n, c in self._all.items())

    def build(self, spec: str, **context: Any):
        """Build the entry named by ``spec`` (``name`` or ``name:arg``) with ``context`` (see the module doc)."""
        cls = self[spec]  # unknown names, and an alias given an argument, are refused here
        return cls.from_spec(parse_spec(self.resolve(spec))[1], **context)

    def build_all(self, specs: str | Any, **context: Any) -> list:
        """Build every comma-separated spec; all names are checked before anything is built (some are slow)."""
        wanted = split_specs(specs)
        for s in wanted:
            self[s]
        return [self.build(s, **context) for s in wanted]
