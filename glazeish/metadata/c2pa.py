"""An optional signed C2PA manifest with a ``cawg.training-mining`` assertion matching the XMP reservation
(needs ``pip install c2pa-python cryptography`` and the artist's signing certificate)."""

from __future__ import annotations

from typing import Any

from .options import PLUS_VOCAB, MetadataOptions, _glazeish_version, resolve_data_mining

__all__ = ["DIGITAL_CREATION", "c2pa_manifest", "sign_c2pa", "training_mining_assertion"]

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
