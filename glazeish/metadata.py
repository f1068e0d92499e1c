"""Metadata for cloaked output files: an AI-training reservation, and the artist's own metadata kept.

Every output gets (unless :attr:`MetadataOptions.enabled` is off) an XMP packet with

* ``plus:DataMining`` -- the PLUS / IPTC "Data Mining" property, by default
  ``http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING`` ("prohibited for AI/ML training");
* ``dc:creator``, ``dc:rights`` and ``xmpRights:WebStatement`` when given (the creator and the copyright
  notice fall back to the input's EXIF ``Artist`` / ``Copyright``), and ``xmpRights:Marked``;
* a ``glazeish:`` note that the image was protected with glazeish (version and preset), unless
  :attr:`MetadataOptions.note` is off (the note also tells a scraper that the image is cloaked).

:func:`describe` says all of it in plain words (what the web page shows next to its controls).

The input's ICC profile and EXIF are carried over, minus the ``Orientation`` tag (the pixels handed to
the writer must already be upright, e.g. after :func:`PIL.ImageOps.exif_transpose`), minus the GPS IFD
unless ``keep_gps`` is set, and minus everything that is, or may hold, a copy of the original pixels or
a fingerprint of them: the EXIF thumbnail (IFD1), the maker note (cameras hide preview JPEGs there),
``ImageUniqueID``, and TIFF-only blocks such as Photoshop image resources. Nothing written here is
derived from the original pixels.

Pillow writes all of it itself (``icc_profile=``, ``exif=``, ``xmp=`` for JPEG and WebP, an
``XML:com.adobe.xmp`` iTXt chunk for PNG), so no extra dependency is needed::

    src = read_source_metadata(Image.open("art.jpg"))
    cloaked.save("art-cloaked.png", **save_kwargs(src, MetadataOptions(creator="Jane Doe"), "PNG"))

Optionally, :func:`sign_c2pa` adds a signed C2PA manifest with a ``cawg.training-mining`` assertion
(needs ``pip install c2pa-python cryptography`` and the artist's signing certificate).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable
from xml.sax.saxutils import escape

from PIL import ExifTags, Image, PngImagePlugin, TiffTags
from PIL.PngImagePlugin import PngInfo

from .errors import first_line

__all__ = [
    "DATA_MINING_VALUES",
    "DATA_MINING_ALIASES",
    "GLAZEISH_NS",
    "PLUS_NS",
    "PLUS_VOCAB",
    "MetadataOptions",
    "SourceMetadata",
    "build_xmp",
    "c2pa_manifest",
    "check_fits",
    "clean_exif",
    "describe",
    "read_source_metadata",
    "resolve_data_mining",
    "save_kwargs",
    "sign_c2pa",
    "training_mining_assertion",
]

log = logging.getLogger(__name__)

Warn = Callable[[str], None]  # told one line about what was dropped from a file's metadata, and why
#: the most a JPEG marker segment carries (APP1: the EXIF; the XMP packet after its 29-byte namespace)
JPEG_SEGMENT_MAX = 65533
JPEG_XMP_MAX = JPEG_SEGMENT_MAX - 29
#: the largest ICC profile each output format carries so that it reads back: a JPEG splits it over at most 255
#: APP2 segments of 65,519 bytes; Pillow refuses a PNG whose iCCP chunk inflates past its MAX_TEXT_CHUNK (1 MB)
ICC_MAX = {"JPEG": 255 * (JPEG_SEGMENT_MAX - 14), "PNG": PngImagePlugin.MAX_TEXT_CHUNK - 1}

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
PLUS_VOCAB = "http://ns.useplus.org/ldf/vocab/"
#: Namespace of the ``glazeish:`` XMP properties. Never change it once released: readers key on it.
GLAZEISH_NS = "urn:glazeish:xmp:1.0/"

#: The PLUS "Data Mining" vocabulary (IPTC Photo Metadata Standard 2023.1), name -> meaning.
DATA_MINING_VALUES: dict[str, str] = {
    "DMI-UNSPECIFIED": "Unspecified - no prohibition defined",
    "DMI-ALLOWED": "Allowed",
    "DMI-PROHIBITED-AIMLTRAINING": "Prohibited for AI/ML training",
    "DMI-PROHIBITED-GENAIMLTRAINING": "Prohibited for Generative AI/ML training",
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": "Prohibited except for search engine indexing",
    "DMI-PROHIBITED": "Prohibited",
    "DMI-PROHIBITED-SEECONSTRAINT": "Prohibited, see plus:OtherConstraints",
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": "Prohibited, see iptcExt:EmbdEncRightsExpr",
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": "Prohibited, see iptcExt:LinkedEncRightsExpr",
}

#: Short names accepted by :func:`resolve_data_mining` (case-insensitive, ``_`` and ``-`` alike).
DATA_MINING_ALIASES: dict[str, str] = {
    "unspecified": "DMI-UNSPECIFIED",
    "allowed": "DMI-ALLOWED",
    "allow": "DMI-ALLOWED",
    "aiml": "DMI-PROHIBITED-AIMLTRAINING",
    "ai": "DMI-PROHIBITED-AIMLTRAINING",
    "genai": "DMI-PROHIBITED-GENAIMLTRAINING",
    "genaiml": "DMI-PROHIBITED-GENAIMLTRAINING",
    "except-search": "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
    "search": "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
    "all": "DMI-PROHIBITED",
    "prohibited": "DMI-PROHIBITED",
    "constraint": "DMI-PROHIBITED-SEECONSTRAINT",
    "see-constraint": "DMI-PROHIBITED-SEECONSTRAINT",
    "embedded": "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR",
    "linked": "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR",
}

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


@dataclass
class MetadataOptions:
    """What to write into the cloaked file's metadata."""

    enabled: bool = True  # --no-metadata: then only ICC (and EXIF minus orientation/GPS) are kept
    data_mining: str = "DMI-PROHIBITED-AIMLTRAINING"
    creator: str | None = None
    copyright: str | None = None
    url: str | None = None  # xmpRights:WebStatement: where the rights / licence are explained
    keep_gps: bool = False
    preset: str | None = None  # e.g. "default", recorded in the glazeish note
    note: bool = True  # --no-glazeish-note: say nothing about glazeish (the note tells a scraper it was cloaked)

    def __post_init__(self):
        # a command-line argument that is not UTF-8 arrives with its bytes escaped (surrogates), which no file's
        # metadata can hold: said once, before any work, rather than as a failure of every file
        for name in ("creator", "copyright", "url"):
            text = getattr(self, name)
            try:
                (text or "").encode("utf-8")
            except UnicodeEncodeError as e:
                bad = text[e.start : e.end].encode("utf-8", "surrogateescape")
                raise ValueError(f"{name} is not valid UTF-8 text (at character {e.start}: {bad.hex(' ')}); give it "
                                 "in UTF-8") from None


