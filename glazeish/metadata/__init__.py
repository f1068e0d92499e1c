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

The package, by concept: :mod:`.options` (what to write, the PLUS vocabulary), :mod:`.xmp` (the reservation's XMP
packet, :func:`describe`), :mod:`.source` (what an input file carries), :mod:`.exif` (the EXIF cleaned for the
output), :mod:`.save` (Pillow's save arguments per format), :mod:`.c2pa` (the optional signed manifest).
"""

from __future__ import annotations

from .c2pa import DIGITAL_CREATION, c2pa_manifest, sign_c2pa, training_mining_assertion  # noqa: F401
from .exif import clean_exif
from .options import (
    DATA_MINING_ALIASES,
    DATA_MINING_VALUES,
    GLAZEISH_NS,
    PLUS_NS,
    PLUS_VOCAB,
    MetadataOptions,
    resolve_data_mining,
)
from .save import ICC_MAX, JPEG_SEGMENT_MAX, JPEG_XMP_MAX, check_fits, save_kwargs  # noqa: F401
from .source import (  # noqa: F401
    SourceMetadata,
    Warn,
    damaged_exif,
    has_mining_notice,
    read_source_metadata,
)
from .xmp import build_xmp, describe

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
