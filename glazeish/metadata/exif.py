"""The input's EXIF made ready for the output: what is, or may hold, a copy or fingerprint of the original pixels
removed (the thumbnail, the maker note, ``ImageUniqueID``, TIFF-only blocks), Orientation and GPS dropped, Artist and
Copyright set from the options, and the largest tags dropped until it fits a size limit.
"""

from __future__ import annotations

import logging
from typing import Any

from PIL import ExifTags, Image, TiffTags

from ..errors import first_line
from .options import MetadataOptions
from .source import Warn, _exif_warnings, _load_exif

__all__ = ["clean_exif"]

log = logging.getLogger(__package__)

_ORIENTATION = 0x0112
_ARTIST = 0x013B
_COPYRIGHT = 0x8298
_PIXEL_X = 0xA002
_PIXEL_Y = 0xA003
_EXIF_IFD = int(ExifTags.IFD.Exif)
_GPS_IFD = int(ExifTags.IFD.GPSInfo)
_INTEROP_IFD = int(ExifTags.IFD.Interop)

# IFD0 tags that describe the layout of a TIFF's own pixel data, point at other images, or embed
# whole metadata blocks (which can carry thumbnails or layer pixels). They come in when the input is
# a TIFF, and are wrong or unsafe in the EXIF of a PNG/JPEG/WebP.
# fmt: off
_DROP_IFD0 = frozenset(
    {
        0x00FE, 0x00FF,  # NewSubfileType, SubfileType
        0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0107, 0x0108, 0x0109, 0x010A,  # size, bits, compression ...
        0x0111, 0x0115, 0x0116, 0x0117, 0x0118, 0x0119, 0x011C,  # strips, samples, planar config
        0x0120, 0x0121, 0x0122, 0x0123, 0x0124, 0x0125,  # free offsets, T4/T6 options
        0x013D, 0x0140, 0x0142, 0x0143, 0x0144, 0x0145, 0x014A,  # predictor, colormap, tiles, SubIFDs
        0x0152, 0x0153, 0x0154, 0x0155, 0x0156, 0x015B,  # extra samples, sample format, JPEGTables
        0x0200, 0x0201, 0x0202, 0x0203, 0x0205, 0x0206, 0x0207, 0x0208, 0x0209,  # old-style JPEG, thumbnail
        0x02BC,  # XMP block (we write our own)
        0x83BB,  # IPTC block
        0x8649,  # Photoshop image resources (thumbnails)
        0x8773,  # ICC profile (carried separately)
        0x935C,  # Photoshop ImageSourceData (layers: original pixels)
        0xC612, 0xC613, 0xC614, 0xC634,  # DNG version / private data
        _ORIENTATION,
    }
)
# fmt: on
# Exif-IFD tags that hold (or may hold) previews or a fingerprint of the original pixels.
_DROP_EXIF = frozenset({0x927C, 0xA420})  # MakerNote, ImageUniqueID


def _is_ascii_tag(tag: int, group: int | None) -> bool:
    return TiffTags.lookup(tag, group).type == TiffTags.ASCII


def _fix_value(tag: int, value: Any, group: int | None) -> Any:
    # Pillow reads EXIF ASCII as latin-1 and writes str as ASCII with "?" replacement, which mangles
    # UTF-8 text ("©", accents). Hand back the original bytes instead, which it writes unchanged.
    if isinstance(value, str) and _is_ascii_tag(tag, group):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            return value.encode("utf-8")
    return value


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")



