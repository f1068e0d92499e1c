"""Hostile input: a corpus of damaged, disguised, animated, oversized and oddly named files, built here, and
what ``glazeish protect`` does with each.

One batch runs the whole corpus through the command line (models loaded once), next to good files; then each
case is its own test: a refused file gets exactly one ``glazeish: error:`` line naming it and no output, a
file that Pillow decodes in full is cloaked. Across the batch: exit status 1, every input byte-identical
afterwards, no temp file left anywhere, the good files written. The scenarios that need their own run
(races, signals, a second run, unreadable files, format limits) follow.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin
from typer.testing import CliRunner

from glazeish.cli import _UNPRINTABLE, app

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(18)
RGB = (RNG.random((24, 32, 3)) * 255).astype(np.uint8)


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny images, many runs: one torch thread (the bytes do not depend on it; a busy machine's second thread
    only makes every small convolution wait for it)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------------------------------------
# building the corpus


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_chunks(data: bytes) -> dict[str, tuple[int, int]]:
    """The first offset and payload length of each chunk kind."""
    out, i = {}, 8
    while i + 8 <= len(data):
        n = struct.unpack(">I", data[i : i + 4])[0]
        out.setdefault(data[i + 4 : i + 8].decode("latin-1"), (i, n))
        i += 12 + n
    return out


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def rich_png() -> bytes:
    """A palette PNG with every common chunk kind: IHDR iCCP tEXt zTXt iTXt PLTE tRNS pHYs eXIf IDAT IEND."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "art")
    info.add_text("Comment", "zipped " * 20, zip=True)
    info.add_itxt("Description", "ünïcode", lang="en", tkey="Description")
    exif = Image.Exif()
    exif[0x013B] = "Artist"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(im, "PNG", pnginfo=info, icc_profile=icc, exif=exif.tobytes(), transparency=0, dpi=(72, 72))


PNG = rich_png()
KINDS = list(png_chunks(PNG))
assert KINDS == ["IHDR", "iCCP", "tEXt", "zTXt", "iTXt", "PLTE", "tRNS", "pHYs", "eXIf", "IDAT", "IEND"]


def flipped(data: bytes, at: int, mask: int = 0x40) -> bytes:
    d = bytearray(data)
    d[at] ^= mask
    return bytes(d)


def recrc(data: bytes, kind: str) -> bytes:
    """``data`` with the checksum of its ``kind`` chunk made right again (whatever its payload now says)."""
    off, n = png_chunks(data)[kind]
    return data[: off + 8 + n] + struct.pack(">I", zlib.crc32(data[off + 4 : off + 8 + n]) & 0xFFFFFFFF) + data[off + 12 + n :]


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def interlaced_png(rgb: np.ndarray, height: int | None = None) -> bytes:
    """An Adam7-interlaced 8-bit RGB PNG (Pillow reads but does not write them); ``height`` may claim more rows
    than there are."""
    raw = b"".join(b"\0" + row.tobytes() for x0, y0, dx, dy in ADAM7 for row in rgb[y0::dy, x0::dx] if row.size)
    ihdr = struct.pack(">IIBBBBB", rgb.shape[1], height or rgb.shape[0], 8, 2, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x013B] = "Artist"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(Image.fromarray(RGB), "JPEG", quality=90, exif=exif.tobytes(), icc_profile=icc)


JPEG = jpeg()


def jpeg_segment(marker: int) -> tuple[int, int]:
    """Offset and length field of the first segment with ``marker``; marker 0 = the entropy-coded scan."""
    i = 2
    while True:
        m, n = JPEG[i + 1], struct.unpack(">H", JPEG[i + 2 : i + 4])[0]
        if m == marker:
            return i, n
        if m == 0xDA:
            return i + 2 + n, len(JPEG) - 2 - (i + 2 + n)
        i += 2 + n


