"""The keyword arguments that make Pillow write a cloaked file's metadata (ICC profile, cleaned EXIF, the XMP
reservation) in PNG, JPEG or WebP, within what each format carries."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from PIL import PngImagePlugin
from PIL.PngImagePlugin import PngInfo

from .exif import _ARTIST, _COPYRIGHT, clean_exif
from .options import MetadataOptions
from .source import SourceMetadata, Warn, _source_exif_text
from .xmp import build_xmp

__all__ = ["ICC_MAX", "JPEG_SEGMENT_MAX", "JPEG_XMP_MAX", "check_fits", "save_kwargs"]

log = logging.getLogger(__package__)

#: the most a JPEG marker segment carries (APP1: the EXIF; the XMP packet after its 29-byte namespace)
JPEG_SEGMENT_MAX = 65533
JPEG_XMP_MAX = JPEG_SEGMENT_MAX - 29
#: the largest ICC profile each output format carries so that it reads back: a JPEG splits it over at most 255
#: APP2 segments of 65,519 bytes; Pillow refuses a PNG whose iCCP chunk inflates past its MAX_TEXT_CHUNK (1 MB)
ICC_MAX = {"JPEG": 255 * (JPEG_SEGMENT_MAX - 14), "PNG": PngImagePlugin.MAX_TEXT_CHUNK - 1}


def _pil_format(fmt: str) -> str:
    f = fmt.upper().lstrip(".")
    f = "JPEG" if f in ("JPG", "JPE") else f
    if f not in ("PNG", "JPEG", "WEBP"):
        raise ValueError(f"unsupported output format {fmt!r} for metadata; use PNG, JPEG or WEBP")
    return f


def check_fits(options: MetadataOptions, fmt: str) -> None:
    """Raise ValueError (one line) when the metadata asked for in ``options`` alone cannot fit format ``fmt``
    (a JPEG carries the XMP packet and the EXIF in one 64 KB marker segment each): a setting to change before
    any work starts, not a failure of each file."""
    if _pil_format(fmt) != "JPEG" or not options.enabled:
        return
    xmp = len(build_xmp(options))
    exif = len(clean_exif(None, options) or b"")
    if xmp > JPEG_XMP_MAX or exif > JPEG_SEGMENT_MAX:
        raise ValueError(f"the creator, copyright and url given make {max(xmp, exif):,} bytes of metadata; a JPEG "
                         f"holds at most {JPEG_XMP_MAX:,}: shorten them, or write PNG or WebP")


def save_kwargs(
    source: SourceMetadata,
    options: MetadataOptions,
    fmt: str,
    *,
    size: tuple[int, int] | None = None,
    warn: Warn | None = None,
) -> dict:
    """Keyword arguments for :meth:`PIL.Image.Image.save` in format ``fmt`` ("PNG", "JPEG", "WEBP"):
    ``icc_profile``, ``exif``, ``xmp`` (JPEG/WebP) or ``pnginfo`` (PNG, XMP in an iTXt chunk).

    Keys are present only when there is something to write. With ``options.enabled`` False, only
    the ICC profile and the cleaned EXIF are returned. When ``options.creator`` / ``copyright`` are
    not given, the XMP ``dc:creator`` / ``dc:rights`` take the input's EXIF Artist / Copyright, so the
    two stay in sync. Pass ``size=(w, h)`` if the output is not the input's size. A caller that adds
    its own ``pnginfo`` should add the XMP chunk to it (see :func:`build_xmp`).

    An ICC profile too large for the format to read back (over 1 MB in a PNG) is dropped, said through ``warn``.
    A JPEG's EXIF and XMP must each fit one 64 KB segment: the input's largest EXIF tags, then the input's
    Artist/Copyright in the XMP, are left out until they do, each said in one line through ``warn`` (default:
    a logged warning); what ``options`` asks for must fit by itself (:func:`check_fits`).
    """
    f = _pil_format(fmt)
    warn = warn or log.warning
    jpeg = f == "JPEG"

    kwargs: dict[str, Any] = {}
    icc, icc_max = source.icc_profile, ICC_MAX.get(f)
    if icc and icc_max is not None and len(icc) > icc_max:  # written, it would make a file no reader opens
        warn(f"its ICC colour profile ({len(icc) / 1e6:.1f} MB) is over the {icc_max / 1e6:.1f} MB a {f} file "
             "carries readably: dropped (viewers then show the colours as sRGB)")
    elif icc:
        kwargs["icc_profile"] = icc

    exif = clean_exif(source.exif, options, size, limit=JPEG_SEGMENT_MAX if jpeg else None, warn=warn)
    if exif:
        if f == "WEBP":  # the WebP EXIF chunk holds the bare TIFF structure
            exif = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        kwargs["exif"] = exif

    if options.enabled:
        xmp = _reservation(source, options, jpeg, warn)
        if f == "PNG":
            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"), lang="", tkey="", zip=False)
            kwargs["pnginfo"] = info
        else:
            kwargs["xmp"] = xmp
    return kwargs


def _reservation(source: SourceMetadata, options: MetadataOptions, jpeg: bool, warn: Warn) -> bytes:
    """The XMP packet for ``options``, the input's EXIF Artist / Copyright filling a creator / copyright not given
    (left out again, said through ``warn``, when they make a JPEG's packet too long)."""
    opts = options
    if not opts.creator:
        artist = _source_exif_text(source.exif, _ARTIST)
        if artist:
            opts = replace(opts, creator=artist)
    if not opts.copyright:
        notice = _source_exif_text(source.exif, _COPYRIGHT)
        if notice:
            opts = replace(opts, copyright=notice)
    xmp = build_xmp(opts)
    if jpeg and len(xmp) > JPEG_XMP_MAX and opts is not options:
        warn(f"its EXIF Artist/Copyright is too long for the output's {JPEG_XMP_MAX:,}-byte XMP segment: "
             "left out of the XMP")
        xmp = build_xmp(options)
    return xmp