@dataclass
class SourceMetadata:
    """What we keep from the input file."""

    icc_profile: bytes | None = None
    exif: bytes | None = None  # raw EXIF, as Pillow gives it (``Exif\\0\\0`` + TIFF structure)


def _glazeish_version() -> str:
    try:
        from importlib.metadata import version

        return version("glazeish")
    except Exception:
        return "0.1.0"


def resolve_data_mining(value: str) -> str:
    """Map a short name (``aiml``, ``genai``, ``all`` ...), a PLUS name (``DMI-PROHIBITED``) or a full
    PLUS URI to the full URI, e.g. ``http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING``.

    Raises ValueError, listing the valid names, for anything else.
    """
    raw = str(value).strip()
    key = raw
    lowered = key.lower()
    for prefix in (PLUS_VOCAB.lower(), PLUS_VOCAB.lower().replace("http://", "https://")):
        if lowered.startswith(prefix):
            key = key[len(prefix) :]
            break
    norm = key.strip().upper().replace("_", "-").replace(" ", "-")
    if norm in DATA_MINING_VALUES:
        return PLUS_VOCAB + norm
    if "DMI-" + norm in DATA_MINING_VALUES:
        return PLUS_VOCAB + "DMI-" + norm
    alias = DATA_MINING_ALIASES.get(norm.lower())
    if alias is not None:
        return PLUS_VOCAB + alias
    names = ", ".join(DATA_MINING_VALUES)
    shorts = ", ".join(f"{k} ({v})" for k, v in DATA_MINING_ALIASES.items())
    raise ValueError(f"unknown data-mining value {raw!r}; use one of {names}, or a short name: {shorts}")


