"""The XMP packet that carries the "no AI training" reservation, and :func:`describe`, the same in plain words.

The packet has ``plus:DataMining`` (by default "prohibited for AI/ML training"), ``dc:creator``, ``dc:rights`` and
``xmpRights:WebStatement`` when given, ``xmpRights:Marked``, and unless :attr:`MetadataOptions.note` is off a
``glazeish:`` note that the image was protected with glazeish (version and preset).
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from .options import (
    DATA_MINING_VALUES,
    GLAZEISH_NS,
    PLUS_NS,
    PLUS_VOCAB,
    MetadataOptions,
    _glazeish_version,
    resolve_data_mining,
)

__all__ = ["build_xmp", "describe"]

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
