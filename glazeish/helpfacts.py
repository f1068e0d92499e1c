"""What the command line's help shows of the registries and presets, without importing torch for it each time.

The words live in one place each: an encoder's, objective's, transform's or purification's ``description`` on
its registered class, a preset's settings in :data:`glazeish.config.PRESETS`. Those modules import torch at
their top (a second or two, most of a ``--help``), and a class cannot be described without being defined, so
:func:`help_facts` gathers the words from the live registries once (:func:`gather`), keeps them in
``$XDG_CACHE_HOME/glazeish/help.json`` (``~/.cache``) under a digest of the package's source, and reads them
back while the source is the same. An upgrade or an edited module changes the digest: the next call gathers
again, so the help never shows words that the code no longer has. Without a writable cache every call gathers.

Nothing here imports torch but :func:`gather` (only when the kept facts are missing or stale).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
#: the preset fields that ``glazeish protect --help`` prints
PRESET_FIELDS = ("eps_levels", "steps", "summary", "budget", "rms_levels", "robust")
#: the facts :func:`gather` returns; a kept file without one of them is gathered again
KEYS = ("presets", "encoders", "objectives", "transforms", "purifications", "platforms", "default_robust",
        "default_max_pixels", "bench")


def cache_file() -> Path:
    """Where the facts are kept: beside this computer's speed file (``$XDG_CACHE_HOME/glazeish``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "glazeish" / "help.json"


def source_digest() -> str:
    """sha256 of every module of the package, names and bytes: what the facts were gathered from."""
    files = sorted(PACKAGE.rglob("*.py"))
    if not files:  # imported from a zip or from bytecode alone: nothing to tell one version from another
        raise OSError(f"{PACKAGE}: no source to digest")
    h = hashlib.sha256()
    for f in files:
        data = f.read_bytes()
        h.update(f"{f.relative_to(PACKAGE).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def gather() -> dict[str, Any]:
    """The facts from the live registries (imports torch). As JSON reads them back, so that a help built
    from kept facts and one built from gathered facts are the same bytes."""
    from .bench.protections import DEFAULT_PROTECTIONS, PROTECTIONS, QUICK_PROTECTIONS
    from .config import PRESETS
    from .encoders import ENCODERS
    from .imageio import DEFAULT_MAX_PIXELS
    from .objectives import OBJECTIVES
    from .platforms import PLATFORMS
    from .purify import DEFAULT_PURIFICATIONS, PURIFICATIONS, QUICK_PURIFICATIONS
    from .transforms import DEFAULT_ROBUST, TRANSFORMS

    facts = {
        "presets": {k: {f: getattr(p, f) for f in PRESET_FIELDS} for k, p in PRESETS.items()},
        "encoders": ENCODERS.help(), "objectives": OBJECTIVES.help(), "transforms": TRANSFORMS.help(),
        "purifications": PURIFICATIONS.help(), "platforms": list(PLATFORMS), "default_robust": DEFAULT_ROBUST,
        "default_max_pixels": DEFAULT_MAX_PIXELS,
        "bench": {"protections": PROTECTIONS.help(), "default_protections": list(DEFAULT_PROTECTIONS),
                  "quick_protections": list(QUICK_PROTECTIONS), "default_purifications": list(DEFAULT_PURIFICATIONS),
                  "quick_purifications": list(QUICK_PURIFICATIONS)},
    }
    return json.loads(json.dumps(facts))


def _kept(path: Path, digest: str) -> dict[str, Any] | None:
    """The facts kept in ``path`` for this source, or None (no file, another source, a damaged file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("source") != digest or not isinstance(data.get("facts"), dict):
        return None
    facts = data["facts"]
    return facts if all(k in facts for k in KEYS) else None


def _keep(path: Path, digest: str, facts: dict[str, Any]) -> None:
    """Write the facts for next time; a cache that cannot be written only costs the next call the gathering."""
    from .imageio import _atomic_write  # already imported by gather()

    text = json.dumps({"source": digest, "facts": facts}, ensure_ascii=False)
    with contextlib.suppress(OSError):
        _atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def help_facts() -> dict[str, Any]:
    """The facts the help shows: kept ones while the package's source is unchanged, else gathered and kept."""
    try:
        digest, path = source_digest(), cache_file()
    except (OSError, RuntimeError):  # an unreadable module; no home folder to find the cache in
        return gather()
    facts = _kept(path, digest)
    if facts is None:
        facts = gather()
        _keep(path, digest, facts)
    return facts