# ----------------------------------------------------------------------------------------------- XMP

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(value: str) -> str:
    """Escape text for XML element content (dropping characters XML 1.0 cannot carry)."""
    return escape(_XML_ILLEGAL.sub("", str(value)))


def _note_text(options: MetadataOptions, version: str) -> str:
    preset = f" (preset {options.preset})" if options.preset else ""
    return (f"Protected with glazeish {version}{preset}: an adversarial cloak against style mimicry was added to "
            "the pixels.")


def describe(options: MetadataOptions) -> list[str]:
    """What :func:`save_kwargs` writes into a file for ``options``, one plain sentence per item, the fields named.

    Where ``creator`` / ``copyright`` are not given, the input's own EXIF Artist / Copyright (if any) fill the XMP
    fields instead. Raises ValueError for an unknown ``data_mining`` value, like :func:`build_xmp`.
    """
    out = []
    if options.enabled:
        name = resolve_data_mining(options.data_mining)[len(PLUS_VOCAB) :]
        meaning = DATA_MINING_VALUES[name]
        out.append(f"an AI-training notice: the IPTC/PLUS “Data Mining” field set to “{meaning}” "
                   f"(XMP plus:DataMining = {name}), and the image marked as rights-managed (xmpRights:Marked)")
        if options.creator:
            out.append(f"your name, “{options.creator}” (XMP dc:creator and EXIF Artist)")
        if options.copyright:
            out.append(f"your copyright notice, “{options.copyright}” (XMP dc:rights and EXIF Copyright)")
        if options.url:
            out.append(f"your rights statement link, {options.url} (XMP xmpRights:WebStatement)")
        if options.note:
            note = _note_text(options, _glazeish_version())
            out.append(f"a note that it was cloaked: “{note}” (XMP glazeish:Note, with the version and preset)")
    gps = "" if options.keep_gps else "location (GPS), "
    out.append(f"kept from your file: its colour profile and camera data (EXIF) minus {gps}the embedded preview "
               "thumbnail, the maker note and the orientation tag (the pixels are stored upright)")
    return out


def build_xmp(options: MetadataOptions) -> bytes:
    """The XMP packet (UTF-8 RDF/XML) for ``options``.

    Only the options go in: nothing derived from the image (no hashes, no thumbnails).
    Raises ValueError if ``options.data_mining`` is not a PLUS Data Mining value.
    """
    data_mining = resolve_data_mining(options.data_mining)
    version = _glazeish_version()
    props: list[str] = []
    if options.creator:
        props.append(
            "   <dc:creator>\n    <rdf:Seq>\n"
            f"     <rdf:li>{_x(options.creator)}</rdf:li>\n"
            "    </rdf:Seq>\n   </dc:creator>"
        )
    if options.copyright:
        props.append(
            "   <dc:rights>\n    <rdf:Alt>\n"
            f'     <rdf:li xml:lang="x-default">{_x(options.copyright)}</rdf:li>\n'
            "    </rdf:Alt>\n   </dc:rights>"
        )
    props.append("   <xmpRights:Marked>True</xmpRights:Marked>")
    if options.url:
        props.append(f"   <xmpRights:WebStatement>{_x(options.url)}</xmpRights:WebStatement>")
    props.append(f"   <plus:DataMining>{_x(data_mining)}</plus:DataMining>")
    if options.note:
        props.append("   <glazeish:Protected>True</glazeish:Protected>")
        props.append(f"   <glazeish:Version>{_x(version)}</glazeish:Version>")
        if options.preset:
            props.append(f"   <glazeish:Preset>{_x(options.preset)}</glazeish:Preset>")
        props.append(f"   <glazeish:Note>{_x(_note_text(options, version))}</glazeish:Note>")
    body = "\n".join(props)
    padding = (" " * 99 + "\n") * 20  # room for in-place edits by other tools, as the XMP spec suggests
    toolkit = f' x:xmptk="glazeish {_x(version)}"' if options.note else ""
    namespace = f'\n    xmlns:glazeish="{GLAZEISH_NS}"' if options.note else ""
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"{toolkit}>\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"\n'
        f'    xmlns:plus="{PLUS_NS}"{namespace}>\n'
        f"{body}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        f"{padding}"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