def _build_clean_exif(
    src: Image.Exif,
    options: MetadataOptions,
    size: tuple[int, int] | None,
    known_only: bool,
) -> Image.Exif:
    def keep(tag: int, group: int | None) -> bool:
        return not known_only or TiffTags.lookup(tag, group).name != "unknown"

    out = Image.Exif()
    out.endian = src.endian or "<"
    for tag, value in src.items():
        if tag in _DROP_IFD0 or tag in (_EXIF_IFD, _GPS_IFD) or not keep(tag, None):
            continue
        out[tag] = _fix_value(tag, value, None)

    exif_ifd = dict(src.get_ifd(_EXIF_IFD)) if _EXIF_IFD in src else {}
    clean: dict[int, Any] = {}
    for tag, value in exif_ifd.items():
        if tag in _DROP_EXIF or not keep(tag, _EXIF_IFD):
            continue
        if tag == _INTEROP_IFD:
            interop = src.get_ifd(_INTEROP_IFD)
            if interop:
                clean[tag] = {t: _fix_value(t, v, _INTEROP_IFD) for t, v in interop.items()}
            continue
        clean[tag] = _fix_value(tag, value, _EXIF_IFD)
    if size is not None and (_PIXEL_X in clean or _PIXEL_Y in clean):
        clean[_PIXEL_X], clean[_PIXEL_Y] = int(size[0]), int(size[1])
    if clean:
        out[_EXIF_IFD] = clean

    if options.keep_gps and _GPS_IFD in src:
        gps = src.get_ifd(_GPS_IFD)
        if gps:
            out[_GPS_IFD] = {t: _fix_value(t, v, _GPS_IFD) for t, v in gps.items() if keep(t, _GPS_IFD)}

    if options.enabled:
        if options.creator:
            out[_ARTIST] = _utf8(options.creator)
        if options.copyright:
            out[_COPYRIGHT] = _utf8(options.copyright)
    return out


def _value_size(value: Any) -> int:
    """Roughly how many bytes an EXIF value takes (what decides which tags to drop first to fit a limit)."""
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (tuple, list)):
        return sum(_value_size(v) for v in value) or 1
    return 8


def _fit(out: Image.Exif, limit: int, keep: set[int], warn: Warn) -> bytes | None:
    """``out`` as bytes of at most ``limit``: the largest tags (never those in ``keep``) dropped until it fits."""
    data = out.tobytes()
    dropped = []
    while len(data) > limit:
        ifds = {None: out, **{i: out[i] for i in (_EXIF_IFD, _GPS_IFD) if isinstance(out.get(i), dict)}}
        sizes = [(_value_size(v), group, tag) for group, ifd in ifds.items() for tag, v in ifd.items()
                 if not isinstance(v, dict) and not (group is None and tag in keep)]
        if not sizes:
            break
        size, group, tag = max(sizes, key=lambda t: t[0])
        del ifds[group][tag]
        dropped.append(f"{TiffTags.lookup(tag, group).name} ({size:,} bytes)")
        data = out.tobytes()
    if dropped:
        warn(f"its EXIF does not fit the output's {limit:,}-byte EXIF segment: dropped {', '.join(dropped)}")
    return data if len(data) <= limit else None


def clean_exif(raw: bytes | None, options: MetadataOptions, size: tuple[int, int] | None = None,
               limit: int | None = None, warn: Warn | None = None) -> bytes | None:
    """The input EXIF ready for the output: Orientation, GPS (unless ``keep_gps``), the thumbnail,
    maker note, ImageUniqueID and TIFF layout tags removed; Artist/Copyright set from ``options``
    (when enabled). ``size`` (width, height), when given, updates PixelX/YDimension. ``limit`` (bytes, e.g.
    :data:`JPEG_SEGMENT_MAX`): the input's largest tags are dropped until the EXIF fits.

    Returns ``Exif\\0\\0``-prefixed bytes, or None when nothing is left to write. What is dropped for being
    unreadable or too large is said in one line through ``warn`` (default: a logged warning).
    """
    warn = warn or log.warning
    src = _load_exif(raw, warn) if raw else Image.Exif()
    if src is None:
        src = Image.Exif()
    own = {t for t, v in ((_ARTIST, options.creator), (_COPYRIGHT, options.copyright)) if options.enabled and v}
    for known_only in (False, True):
        try:
            with _exif_warnings(warn if not known_only else lambda msg: None):  # sub-IFDs are parsed here
                out = _build_clean_exif(src, options, size, known_only)
            if not len(out):
                return None
            return out.tobytes() if limit is None else _fit(out, limit, own, warn)
        except Exception as err:  # an odd private tag Pillow cannot re-encode
            if known_only:
                warn(f"its EXIF could not be rewritten and was dropped ({first_line(err)})")
                break
            log.info("retrying EXIF rewrite with standard tags only: %s", err)
    fallback = Image.Exif()
    if options.enabled and options.creator:
        fallback[_ARTIST] = _utf8(options.creator)
    if options.enabled and options.copyright:
        fallback[_COPYRIGHT] = _utf8(options.copyright)
    return fallback.tobytes() if len(fallback) else None
