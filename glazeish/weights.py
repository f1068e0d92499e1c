"""Where encoder weights come from: a model directory, a cache, or a checked download.

Each encoder declares its files as :class:`WeightFile` (name, sha256, upstream URL) next to its loader in
:mod:`glazeish.encoders`. Search order for a file: the ``models_dir`` argument (which must exist when given),
then ``$GLAZEISH_MODELS``, then the cache (``$GLAZEISH_CACHE`` or ``~/.cache/glazeish/models``). A missing file
is downloaded from its upstream URL into the cache unless ``$GLAZEISH_OFFLINE=1``; every file is checked
against its sha256 before use.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

UPSTREAM = "https://github.com/madebyollin/taesd/raw/main/"


@dataclass(frozen=True)
class WeightFile:
    """One weight file: its name, the sha256 it must have, and where it is downloaded from."""

    name: str
    sha256: str
    upstream: str = UPSTREAM

    @property
    def url(self) -> str:
        return self.upstream + self.name


class WeightsError(RuntimeError):
    """A weight file is missing, unreadable or corrupt; the message says how to fix it."""


def cache_dir() -> Path:
    env = os.environ.get("GLAZEISH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "glazeish" / "models"


def search_dirs(models_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where weight files are looked for, in order; a ``models_dir`` that is not a folder is an error."""
    dirs = []
    if models_dir:
        d = Path(models_dir).expanduser()
        if not d.is_dir():
            raise WeightsError(f"{d}: the model folder does not exist (check --models / GLAZEISH_MODELS)")
        dirs.append(d)
    if os.environ.get("GLAZEISH_MODELS"):
        dirs.append(Path(os.environ["GLAZEISH_MODELS"]).expanduser())
    dirs.append(cache_dir())
    return dirs


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, wf: WeightFile) -> Path:
    digest = sha256_of(path)
    if digest != wf.sha256:
        raise WeightsError(
            f"{path}: sha256 {digest[:16]}… does not match the expected {wf.sha256[:16]}…; "
            f"delete it and download it again from {wf.url}"
        )
    return path


def find(wf: WeightFile, models_dir: str | os.PathLike | None = None) -> Path | None:
    """Return the first verified copy of ``wf`` in the search path, or None."""
    for d in search_dirs(models_dir):
        p = d / wf.name
        if p.is_file():
            return _verify(p, wf)
    return None


def download(wf: WeightFile, dest_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """Download ``wf`` from upstream into ``dest_dir`` (the cache), verify it, rename atomically."""
    name = wf.name
    dest_dir = dest_dir or cache_dir()
    hint = (
        f"could not download {name} from {wf.url}. Download it by hand and put it in "
        f"{dest_dir} (or point GLAZEISH_MODELS / --models at a folder that holds it)"
    )
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")
    except OSError as e:
        raise WeightsError(f"{hint} ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(wf.url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        _verify(Path(tmp), wf)
        os.replace(tmp, dest_dir / name)
    except WeightsError:
        os.unlink(tmp)
        raise
    except Exception as e:  # network errors come in many types; all mean the same to the user
        os.unlink(tmp)
        raise WeightsError(f"{hint} ({type(e).__name__}: {e})") from None
    return dest_dir / name


def resolve(wf: WeightFile, models_dir: str | os.PathLike | None = None) -> Path:
    """Path of a verified copy of ``wf``, downloading it if allowed."""
    found = find(wf, models_dir)
    if found:
        return found
    if os.environ.get("GLAZEISH_OFFLINE", "").lower() in ("1", "true", "yes"):
        looked = ", ".join(str(d) for d in search_dirs(models_dir))
        raise WeightsError(
            f"model weights {wf.name} not found (looked in {looked}) and GLAZEISH_OFFLINE is set; "
            f"download {wf.url} into one of those folders"
        )
    return download(wf)