# ---------------------------------------------------------------------------------------------- EXIF


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
        if f == "PNG":
            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"), lang="", tkey="", zip=False)
            kwargs["pnginfo"] = info
        else:
            kwargs["xmp"] = xmp
    return kwargs


# ---------------------------------------------------------------------------------------------- C2PA

#: What each PLUS Data Mining value means as a CAWG training-and-data-mining assertion
#: (``cawg.training-mining``): entry -> (use, constraint_info or None). Empty: no assertion.
_CAWG_ENTRIES = ("cawg.data_mining", "cawg.ai_inference", "cawg.ai_generative_training", "cawg.ai_training")
_DMI_TO_CAWG: dict[str, dict[str, tuple[str, str | None]]] = {
    "DMI-UNSPECIFIED": {},
    "DMI-ALLOWED": {e: ("allowed", None) for e in _CAWG_ENTRIES},
    "DMI-PROHIBITED-AIMLTRAINING": {
        "cawg.ai_training": ("notAllowed", None),
        "cawg.ai_generative_training": ("notAllowed", None),
    },
    "DMI-PROHIBITED-GENAIMLTRAINING": {"cawg.ai_generative_training": ("notAllowed", None)},
    "DMI-PROHIBITED": {e: ("notAllowed", None) for e in _CAWG_ENTRIES},
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": {
        "cawg.data_mining": ("constrained", "Allowed only for search engine indexing."),
        "cawg.ai_inference": ("notAllowed", None),
        "cawg.ai_generative_training": ("notAllowed", None),
        "cawg.ai_training": ("notAllowed", None),
    },
    "DMI-PROHIBITED-SEECONSTRAINT": {
        e: ("constrained", "Prohibited; see the XMP plus:OtherConstraints property.") for e in _CAWG_ENTRIES
    },
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": {
        e: ("constrained", "Prohibited; see the embedded encoded rights expression (iptcExt:EmbdEncRightsExpr).")
        for e in _CAWG_ENTRIES
    },
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": {
        e: ("constrained", "Prohibited; see the linked encoded rights expression (iptcExt:LinkedEncRightsExpr).")
        for e in _CAWG_ENTRIES
    },
}

_C2PA_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
DIGITAL_CREATION = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"


def training_mining_assertion(options: MetadataOptions) -> dict | None:
    """The CAWG ``cawg.training-mining`` assertion matching ``options.data_mining`` (None for
    DMI-UNSPECIFIED)."""
    name = resolve_data_mining(options.data_mining)[len(PLUS_VOCAB) :]
    entries = {}
    for entry, (use, info) in _DMI_TO_CAWG[name].items():
        entries[entry] = {"use": use} if info is None else {"use": use, "constraint_info": info}
    if not entries:
        return None
    return {"label": "cawg.training-mining", "data": {"entries": entries}}


