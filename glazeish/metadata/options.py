"""What goes into a cloaked file's metadata: the options, and the PLUS "Data Mining" vocabulary they name.

:class:`MetadataOptions` is what the command line and the web page fill in; :func:`resolve_data_mining` turns a
short name (``aiml``, ``genai``, ``all`` ...) into the PLUS URI written into the XMP and read by the C2PA assertion.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATA_MINING_ALIASES", "DATA_MINING_VALUES", "GLAZEISH_NS", "PLUS_NS", "PLUS_VOCAB", "MetadataOptions",
           "resolve_data_mining"]

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
