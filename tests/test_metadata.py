"""Tests for glazeish.metadata.

Files are written with Pillow through ``save_kwargs`` and read back with an independent reader,
ExifTool (Debian/Ubuntu: ``apt-get install -y libimage-exiftool-perl``; macOS: ``brew install exiftool``).
Tests that need it are skipped, saying so, when ``exiftool`` is not on PATH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms

from glazeish.metadata import (
    DATA_MINING_VALUES,
    PLUS_NS,
    PLUS_VOCAB,
    MetadataOptions,
    SourceMetadata,
    JPEG_SEGMENT_MAX,
    build_xmp,
    check_fits,
    describe,
    read_source_metadata,
    resolve_data_mining,
    save_kwargs,
)

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None,
    reason="exiftool not installed (apt-get install -y libimage-exiftool-perl): "
    "it is the independent reader these tests check the written files with",
)

AIML = PLUS_VOCAB + "DMI-PROHIBITED-AIMLTRAINING"
FORMATS = ["PNG", "JPEG", "WEBP"]
EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def exiftool(path: Path) -> dict:
    """All tags of ``path`` as ExifTool reads them: {"Group1:Tag": value}, numeric values (-n)."""
    out = subprocess.run(
        [EXIFTOOL, "-json", "-a", "-G1", "-n", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    return json.loads(out.decode("utf-8"))[0]


def exiftool_icc(path: Path) -> bytes:
    return subprocess.run(
        [EXIFTOOL, "-b", "-ICC_Profile", str(path)], check=True, capture_output=True, timeout=30
    ).stdout


def groups(tags: dict, prefix: str) -> dict:
    return {k: v for k, v in tags.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _source_exif() -> Image.Exif:
    ex = Image.Exif()
    ex[0x0112] = 6  # Orientation: rotate 90 CW
    ex[0x013B] = "Zoë Source-Artist".encode()  # Artist, UTF-8
    ex[0x0110] = "TestCam 3000"  # Model
    ex[ExifTags.IFD.Exif] = {
        0x9003: "2024:01:02 03:04:05",  # DateTimeOriginal
        0xA420: "0123456789abcdef0123456789abcdef",  # ImageUniqueID (often a pixel hash)
        0x927C: b"MAKERNOTE-PREVIEW-BYTES",  # MakerNote
        0xA002: 64,  # PixelXDimension
        0xA003: 48,  # PixelYDimension
    }
    ex[ExifTags.IFD.GPSInfo] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    return ex


@pytest.fixture(scope="module")
def source_jpeg(tmp_path_factory, icc) -> Path:
    """A 64x48 JPEG with an ICC profile, Orientation=6, Artist, GPS, MakerNote, and (via exiftool)
    an EXIF thumbnail of the original pixels."""
    path = tmp_path_factory.mktemp("src") / "source.jpg"
    im = Image.new("RGB", (64, 48), (200, 30, 40))
    im.save(path, icc_profile=icc, exif=_source_exif().tobytes())
    if EXIFTOOL:
        subprocess.run(
            [EXIFTOOL, "-q", "-overwrite_original", f"-ThumbnailImage<={path}", str(path)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return path


@pytest.fixture(scope="module")
def source(source_jpeg) -> SourceMetadata:
    with Image.open(source_jpeg) as im:
        return read_source_metadata(im)


def cloaked() -> Image.Image:
    """Stand-in for the cloaked output: already upright (48x64) and with different pixels."""
    return Image.new("RGB", (48, 64), (10, 220, 90))


def write(tmp_path: Path, source: SourceMetadata, options: MetadataOptions, fmt: str) -> Path:
    path = tmp_path / f"out.{EXT[fmt]}"
    cloaked().save(path, fmt, **save_kwargs(source, options, fmt, size=(48, 64)))
    return path


# ------------------------------------------------------------------------------ resolve_data_mining


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("aiml", "DMI-PROHIBITED-AIMLTRAINING"),
        ("AIML", "DMI-PROHIBITED-AIMLTRAINING"),
        ("genai", "DMI-PROHIBITED-GENAIMLTRAINING"),
        ("all", "DMI-PROHIBITED"),
        ("allowed", "DMI-ALLOWED"),
        ("unspecified", "DMI-UNSPECIFIED"),
        ("except-search", "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING"),
        ("constraint", "DMI-PROHIBITED-SEECONSTRAINT"),
        ("embedded", "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR"),
        ("DMI-PROHIBITED-GENAIMLTRAINING", "DMI-PROHIBITED-GENAIMLTRAINING"),
        ("dmi_prohibited_aimltraining", "DMI-PROHIBITED-AIMLTRAINING"),
        ("prohibited-genaimltraining", "DMI-PROHIBITED-GENAIMLTRAINING"),
        (" DMI-ALLOWED ", "DMI-ALLOWED"),
        (PLUS_VOCAB + "DMI-PROHIBITED", "DMI-PROHIBITED"),
        ("https://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING", "DMI-PROHIBITED-AIMLTRAINING"),
    ],
)
def test_resolve_data_mining(value, name):
    assert resolve_data_mining(value) == "http://ns.useplus.org/ldf/vocab/" + name


def test_resolve_data_mining_all_plus_values_round_trip():
    assert len(DATA_MINING_VALUES) == 9
    for name in DATA_MINING_VALUES:
        assert resolve_data_mining(name) == PLUS_VOCAB + name
        assert resolve_data_mining(PLUS_VOCAB + name) == PLUS_VOCAB + name


@pytest.mark.parametrize("bad", ["", "nope", "DMI-MAYBE", "http://example.com/DMI-PROHIBITED", "aiml2"])
def test_resolve_data_mining_rejects_unknown(bad):
    with pytest.raises(ValueError) as err:
        resolve_data_mining(bad)
    msg = str(err.value)
    assert "DMI-PROHIBITED-AIMLTRAINING" in msg and "genai" in msg  # lists the valid names


# ------------------------------------------------------------------------------------------- XMP


def test_build_xmp_is_well_formed_and_escapes():
    opts = MetadataOptions(creator='A <b> & "c"', copyright="© 2024 <x>", url="https://e.org/?a=1&b=2")
    xmp = build_xmp(opts)
    assert xmp.startswith(b"<?xpacket begin=") and xmp.rstrip().endswith(b'<?xpacket end="w"?>')
    root = ET.fromstring(xmp.decode("utf-8").split("?>", 1)[1].rsplit("<?xpacket", 1)[0])
    rdf = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
    desc = root.find(f"{rdf}RDF/{rdf}Description")
    assert desc.findtext(f"{{{PLUS_NS}}}DataMining") == AIML
    assert desc.find("{http://purl.org/dc/elements/1.1/}creator").findtext(f"{rdf}Seq/{rdf}li") == 'A <b> & "c"'
    assert desc.findtext("{http://ns.adobe.com/xap/1.0/rights/}WebStatement") == "https://e.org/?a=1&b=2"


def test_the_glazeish_note_can_be_left_out():
    """Without the note nothing in the packet names glazeish (it would tell a scraper the image is cloaked)."""
    with_note = build_xmp(MetadataOptions(preset="default"))
    assert b"glazeish:Note" in with_note and b"preset default" in with_note
    xmp = build_xmp(MetadataOptions(creator="Jane", preset="default", note=False))
    assert b"glazeish" not in xmp.lower()
    root = ET.fromstring(xmp.decode("utf-8").split("?>", 1)[1].rsplit("<?xpacket", 1)[0])  # still well-formed
    rdf = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
    assert root.find(f"{rdf}RDF/{rdf}Description").findtext(f"{{{PLUS_NS}}}DataMining") == AIML


def test_describe_says_what_is_written():
    opts = MetadataOptions(creator="Jane Doe", copyright="© 2024 Jane Doe", preset="high")
    lines = describe(opts)
    xmp = build_xmp(opts).decode("utf-8")
    assert "Prohibited for AI/ML training" in lines[0] and "plus:DataMining" in lines[0]
    assert any("“Jane Doe”" in s and "EXIF Artist" in s for s in lines) and "Jane Doe" in xmp
    assert any("© 2024 Jane Doe" in s for s in lines)
    note = next(s for s in lines if "cloaked" in s)
    assert note.split("“")[1].split("”")[0] in xmp  # the note quoted is the note written
    assert not any("glazeish" in s for s in describe(replace(opts, note=False)))
    off = describe(MetadataOptions(enabled=False, creator="Not Written"))
    assert len(off) == 1 and off[0].startswith("kept from your file") and "GPS" in off[0]


def test_build_xmp_rejects_bad_data_mining():
    with pytest.raises(ValueError):
        build_xmp(MetadataOptions(data_mining="whatever"))


def test_save_kwargs_rejects_unknown_format(source):
    with pytest.raises(ValueError):
        save_kwargs(source, MetadataOptions(), "GIF")


def test_save_kwargs_keys_per_format(source, icc):
    png = save_kwargs(source, MetadataOptions(), "PNG")
    assert set(png) == {"icc_profile", "exif", "pnginfo"} and png["icc_profile"] == icc
    jpg = save_kwargs(source, MetadataOptions(), "jpg")
    assert set(jpg) == {"icc_profile", "exif", "xmp"} and jpg["exif"].startswith(b"Exif\0\0")
    webp = save_kwargs(source, MetadataOptions(), "WEBP")
    assert webp["exif"][:2] in (b"II", b"MM")  # bare TIFF structure in the WebP EXIF chunk
    off = save_kwargs(source, MetadataOptions(enabled=False), "JPEG")
    assert set(off) == {"icc_profile", "exif"}
    empty = save_kwargs(SourceMetadata(), MetadataOptions(), "JPEG")
    assert set(empty) == {"xmp"}
    assert save_kwargs(SourceMetadata(), MetadataOptions(enabled=False), "PNG") == {}


def test_read_source_metadata(source_jpeg, icc):
    with Image.open(source_jpeg) as im:
        src = read_source_metadata(im)
    assert src.icc_profile == icc
    assert src.exif is not None and src.exif.startswith(b"Exif\0\0")
    with Image.new("RGB", (8, 8)) as plain:
        assert read_source_metadata(plain) == SourceMetadata(None, None)


# ------------------------------------------------------------------- written files, read by exiftool


@needs_exiftool
def test_source_fixture_has_what_we_strip(source_jpeg):
    # guards the tests below: the input really has orientation, GPS, thumbnail, maker note, unique id
    tags = exiftool(source_jpeg)
    assert tags["IFD0:Orientation"] == 6
    assert "GPS:GPSLatitude" in tags
    assert "IFD1:ThumbnailImage" in tags or "IFD1:ThumbnailLength" in tags
    assert "ExifIFD:ImageUniqueID" in tags
    assert "ExifIFD:MakerNoteUnknownText" in tags or any("MakerNote" in k for k in tags)


@needs_exiftool
@pytest.mark.parametrize("fmt", FORMATS)
def test_output_metadata(tmp_path, source, icc, fmt):
    opts = MetadataOptions(
        creator="Zoë Artist",
        copyright="© 2024 Zoë Artist. All rights reserved.",
        url="https://zoe.example/licence?x=1&y=2",
        preset="default",
    )
    tags = exiftool(write(tmp_path, source, opts, fmt))

    # the reservation and rights, in XMP
    assert tags["XMP-plus:DataMining"] == AIML
    assert tags["XMP-dc:Creator"] == "Zoë Artist"
    assert tags["XMP-dc:Rights"] == "© 2024 Zoë Artist. All rights reserved."
    assert tags["XMP-xmpRights:WebStatement"] == "https://zoe.example/licence?x=1&y=2"
    assert str(tags["XMP-xmpRights:Marked"]).lower() == "true"
    # the glazeish note
    assert str(tags["XMP-glazeish:Protected"]).lower() == "true"
    assert tags["XMP-glazeish:Preset"] == "default"
    assert str(tags["XMP-glazeish:Version"])
    assert "glazeish" in tags["XMP-glazeish:Note"]

    # EXIF: kept, edited, stripped
    assert tags["IFD0:Model"] == "TestCam 3000"
    assert tags["ExifIFD:DateTimeOriginal"] == "2024:01:02 03:04:05"
    assert tags["IFD0:Artist"] == "Zoë Artist"
    assert tags["IFD0:Copyright"] == "© 2024 Zoë Artist. All rights reserved."
    assert "IFD0:Orientation" not in tags
    assert not groups(tags, "GPS:"), groups(tags, "GPS:")
    assert not groups(tags, "IFD1:"), "EXIF thumbnail of the original pixels must not be kept"
    assert "ExifIFD:ImageUniqueID" not in tags
    assert not [k for k in tags if "MakerNote" in k]
    assert tags["ExifIFD:ExifImageWidth"] == 48 and tags["ExifIFD:ExifImageHeight"] == 64

    # ICC profile kept byte for byte
    assert tags["ICC_Profile:ProfileDescription"] == "sRGB built-in"


@needs_exiftool
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_icc_profile_bytes_kept(tmp_path, source, icc, fmt):
    path = write(tmp_path, source, MetadataOptions(), fmt)
    assert exiftool_icc(path) == icc


@needs_exiftool
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_keep_gps(tmp_path, source, fmt):
    tags = exiftool(write(tmp_path, source, MetadataOptions(keep_gps=True), fmt))
    assert tags["GPS:GPSLatitudeRef"] == "N"
    assert tags["GPS:GPSLatitude"] == pytest.approx(51.5)
    assert tags["GPS:GPSLongitude"] == pytest.approx(7 / 60)
    assert "IFD0:Orientation" not in tags  # still gone


@needs_exiftool
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_defaults_fall_back_to_source_exif_artist(tmp_path, source, fmt):
    tags = exiftool(write(tmp_path, source, MetadataOptions(), fmt))
    assert tags["XMP-plus:DataMining"] == AIML
    assert tags["IFD0:Artist"] == "Zoë Source-Artist"
    assert tags["XMP-dc:Creator"] == "Zoë Source-Artist"
    assert "XMP-dc:Rights" not in tags and "IFD0:Copyright" not in tags
    assert "XMP-xmpRights:WebStatement" not in tags
    assert "XMP-glazeish:Preset" not in tags


@needs_exiftool
@pytest.mark.parametrize(("choice", "name"), [("genai", "DMI-PROHIBITED-GENAIMLTRAINING"), ("all", "DMI-PROHIBITED")])
def test_selected_data_mining_value(tmp_path, source, choice, name):
    tags = exiftool(write(tmp_path, source, MetadataOptions(data_mining=choice), "PNG"))
    assert tags["XMP-plus:DataMining"] == PLUS_VOCAB + name


@needs_exiftool
@pytest.mark.parametrize("fmt", FORMATS)
def test_disabled_writes_no_xmp(tmp_path, source, icc, fmt):
    opts = MetadataOptions(enabled=False, creator="Not Written", copyright="Not Written")
    path = write(tmp_path, source, opts, fmt)
    tags = exiftool(path)
    assert not groups(tags, "XMP"), groups(tags, "XMP")
    assert tags["IFD0:Artist"] == "Zoë Source-Artist"  # the input's own EXIF is kept ...
    assert "IFD0:Copyright" not in tags  # ... but nothing is added
    assert "IFD0:Orientation" not in tags
    assert not groups(tags, "GPS:")
    assert not groups(tags, "IFD1:")
    assert tags["ICC_Profile:ProfileDescription"] == "sRGB built-in"
    with Image.open(path) as im:
        assert "xmp" not in im.info and "XML:com.adobe.xmp" not in im.info


@needs_exiftool
def test_no_source_metadata_still_gets_reservation(tmp_path):
    path = write(tmp_path, SourceMetadata(), MetadataOptions(copyright="(c) Me"), "JPEG")
    tags = exiftool(path)
    assert tags["XMP-plus:DataMining"] == AIML
    assert tags["IFD0:Copyright"] == "(c) Me" and tags["XMP-dc:Rights"] == "(c) Me"
    assert not groups(tags, "ICC")


@needs_exiftool
def test_tiff_input_layout_tags_not_copied(tmp_path, icc):
    src_path = tmp_path / "in.tif"
    Image.new("RGB", (64, 48), (1, 2, 3)).save(
        src_path, icc_profile=icc, tiffinfo={0x0112: 6, 0x013B: "Tiff Artist"}, compression="tiff_lzw"
    )
    with Image.open(src_path) as im:
        src = read_source_metadata(im)
    out = tmp_path / "out.jpg"
    cloaked().save(out, "JPEG", **save_kwargs(src, MetadataOptions(), "JPEG"))
    tags = exiftool(out)
    assert tags["IFD0:Artist"] == "Tiff Artist"
    assert tags["XMP-dc:Creator"] == "Tiff Artist"
    for tag in ("StripOffsets", "StripByteCounts", "Compression", "BitsPerSample", "Orientation", "ICC_Profile"):
        assert f"IFD0:{tag}" not in tags, tag
    assert tags["ICC_Profile:ProfileDescription"] == "sRGB built-in"  # via the ICC segment instead


# ------------------------------------------------------------------------------------ C2PA (optional)


def _cert_chain(tmp_path: Path) -> tuple[bytes, bytes]:
    """A throw-away CA and an artist's signing certificate issued by it (C2PA rejects self-signed
    leaves), made with the ``cryptography`` package. Returns (chain PEM, key PEM)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "glazeish")]
        )

    def usage(ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    def base(subject, issuer, public_key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        base(name("Test CA"), name("Test CA"), ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        base(name("Test Artist"), ca.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return chain, key_pem


def test_training_mining_assertion_mapping():
    from glazeish.metadata import training_mining_assertion

    aiml = training_mining_assertion(MetadataOptions())["data"]["entries"]
    assert aiml == {"cawg.ai_training": {"use": "notAllowed"}, "cawg.ai_generative_training": {"use": "notAllowed"}}
    everything = training_mining_assertion(MetadataOptions(data_mining="all"))["data"]["entries"]
    assert {v["use"] for v in everything.values()} == {"notAllowed"} and len(everything) == 4
    assert training_mining_assertion(MetadataOptions(data_mining="unspecified")) is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_sign_c2pa(tmp_path, source, fmt):
    c2pa = pytest.importorskip("c2pa", reason="c2pa-python not installed (optional: pip install c2pa-python)")
    pytest.importorskip("cryptography", reason="cryptography not installed (needed to make a test certificate)")
    from glazeish.metadata import sign_c2pa

    chain, key = _cert_chain(tmp_path)
    opts = MetadataOptions(creator="Zoë Artist", copyright="© 2024 Zoë Artist", preset="default")
    path = write(tmp_path, source, opts, fmt)
    sign_c2pa(path, chain, key, opts)

    with c2pa.Reader(str(path)) as reader:
        store = json.loads(reader.json())
    assert store["validation_state"] in ("Valid", "Trusted")
    failures = {s["code"] for s in store.get("validation_status", [])}
    assert failures <= {"signingCredential.untrusted"}, failures  # only "test CA not on a trust list"
    manifest = store["manifests"][store["active_manifest"]]
    labels = {a["label"]: a["data"] for a in manifest["assertions"]}
    entries = labels["cawg.training-mining"]["entries"]
    assert entries["cawg.ai_training"]["use"] == "notAllowed"
    assert entries["cawg.ai_generative_training"]["use"] == "notAllowed"
    assert "thumbnail" not in manifest and not manifest.get("ingredients")
    assert manifest["signature_info"]["common_name"] == "Test Artist"

    if EXIFTOOL:  # independent reader: the CBOR assertion, and our XMP/EXIF survived signing
        tags = exiftool(path)
        if fmt != "WEBP":  # ExifTool 12.57 does not read C2PA boxes in WebP
            assert tags["CBOR:EntriesCawgAi_TrainingUse"] == "notAllowed"
        assert tags["XMP-plus:DataMining"] == AIML
        if fmt != "PNG":
            assert tags["IFD0:Copyright"] == "© 2024 Zoë Artist"
            assert "IFD0:Orientation" not in tags
    # ExifTool 12.57 skips a PNG eXIf chunk that follows a caBX (C2PA) chunk ("IFD0 pointer references
    # previous JUMBFBox directory"); the chunk is intact, as Pillow shows.
    with Image.open(path) as im:
        exif = im.getexif()
    assert exif.get(0x8298, "").encode("latin-1").decode("utf-8") == "© 2024 Zoë Artist"
    assert 0x0112 not in exif


def test_sign_c2pa_rejects_unknown_suffix(tmp_path):
    pytest.importorskip("c2pa", reason="c2pa-python not installed (optional: pip install c2pa-python)")
    from glazeish.metadata import sign_c2pa

    with pytest.raises(ValueError):
        sign_c2pa(tmp_path / "x.gif", b"", b"", MetadataOptions())


# ------------------------------------------------------------------------------ format limits


def _huge_exif() -> bytes:
    ex = _source_exif()
    ex[0x010E] = "x" * 70_000  # ImageDescription: 70 KB, over a JPEG segment
    ex[ExifTags.IFD.Exif] = {**ex[ExifTags.IFD.Exif], 0x9286: b"ASCII\0\0\0" + b"c" * 1000}  # UserComment
    return ex.tobytes()


def test_exif_over_a_jpeg_segment_is_trimmed_with_one_warning(tmp_path):
    """A JPEG carries EXIF in one 64 KB segment (Pillow: "EXIF data is too long"): the largest input tags are
    dropped until it fits, said in one line; the user's own Artist/Copyright and the small tags stay."""
    warned: list[str] = []
    src = SourceMetadata(exif=_huge_exif())
    kwargs = save_kwargs(src, MetadataOptions(creator="Jane Doe"), "JPEG", warn=warned.append)
    assert len(kwargs["exif"]) <= JPEG_SEGMENT_MAX
    assert len(warned) == 1 and "ImageDescription (70,000 bytes)" in warned[0] and "\n" not in warned[0]
    cloaked().save(tmp_path / "o.jpg", "JPEG", **kwargs)
    with Image.open(tmp_path / "o.jpg") as im:
        ex = im.getexif()
    assert ex[0x013B] == "Jane Doe" and ex[0x0110] == "TestCam 3000" and 0x010E not in ex
    # PNG and WebP take it whole, without a word
    warned.clear()
    for fmt in ("PNG", "WEBP"):
        assert len(save_kwargs(src, MetadataOptions(), fmt, warn=warned.append)["exif"]) > 70_000
    assert warned == []


def test_a_long_input_artist_is_left_out_of_a_jpeg_xmp(tmp_path):
    ex = Image.Exif()
    ex[0x013B] = "A" * 65_000  # the input's Artist: it would go into the XMP's dc:creator too
    warned: list[str] = []
    kwargs = save_kwargs(SourceMetadata(exif=ex.tobytes()), MetadataOptions(), "JPEG", warn=warned.append)
    cloaked().save(tmp_path / "o.jpg", "JPEG", **kwargs)  # no "XMP data is too long"
    assert any("XMP" in w for w in warned) and b"AAAA" not in kwargs["xmp"]


def test_options_that_cannot_fit_a_jpeg_are_refused_up_front():
    check_fits(MetadataOptions(creator="c" * 70_000), "png")  # fine: PNG and WebP have room
    check_fits(MetadataOptions(creator="c" * 70_000, enabled=False), "jpeg")  # nothing written
    check_fits(MetadataOptions(creator="Jane Doe", url="https://example.org/rights"), "jpeg")
    with pytest.raises(ValueError, match="a JPEG holds at most"):
        check_fits(MetadataOptions(creator="c" * 70_000), "jpeg")


def test_unreadable_exif_is_one_warning_not_three():
    warned: list[str] = []
    save_kwargs(SourceMetadata(exif=b"Exif\0\0II*\0garbage"), MetadataOptions(), "PNG", warn=warned.append)
    assert len(warned) == 1 and "EXIF" in warned[0] and "\n" not in warned[0]


def test_a_damaged_sub_ifd_is_one_warning_not_a_python_warning(recwarn):
    """Pillow parses the EXIF sub-IFDs late (when the EXIF is rewritten) and warns on stderr about damage there."""
    import struct

    ex = Image.Exif()
    ex[0x013B] = "A"
    ex[ExifTags.IFD.Exif] = {0x9003: "2024:01:01 00:00:00"}
    raw = bytearray(ex.tobytes())
    i = raw.find(struct.pack(">H", int(ExifTags.IFD.Exif)))
    raw[i + 8 : i + 12] = struct.pack(">I", 5000)  # the Exif IFD lies past the end
    warned: list[str] = []
    kwargs = save_kwargs(SourceMetadata(exif=bytes(raw)), MetadataOptions(), "PNG", warn=warned.append)
    assert len(warned) == 1 and warned[0].startswith("its EXIF is damaged") and not recwarn.list
    assert "exif" in kwargs  # what could be read (the Artist) is kept