def c2pa_manifest(options: MetadataOptions, title: str, digital_source_type: str = DIGITAL_CREATION) -> dict:
    """The C2PA manifest definition :func:`sign_c2pa` signs: a ``c2pa.created`` action (the artist's
    work), a ``c2pa.edited`` action by glazeish, the training-and-data-mining assertion, and, when
    given, the creator. No ingredients and no thumbnails: nothing from the original pixels."""
    version = _glazeish_version()
    edited = {
        "action": "c2pa.edited",
        "softwareAgent": {"name": "glazeish", "version": version},
        "description": "Adversarial cloak against style mimicry added"
        + (f" (preset {options.preset})" if options.preset else ""),
    }
    assertions: list[dict] = [
        {
            "label": "c2pa.actions",
            "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": digital_source_type}, edited]},
        }
    ]
    tm = training_mining_assertion(options)
    if tm is not None:
        assertions.append(tm)
    if options.creator:
        assertions.append(
            {
                "label": "stds.schema-org.CreativeWork",
                "data": {
                    "@context": "https://schema.org",
                    "@type": "CreativeWork",
                    "author": [{"@type": "Person", "name": options.creator}],
                    **({"copyrightNotice": options.copyright} if options.copyright else {}),
                },
            }
        )
    return {
        "claim_generator_info": [{"name": "glazeish", "version": version}],
        "title": title,
        "assertions": assertions,
    }


def _pem(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        return value.encode("ascii")
    from pathlib import Path

    return Path(value).read_bytes()


def _signing_alg(key_pem: bytes) -> str:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError("pass alg= (es256, ps256, ed25519 ...) or install 'cryptography'") from err
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "es256", 384: "es384", 521: "es512"}[key.curve.key_size]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ValueError(f"unsupported key type for C2PA signing: {type(key).__name__}")


def sign_c2pa(
    path,
    cert_pem,
    key_pem,
    options: MetadataOptions,
    *,
    alg: str | None = None,
    tsa_url: str | None = None,
    digital_source_type: str = DIGITAL_CREATION,
) -> None:
    """Embed a signed C2PA manifest (see :func:`c2pa_manifest`) into the PNG/JPEG/WebP at ``path``,
    in place. Needs ``pip install c2pa-python cryptography``.

    ``cert_pem``: the signing certificate chain (leaf first, then intermediates; PEM bytes, PEM text
    or a file path). C2PA does not accept a self-signed leaf: it must be issued by a CA, have the
    digitalSignature key usage and e.g. the emailProtection extended key usage. ``key_pem``: its
    unencrypted private key. ``alg`` is guessed from the key when not given. ``tsa_url``: an RFC 3161
    time-stamp server (needs the network); None signs without a time stamp, offline. Readers show the
    signature as untrusted unless the CA is on their trust list, but the assertions still validate.
    """
    import os
    import tempfile
    from pathlib import Path

    try:
        import c2pa
    except ImportError as err:
        raise RuntimeError("C2PA signing needs the c2pa-python package: pip install c2pa-python") from err

    path = Path(path)
    mime = _C2PA_MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"C2PA signing supports {', '.join(_C2PA_MIME)} files, not {path.name!r}")
    cert, key = _pem(cert_pem), _pem(key_pem)
    alg = (alg or _signing_alg(key)).lower()
    manifest = c2pa_manifest(options, title=path.name, digital_source_type=digital_source_type)

    settings = c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    info = c2pa.C2paSignerInfo(
        alg=alg.encode("ascii"),
        sign_cert=cert,
        private_key=key,
        ta_url=tsa_url.encode("ascii") if tsa_url else None,
    )
    fd, tmp = tempfile.mkstemp(prefix=".c2pa-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        with c2pa.Context(settings) as context, c2pa.Signer.from_info(info) as signer:
            with c2pa.Builder(manifest, context) as builder:
                with open(path, "rb") as src, open(tmp, "w+b") as dst:
                    builder.sign(signer, mime, src, dst)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