def patched(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def frames(fmt: str) -> bytes:
    imgs = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encode(imgs[0], fmt, save_all=True, append_images=imgs[1:])


def tiff_ifd_loop() -> bytes:
    d = bytearray(encode(Image.fromarray(RGB), "TIFF"))
    ifd = struct.unpack("<I", d[4:8])[0]
    n = struct.unpack("<H", d[ifd : ifd + 2])[0]
    d[ifd + 2 + 12 * n : ifd + 6 + 12 * n] = struct.pack("<I", ifd)  # the next IFD is this one
    return bytes(d)


def truncated(fmt: str) -> bytes:
    data = encode(Image.fromarray(RGB), fmt)
    return data[: len(data) * 2 // 3]


def huge_text_png(zipped: bool) -> bytes:
    info = PngImagePlugin.PngInfo()
    (info.add_text if zipped else info.add_itxt)("Comment", "x" * 2_000_000, **({"zip": True} if zipped else {}))
    return encode(Image.fromarray(RGB), "PNG", pnginfo=info)


def big_exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "d" * 65_000  # ImageDescription: all a JPEG segment holds
    return encode(Image.fromarray(RGB), "JPEG", quality=90, exif=exif.tobytes())


def bomb() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def good_png() -> bytes:
    return encode(Image.fromarray(RGB), "PNG")


# name -> (bytes, None if it is cloaked, else a phrase of its one error line)
CASES: dict[str, tuple[bytes, str | None]] = {}
for kind in KINDS:
    off, n = png_chunks(PNG)[kind]
    CASES[f"png-{kind}-bad-crc.png"] = (flipped(PNG, off + 8 + n, 0x01), None if kind == "IEND" else "")
    CASES[f"png-{kind}-cut.png"] = (PNG[: off + 8 + n // 2], None if kind == "IEND" else "")
    if n:
        garbage = flipped(PNG, off + 8 + n // 2)
        CASES[f"png-{kind}-flipped.png"] = (garbage, "")
        # the same flip with a checksum made to match: what Pillow then reads decides
        CASES[f"png-{kind}-flipped-crc-fixed.png"] = (recrc(garbage, kind), {
            "IHDR": "stops before the last row", "IDAT": "incorrect data check"}.get(kind))
CASES.update({
    "png-interlaced.png": (interlaced_png(RGB), None),
    "png-interlaced-rows-missing.png": (interlaced_png(RGB, height=40), "stops before the last row"),
    "png-2mb-itxt.png": (huge_text_png(zipped=False), None),
    "png-2mb-ztxt.png": (huge_text_png(zipped=True), "MAX_TEXT_CHUNK"),
    "png-bomb-header.png": (bomb(), "megapixels"),
    "jpeg-cut-in-half.jpg": (JPEG[: len(JPEG) // 2], "truncated"),
    "jpeg-cut-at-scan.jpg": (JPEG[: jpeg_segment(0)[0]], "truncated"),
    "jpeg-no-eoi.jpg": (JPEG[:-2], "truncated"),
    "jpeg-scan-bytes-flipped.jpg": (patched(JPEG, jpeg_segment(0)[0] + 40, b"\x5a\xa5" * 8), None),  # libjpeg decodes it
    "jpeg-sof-zero-height.jpg": (patched(JPEG, jpeg_segment(0xC0)[0] + 5, b"\0\0"), ""),
    "jpeg-dht-garbage.jpg": (patched(JPEG, jpeg_segment(0xC4)[0] + 5, b"\xff" * 24), "broken data stream"),
    "jpeg-app1-length-past-end.jpg": (patched(JPEG, jpeg_segment(0xE1)[0] + 2, b"\xff\xff"), "truncated"),
    "jpeg-exif-garbage.jpg": (patched(JPEG, jpeg_segment(0xE1)[0] + 18, bytes(range(30))), "broken data stream"),
    "jpeg-exif-entry-count-too-big.jpg": (patched(JPEG, jpeg_segment(0xE1)[0] + 18, b"\xff\x00"), None),  # a warning
    "jpeg-only-soi.jpg": (JPEG[:2], ""),
    "jpeg-64k-exif.jpg": (big_exif_jpeg(), None),
    "gif-cut.gif": (truncated("GIF"), "truncated"),
    "tiff-cut.tif": (truncated("TIFF"), "truncated"),
    "bmp-cut.bmp": (truncated("BMP"), "truncated"),
    "webp-cut.webp": (truncated("WEBP"), "corrupt"),
    "tiff-ifd-loop.tif": (tiff_ifd_loop(), None),
    "anim.gif": (frames("GIF"), "holds 3 images"),
    "anim-apng.png": (frames("PNG"), "holds 3 images"),
    "pages.tif": (frames("TIFF"), "holds 3 images"),
    "anim.webp": (frames("WEBP"), "holds 3 images"),
    "empty.png": (b"", "empty file"),
    "text.png": (b"this is not an image\n", "not an image Pillow can read"),
    "html.jpg": (b"<html><script>alert(1)</script></html>", "not an image Pillow can read"),
    # hostile names, good pixels
    "-rf.png": (good_png(), None),
    "with space.png": (good_png(), None),
    "ünï cödé.png": (good_png(), None),
    unicodedata.normalize("NFD", "nfd-é.png"): (good_png(), None),
    "emoji-🎨.png": (good_png(), None),
    "..png": (good_png(), None),
    "new\nline.png": (good_png(), None),
    "forged\nglazeish: note: fake.png\tx.png": (b"junk", "not an image Pillow can read"),
    os.fsdecode(b"bad-utf8-\xff\xfe.png"): (good_png(), None),
    "x" * 240 + ".png": (good_png(), None),  # 244 bytes: the temp names used to overflow here
    "y" * 250 + ".png": (good_png(), None),  # its output name would be 264 bytes: shortened, with a note
})
GOOD = ["good-rgba.png", "good.jpg"]


def shown(path: Path) -> str:
    """A path as the command line prints it (control characters and undecodable bytes escaped)."""
    return str(path).translate(_UNPRINTABLE)


@pytest.fixture(scope="module")
def batch(tmp_path_factory, models_dir):
    """The corpus plus two good files, a FIFO, a link to /dev/zero, a dangling link, an unreadable sub-folder,
    an unreadable file named by itself and a file deleted mid-run, through one ``protect -r``."""
    root = tmp_path_factory.mktemp("hostile")
    d = root / "in"
    d.mkdir()
    for name, (data, _) in CASES.items():
        (d / name).write_bytes(data)
    rgba = Image.fromarray(RGB).convert("RGBA")
    rgba.putpixel((0, 0), (1, 2, 3, 0))
    rgba.save(d / "good-rgba.png")
    Image.fromarray(RGB).save(d / "good.jpg", quality=95)
    os.mkfifo(d / "fifo.png")
    (d / "zero.png").symlink_to("/dev/zero")
    (d / "dangling.png").symlink_to(d / "nowhere.png")
    (d / "locked").mkdir()
    Image.fromarray(RGB).save(d / "locked" / "hidden.png")
    (d / "zz-deleted.png").write_bytes(good_png())  # listed, then deleted while another file is cloaked
    alone = root / "unreadable.png"
    alone.write_bytes(good_png())
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}
    before.pop(d / "zz-deleted.png")
    out = root / "out"

    with pytest.MonkeyPatch.context() as mp:
        unreadable(mp, d / "locked", folder=True)
        unreadable(mp, alone)
        from glazeish.protect import Protector

        real = Protector.protect

        def protect(self, *a, **k):
            (d / "zz-deleted.png").unlink(missing_ok=True)
            return real(self, *a, **k)

        mp.setattr(Protector, "protect", protect)
        try:
            r = run("protect", d, alone, "-r", "-o", out, "--models", models_dir, "--steps", "1", "--no-eval", "--json")
        finally:
            (d / "locked").chmod(0o755)
            alone.chmod(0o644)
    rows = {row["input"]: row["output"] for row in map(json.loads, r.stdout.splitlines())}
    return {"dir": d, "root": root, "out": out, "result": r, "rows": rows, "before": before, "alone": alone}


def unreadable(mp, path: Path, folder: bool = False) -> None:
    """Make ``path`` unreadable to this process: by its mode, or (for root, whom modes do not stop) by failing
    the one system call that reads it, as the kernel would."""
    if os.geteuid() != 0:
        path.chmod(0)  # given back by the caller
        return
    name = "scandir" if folder else "open"
    real = getattr(os, name)

    def deny(p, *a, **k):
        if os.fspath(p) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(p, *a, **k)

    mp.setattr(os, name, deny)


def error_lines(batch, path: Path) -> list[str]:
    return [line for line in batch["result"].stderr.splitlines() if f"{shown(path)}:" in line]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_hostile_file(batch, name):
    path = batch["dir"] / name
    phrase = CASES[name][1]
    lines = error_lines(batch, path)
    if phrase is None:  # decoded in full: cloaked, its own output, at most warnings naming it
        assert str(path) in batch["rows"], batch["result"].stderr
        out = Path(batch["rows"][str(path)])
        assert out.parent == batch["out"] and len(os.fsencode(out.name)) <= 255
        with Image.open(out) as im:
            assert im.size == (32, 24)
        assert all(line.startswith(("glazeish: warning:", "glazeish: note:")) for line in lines), lines
    else:
        assert len(lines) == 1 and lines[0].startswith(f"glazeish: error: {shown(path)}: "), lines
        assert phrase in lines[0]
        assert str(path) not in batch["rows"]


@pytest.mark.parametrize("name,phrase", [
    ("fifo.png", "not a regular file"), ("zero.png", "not a regular file"), ("dangling.png", "no such file"),
    ("zz-deleted.png", "no such file")])
def test_what_is_not_a_file_or_vanishes_is_one_line(batch, name, phrase):
    lines = error_lines(batch, batch["dir"] / name)
    assert len(lines) == 1 and lines[0].startswith("glazeish: error:") and phrase in lines[0]


def test_unreadable_file_named_alone_and_unreadable_folder(batch):
    """Refused one by one (the rest of the batch is done), never skipped silently."""
    lines = error_lines(batch, batch["alone"])
    assert len(lines) == 1 and "permission denied" in lines[0]
    folder = [line for line in batch["result"].stderr.splitlines() if "cannot read this folder" in line]
    assert folder == [f"glazeish: error: {batch['dir'] / 'locked'}: cannot read this folder (Permission denied); "
                      "its images were not cloaked"]


def test_the_batch_goes_on_touches_no_input_and_leaves_no_temp_file(batch):
    r, d, out = batch["result"], batch["dir"], batch["out"]
    assert r.exit_code == 1
    assert all(line.startswith("glazeish: ") for line in r.stderr.splitlines()), r.stderr  # no traceback
    for good in GOOD:
        assert str(d / good) in batch["rows"]
    assert Image.open(batch["rows"][str(d / "good-rgba.png")]).getpixel((0, 0)) == (1, 2, 3, 0)
    assert {p: p.read_bytes() for p in batch["before"]} == batch["before"]  # every input byte-identical
    assert not [p for p in batch["root"].rglob("*") if p.name.endswith(".tmp")]
    written = {p.name for p in out.iterdir()}
    assert written == {Path(o).name for o in batch["rows"].values()}  # the run's lock file went with it


def test_long_names_fit_and_say_so(batch):
    d, out = batch["dir"], batch["out"]
    assert Path(batch["rows"][str(d / ("x" * 240 + ".png"))]).name == "x" * 240 + ".protected.png"
    long = d / ("y" * 250 + ".png")
    name = Path(batch["rows"][str(long)]).name
    assert len(name) == 255 and name.endswith(".protected.png") and "~" in name
    assert f"glazeish: note: {long}: its output name would be over 255 bytes; shortened to {out / name}" \
        in batch["result"].stderr.splitlines()


def test_file_names_cannot_forge_lines(batch):
    """A name holding a newline or a tab (or bytes that are not UTF-8) is escaped where it is printed."""
    d, stderr = batch["dir"], batch["result"].stderr.splitlines()
    assert not any(line.startswith("glazeish: note: fake.png") for line in stderr)
    assert [line for line in stderr if "fake.png" in line] == [
        f"glazeish: error: {d}/forged\\x0aglazeish: note: fake.png\\x09x.png: not an image Pillow can read (unknown "
        "or corrupt format)"]
    assert all("\udcff" not in line for line in stderr)
    assert str(d / "new\nline.png") in batch["rows"] and str(d / os.fsdecode(b"bad-utf8-\xff\xfe.png")) in batch["rows"]


# ---------------------------------------------------------------------------------------------------------
# scenarios that need their own run


def test_jpeg_output_with_oversized_exif_and_an_oversized_creator(tmp_path, models_dir):
    """--format jpeg: input EXIF over a JPEG segment is trimmed with one warning naming the file; a 70 KB
    --creator is an option error before any work."""
    d = tmp_path / "in"
    d.mkdir()
    exif = Image.Exif()
    exif[0x010E] = "d" * 70_000  # more than any JPEG holds: a PNG or TIFF can carry it
    Image.fromarray(RGB).save(d / "big-exif.png", exif=exif.tobytes())
    Image.fromarray(RGB).save(d / "plain.png")
    out = tmp_path / "out"
    r = run("protect", d, "-o", out, "--models", models_dir, "--steps", "1", "--no-eval", "--format", "jpeg")
    assert r.exit_code == 0, r.output
    warned = [line for line in r.stderr.splitlines() if "big-exif.png" in line]
    assert len(warned) == 1 and warned[0].startswith(f"glazeish: warning: {d / 'big-exif.png'}: its EXIF does not fit")
    assert {p.name for p in out.glob("*.jpg")} == {"big-exif.protected.jpg", "plain.protected.jpg"}
    r = run("protect", d, "-o", tmp_path / "o2", "--models", models_dir, "--format", "jpeg", "--creator", "c" * 70_000)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "a JPEG holds at most" in r.stderr
    assert not (tmp_path / "o2").exists() or not list((tmp_path / "o2").iterdir())


def test_leading_dash_names_after_double_dash(tmp_path, models_dir, monkeypatch):
    (tmp_path / "-rf.png").write_bytes(good_png())
    monkeypatch.chdir(tmp_path)
    r = run("protect", "-o", "out", "--models", models_dir, "--steps", "1", "--no-eval", "--", "-rf.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "-rf.protected.png").is_file() and (tmp_path / "-rf.png").read_bytes() == good_png()


KILL_MID_WRITE = """
import os, signal, sys, time
from PIL import Image
# Ctrl-C as in a terminal: a job a non-interactive shell starts in the background (`cmd &`, as a CI runner
# may) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
signal.signal(signal.SIGINT, signal.default_int_handler)
real = Image.Image.save
def save(self, fp, *a, **k):
    real(self, fp, *a, **k)  # the temp file holds the image; the signal comes before it is moved into place
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    time.sleep(60)
Image.Image.save = save
from glazeish.cli import app
app(sys.argv[2:], prog_name="glazeish")
"""


@pytest.mark.parametrize("sig,code", [("SIGTERM", 128 + signal.SIGTERM), ("SIGINT", 130)])
def test_a_signal_while_writing_leaves_no_temp_file(tmp_path, models_dir, sig, code):
    src = tmp_path / "art.png"
    src.write_bytes(good_png())
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, sig, "protect", str(src), "-o", str(out), "--models",
                        str(models_dir), "--steps", "1", "--no-eval"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=ONE_THREAD)
    assert r.returncode == code, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"glazeish: stopped while cloaking {src}; it was not written (run "
                                                 "again to finish the rest)")
    assert list(out.iterdir()) == []  # no output, no temp file, no lock file
    assert src.read_bytes() == good_png()


def test_concurrent_runs_into_one_folder(tmp_path, models_dir):
    """Two real processes: the second is refused while the first holds the folder; nothing is clobbered."""
    src = tmp_path / "art.png"
    src.write_bytes(good_png())
    out = tmp_path / "out"
    out.mkdir()
    hold = subprocess.Popen([sys.executable, "-c", "import sys, time; from glazeish.job import lock_outdir\n"
                             "with lock_outdir(sys.argv[1]):\n print('held', flush=True); time.sleep(120)", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, env=ONE_THREAD)
    try:
        assert hold.stdout.readline().strip() == "held"
        r = run("protect", src, "-o", out, "--models", models_dir, "--steps", "1", "--no-eval")
        assert r.exit_code == 2 and "another glazeish run is writing to" in r.stderr
        assert not (out / "art.protected.png").exists()
    finally:
        hold.kill()
        hold.wait()
    r = run("protect", src, "-o", out, "--models", models_dir, "--steps", "1", "--no-eval")  # the lock went with it
    assert r.exit_code == 0 and (out / "art.protected.png").is_file()
    assert not (out / ".glazeish.lock").exists()  # the killed holder's file, taken over, and removed at the end


# ---------------------------------------------------------------------------------------------------------
# output names, without models


def test_plan_outputs_is_deterministic_and_collision_free(tmp_path):
    from glazeish.imageio import Found
    from glazeish.job import Job, plan_outputs

    out = tmp_path / "out"
    found = [Found(tmp_path / "a.jpg", Path("a.jpg")), Found(tmp_path / "a.png", Path("a.png")),
             Found(tmp_path / "A.PNG", Path("A.PNG")), Found(tmp_path / "a-2.png", Path("a-2.png")),
             Found(tmp_path / "x/art.png", Path("x/art.png")), Found(tmp_path / "y/art.png", Path("y/art.png")),
             Found(tmp_path / "z/art.png", Path("art.png"))]
    plan = plan_outputs(found, out, Job())
    names = [p.rel for p in plan]
    # the first of each name keeps it; a-2.png keeps its own natural name, so a.png's twin skips to -3
    assert names == ["a.protected.png", "a-3.protected.png", "A-4.protected.png", "a-2.protected.png",
                     "x/art.protected.png", "y/art.protected.png", "art.protected.png"]
    assert [p.note is not None for p in plan] == [False, True, True, False, False, False, False]
    assert plan_outputs(found, out, Job()) == plan
    # an output that would land on an input is an error: nothing is written for it
    clash = plan_outputs([tmp_path / "a.protected.png", tmp_path / "a.png"], tmp_path, Job())
    assert clash[0].error is None and clash[1].dest is None and "would overwrite an input" in clash[1].error
    # reports need room for their longer name
    long = [Found(tmp_path / ("y" * 240 + ".png"), Path("y" * 240 + ".png"))]
    assert plan_outputs(long, out, Job())[0].note is None
    with_report = plan_outputs(long, out, Job(report=True))[0]
    assert with_report.note and len(with_report.rel) == 255 - len(".report.html") + len(".png")


# ---------------------------------------------------------------------------------------------------------
# options and files that used to be replaced, misread or refused per file


def one_error(r, code: int = 2) -> str:
    """The one line a refused run prints (no traceback, nothing else on stderr)."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == code and len(lines) == 1 and lines[0].startswith("glazeish: error: "), r.output
    return lines[0]


def test_check_writes_its_report_only_to_a_regular_file_or_a_new_path(tmp_path, models_dir):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(good_png())
    Image.fromarray(np.clip(RGB.astype(int) + 2, 0, 255).astype(np.uint8)).save(b)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link.html").symlink_to(tmp_path / "kept.html")
    (tmp_path / "kept.html").write_text("kept")
    (tmp_path / "afile").write_text("x")
    check = ("check", a, b, "--models", models_dir, "--purify", "none", "--device", "cpu")
    for target, phrase in [("fifo", "fifo is a FIFO; reports are written only to regular files or new paths"),
                           ("link.html", "is a symbolic link"), ("afile/", "afile/: is not a folder")]:
        assert phrase in one_error(run(*check, "--report", f"{tmp_path}/{target}"))
    assert (tmp_path / "fifo").is_fifo() and (tmp_path / "link.html").is_symlink()
    assert (tmp_path / "kept.html").read_text() == "kept" and (tmp_path / "afile").read_text() == "x"
    # a trailing slash names a folder, made for the report, never a file of that name
    r = run(*check, "--report", f"{tmp_path}/newdir/")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "newdir").is_dir() and [p.name for p in (tmp_path / "newdir").iterdir()] == ["b.report.html"]
    assert a.read_bytes() == good_png()


def gray16(values: np.ndarray) -> bytes:
    return encode(Image.fromarray(values.astype(np.uint16)), "PNG")


def test_a_dark_16_bit_scan_stays_dark(tmp_path, models_dir):
    """Values below 256 in a 16-bit greyscale PNG are a nearly black picture, not a mid-grey one."""
    from glazeish.imageio import read_image

    dark = (np.random.default_rng(16).random((24, 32)) * 200).astype(np.uint16)
    src, white = tmp_path / "scan.png", tmp_path / "white.png"
    src.write_bytes(gray16(dark))
    white.write_bytes(gray16(np.full((4, 4), 65535)))
    art = read_image(src)
    assert art.mode == "I;16" and art.rgb.max() <= 1 and read_image(white).rgb.min() == 255
    r = run("protect", src, "-o", tmp_path / "out", "--models", models_dir, "--steps", "1", "--no-eval")
    assert r.exit_code == 0 and not r.stderr.strip(), r.output
    with Image.open(tmp_path / "out" / "scan.protected.png") as im:
        assert np.asarray(im.convert("RGB")).max() <= 1 + 12  # dark, within the budget of a dark picture
    assert src.read_bytes() == gray16(dark)


def big_icc() -> bytes:
    """A 1.5 MB ICC profile (an sRGB profile padded with data that does not compress)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() + np.random.default_rng(1).bytes(1_500_000)


def test_a_huge_icc_profile_is_read_and_dropped_where_the_output_cannot_carry_it(tmp_path, models_dir):
    d = tmp_path / "in"
    d.mkdir()
    icc = big_icc()
    (d / "photo.jpg").write_bytes(encode(Image.fromarray(RGB), "JPEG", quality=95, icc_profile=icc))
    (d / "scan.png").write_bytes(encode(Image.fromarray(RGB), "PNG", icc_profile=icc))  # once "corrupt"
    before = {p: p.read_bytes() for p in d.iterdir()}
    for fmt, ext, kept in [("png", "png", False), ("jpeg", "jpg", True)]:
        out = tmp_path / fmt
        r = run("protect", d, "-o", out, "--models", models_dir, "--steps", "1", "--no-eval", "--format", fmt)
        assert r.exit_code == 0, r.output
        warned = [line for line in r.stderr.splitlines() if "ICC" in line]
        assert len(warned) == (0 if kept else 2), r.stderr
        for line in warned:
            assert line.startswith("glazeish: warning: ") and "ICC colour profile (1.5 MB) is over the 1.0 MB" in line
        for name in ("photo", "scan"):
            with Image.open(out / f"{name}.protected.{ext}") as im:  # every file written reads back
                im.load()
                assert (im.info.get("icc_profile") == icc) is kept and im.size == (32, 24)
    assert {p: p.read_bytes() for p in d.iterdir()} == before


def test_an_icc_profile_beyond_what_any_format_carries_is_refused_as_such(tmp_path):
    from glazeish.imageio import ImageError, read_image

    src = tmp_path / "huge-icc.png"
    src.write_bytes(encode(Image.fromarray(RGB), "PNG", icc_profile=b"\0" * 17_000_000))  # 17 MB, 17 KB on disk
    with pytest.raises(ImageError) as e:
        read_image(src)
    assert str(e.value).startswith(f"{src}: its ICC colour profile is over 16.7 MB") and "corrupt" not in str(e.value)
    assert PngImagePlugin.MAX_TEXT_CHUNK == 1 << 20  # the limit raised for one file is back


@pytest.mark.parametrize("pattern,phrase", [(lambda: encode(Image.new("RGB", (2000, 1500)), "PNG"), "this one is 2000x1500"),
                                            (bomb, "more pixels than Pillow opens safely")])
def test_a_start_pattern_has_a_size_limit(tmp_path, models_dir, pattern, phrase):
    src = tmp_path / "art.png"
    src.write_bytes(good_png())
    (tmp_path / "pattern.png").write_bytes(pattern())
    r = run("protect", src, "-o", tmp_path / "out", "--models", models_dir, "--start", tmp_path / "pattern.png")
    line = one_error(r)
    assert "a start pattern is at most 1024x1024 px" in line and phrase in line
    assert not (tmp_path / "out").exists() and src.read_bytes() == good_png()


SETTINGS_REFUSED_ONCE = [
    (["--purify", "upscale"], "purification 'upscale' needs a diffusers pipeline (--upscaler)"),
    (["--copyright", os.fsdecode(b"\xa9 Ann \xff\xfe")], "copyright is not valid UTF-8 text (at character 0: a9); give it in UTF-8"),
    (["--encoder", "taesana", "--objective", "mimic-away"], "objective 'mimic-away' needs a decoder"),
    (["--encoder", "nope", "--intensity", "fast"], "unknown encoder 'nope'"),
    (["--budget", ""], "budget must be one of flat, perceptual, masked, not ''"),
]


@pytest.mark.parametrize("args,phrase", SETTINGS_REFUSED_ONCE)
def test_a_bad_setting_is_refused_once_before_any_file(tmp_path, models_dir, args, phrase):
    """Not one failure per file: one line, exit 2, nothing written."""
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a.png", "b.png"):
        (d / name).write_bytes(good_png())
    out = tmp_path / "out"
    r = run("protect", d, "-o", out, "--models", models_dir, "--steps", "1", *args)
    assert phrase in one_error(r)
    assert not out.exists() or not list(out.iterdir())
    assert [p.read_bytes() for p in sorted(d.iterdir())] == [good_png()] * 2


def test_a_device_torch_cannot_build_here_is_one_line(tmp_path, models_dir):
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has an Apple GPU")
    src = tmp_path / "art.png"
    src.write_bytes(good_png())
    r = run("protect", src, "-o", tmp_path / "out", "--models", models_dir, "--device", "mps")
    assert one_error(r) == "glazeish: error: device 'mps': no Apple GPU (MPS) is available here (use auto or cpu)"
    assert not (tmp_path / "out").exists()
    r = run("check", src, src, "--models", models_dir, "--device", "mps:0")
    assert "no Apple GPU (MPS)" in one_error(r)


# ---------------------------------------------------------------------------------------------------------
# the output folder's lock


def test_the_lock_file_goes_with_the_run(tmp_path):
    from glazeish.job import LOCK_NAME, lock_outdir

    with lock_outdir(tmp_path):
        assert (tmp_path / LOCK_NAME).is_file()
    assert not (tmp_path / LOCK_NAME).exists()
    with pytest.raises(KeyError), lock_outdir(tmp_path):  # a run that fails removes it too
        raise KeyError
    assert list(tmp_path.iterdir()) == []


def test_a_lock_file_replaced_while_locking_is_not_trusted(tmp_path, monkeypatch):
    """The race of removing the lock file: run B opens it, run A ends (removing it) and run C starts (a new
    file) before B locks. B then holds a lock on a file that is no longer the folder's: it must look again,
    find C's, and be refused."""
    import fcntl

    from glazeish.job import LOCK_NAME, OutdirBusyError, lock_outdir

    real, others = fcntl.flock, []

    def flock(f, op):
        if not others:  # between B's open and its lock: A ends, C starts and holds the folder
            (tmp_path / LOCK_NAME).unlink()
            others.append(open(tmp_path / LOCK_NAME, "a"))
            real(others[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
        return real(f, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    try:
        with pytest.raises(OutdirBusyError), lock_outdir(tmp_path):
            pass
    finally:
        others[0].close()
    assert (tmp_path / LOCK_NAME).is_file()  # C's, untouched by B
