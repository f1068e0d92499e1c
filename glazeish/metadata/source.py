"""Reading what an input file carries: its ICC profile and raw EXIF, and whether it already has a no-AI notice.

Damaged or unreadable EXIF never stops the cloaking: what is dropped is said in one line through a ``warn``
callable (default: a logged warning).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from PIL import Image

from ..errors import first_line

__all__ = ["SourceMetadata", "damaged_exif", "has_mining_notice", "read_source_metadata"]

log = logging.getLogger(__package__)

Warn = Callable[[str], None]  # told one line about what was dropped from a file's metadata, and why


@dataclass
class SourceMetadata:
    """What we keep from the input file."""

    icc_profile: bytes | None = None
    exif: bytes | None = None  # raw EXIF, as Pillow gives it (``Exif\\0\\0`` + TIFF structure)


def has_mining_notice(im: Image.Image) -> bool:
    """Whether an opened image file carries a PLUS "data mining" (no AI training) notice in its XMP."""
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or b""
    return b"DataMining" in (xmp.encode("utf-8", "replace") if isinstance(xmp, str) else bytes(xmp))


def read_source_metadata(im: Image.Image, warn: Warn | None = None) -> SourceMetadata:
    """The ICC profile and raw EXIF of an opened input image (either may be None). Unreadable EXIF is
    dropped with a one-line ``warn(message)`` (default: a logged warning)."""
    icc = im.info.get("icc_profile") or None
    exif = im.info.get("exif") or None
    if isinstance(exif, str):  # some PNG text-chunk paths give str
        exif = exif.encode("latin-1", "replace")
    if exif is None:
        try:
            parsed = im.getexif()  # PNG "Raw profile type exif", TIFF IFD0, ...
            if len(parsed):
                exif = parsed.tobytes()
        except Exception as err:  # corrupt EXIF must not stop the cloaking
            (warn or log.warning)(f"its EXIF is unreadable and was dropped ({first_line(err)})")
    return SourceMetadata(icc_profile=bytes(icc) if icc else None, exif=bytes(exif) if exif else None)



def _exif_text(value: Any) -> str | None:
    """An EXIF ASCII value, as read by Pillow (latin-1), back to text (UTF-8 when it is)."""
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str):
        raw = value.encode("latin-1", "replace")
    else:
        return None
    raw = raw.rstrip(b"\0").strip()
    if not raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@contextlib.contextmanager
def _exif_warnings(warn: Warn):
    """Pillow warns (and goes on) about damaged EXIF, when it loads it and when it reads a sub-IFD: one line
    through ``warn`` instead of a Python warning on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught[:1]:
        warn(damaged_exif(first_line(w.message)))


def _load_exif(raw: bytes, warn: Warn | None = None) -> Image.Exif | None:
    warn = warn or log.warning
    exif = Image.Exif()
    try:
        with _exif_warnings(warn):
            exif.load(raw)
    except Exception as err:
        warn(f"its EXIF is unreadable and was dropped ({first_line(err)})")
        return None
    return exif


def damaged_exif(detail: str) -> str:
    """The one line said about EXIF that Pillow reads only in part (the same words on reading and writing)."""
    return f"its EXIF is damaged; kept what could be read ({detail})"


def _source_exif_text(raw: bytes | None, tag: int) -> str | None:
    if not raw:
        return None
    src = _load_exif(raw, warn=lambda msg: None)  # clean_exif has said it
    if src is None:
        return None
    try:
        return _exif_text(src.get(tag))
    except Exception:
        return None
