from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from glazeish.imageio import ImageError, find_images, read_image, save_image, to_tensor, to_uint8


def _png_with_declared_size(path, width, height):
    """A tiny, valid-looking PNG whose header claims a gigantic canvas (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.fixture
def corpus(tmp_path):
    rgb = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    d = tmp_path
    Image.fromarray(rgb).save(d / "ok.png")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("this is not an image\n")
    _png_with_declared_size(d / "bomb.png", 30000, 30000)
    return d, rgb


@pytest.mark.parametrize(
    "name,phrase",
    [("truncated.png", "truncated"), ("empty.png", "empty"), ("text.png", "not an image"), ("bomb.png", "megapixels"),
     ("missing.png", "no such file")],
)
def test_bad_inputs_give_one_line_errors_naming_the_file(corpus, name, phrase):
    d, _ = corpus
    with pytest.raises(ImageError) as e:
        read_image(d / name)
    msg = str(e.value)
    assert name in msg and phrase in msg and "\n" not in msg


def test_pixel_limit_is_configurable(corpus):
    d, _ = corpus
    with pytest.raises(ImageError, match="max-pixels"):
        read_image(d / "ok.png", max_pixels=100)
    assert read_image(d / "ok.png").size == (56, 40)


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (24, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    art = read_image(tmp_path / "cmyk.jpg")
    assert art.rgb.shape == (16, 24, 3) and art.mode == "CMYK"
    r, g, b = art.rgb.reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 100%, 100%, 0) is red


def test_16bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    arr = np.linspace(0, 65535, 32 * 8, dtype=np.uint16).reshape(8, 32)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    art = read_image(tmp_path / "deep.png")
    assert art.rgb.dtype == np.uint8 and art.rgb.shape == (8, 32, 3)
    assert art.rgb[..., 0].min() == 0 and art.rgb[..., 0].max() == 255
    assert len(np.unique(art.rgb[..., 0])) > 100  # a ramp, not a 0/255 step


def test_greyscale_and_palette(tmp_path):
    Image.new("L", (10, 6), 128).save(tmp_path / "grey.png")
    Image.new("RGB", (10, 6), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "pal.png")
    assert (read_image(tmp_path / "grey.png").rgb == 128).all()
    assert tuple(read_image(tmp_path / "pal.png").rgb[0, 0]) == (10, 200, 30)


def test_rgba_alpha_is_kept_separately(tmp_path):
    im = Image.new("RGBA", (12, 10), (200, 100, 50, 255))
    im.putpixel((0, 0), (0, 0, 0, 0))
    im.save(tmp_path / "a.png")
    art = read_image(tmp_path / "a.png")
    assert art.alpha is not None and art.alpha[0, 0] == 0 and art.alpha[5, 5] == 255
    save_image(tmp_path / "out.png", art.rgb, art.alpha)
    back = Image.open(tmp_path / "out.png")
    assert back.mode == "RGBA" and back.getpixel((0, 0))[3] == 0 and back.size == (12, 10)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (30, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 20))  # blue left stripe
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    art = read_image(tmp_path / "rot.jpg")
    assert art.size == (20, 30)  # upright: portrait
    top = art.rgb[:5].reshape(-1, 3).mean(0)
    assert top[2] > 200 and top[0] < 80  # the blue stripe is now at the top


def test_icc_profile_is_kept(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (8, 8), 100).save(tmp_path / "icc.png", icc_profile=icc)
    art = read_image(tmp_path / "icc.png")
    save_image(tmp_path / "o.png", art.rgb, None, art.source)
    assert Image.open(tmp_path / "o.png").info.get("icc_profile") == icc


def test_atomic_save_leaves_no_temp_files_and_reports_unwritable(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    save_image(tmp_path / "x.png", rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
    assert oct(os.stat(tmp_path / "x.png").st_mode & 0o777) != oct(0o600)
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ImageError, match="cannot write"):
            save_image(ro / "y.png", rgb)


def test_jpeg_output(tmp_path):
    rgb = (np.random.default_rng(1).random((16, 16, 3)) * 255).astype(np.uint8)
    save_image(tmp_path / "x.jpg", rgb, fmt="jpeg", quality=90)
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"


def test_to_uint8_respects_the_budget_after_rounding():
    ref = np.full((2, 2, 3), 100, np.uint8)
    x = to_tensor(ref) + 3.6 / 255  # would round to +4 levels
    out = to_uint8(x, ref, eps=3.6 / 255)
    assert (out.astype(int) - 100).max() == 3


def test_find_images(tmp_path):
    (tmp_path / "sub").mkdir()
    for p in ["a.png", "b.JPG", "notes.txt", "sub/c.webp"]:
        (tmp_path / p).write_bytes(b"x")
    assert [p.name for p in find_images([tmp_path])] == ["a.png", "b.JPG"]
    assert [p.name for p in find_images([tmp_path], recursive=True)] == ["a.png", "b.JPG", "c.webp"]


# -------------------------------------------------------------------------------------------------
# what a corrupt, animated or unreadable input does; how outputs are written


def _png(rgb) -> bytearray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return bytearray(buf.getvalue())


def _flip_in_chunk(data: bytearray, kind: bytes, at: int) -> bytearray:
    """``data`` with one bit flipped ``at`` bytes into the payload of its first ``kind`` chunk."""
    start = data.index(kind) + 4
    data[start + at] ^= 0x01
    return data


def test_one_flipped_bit_in_the_image_data_is_an_error_not_a_black_image(corpus):
    """Reading EXIF used to decode the image partly and swallow the error; a second load gave zeros."""
    d, rgb = corpus
    for i, at in enumerate((30, 0)):  # mid-stream, and in the zlib header
        f = d / f"flipped{i}.png"
        f.write_bytes(_flip_in_chunk(_png(rgb), b"IDAT", at))
        with pytest.raises(ImageError) as e:
            read_image(f)
        assert str(e.value).startswith(f"{f}: corrupt") and "\n" not in str(e.value)


def test_a_png_must_pass_its_own_checksums(corpus):
    d, rgb = corpus
    data = _png(rgb)
    start = data.index(b"IDAT") + 4
    end = start + struct.unpack(">I", bytes(data[start - 8 : start - 4]))[0]
    data[end - 1] ^= 0x01  # the last byte of the zlib stream: its Adler-32, which Pillow's decoder never reads
    (d / "crc.png").write_bytes(data)
    with pytest.raises(ImageError, match=r"crc\.png: corrupt .*checksum"):
        read_image(d / "crc.png")


@pytest.mark.parametrize("fmt,ext", [("GIF", "gif"), ("PNG", "png"), ("TIFF", "tif"), ("WEBP", "webp")])
def test_multi_frame_files_are_refused_not_cut_to_frame_one(tmp_path, fmt, ext):
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    f = tmp_path / f"anim.{ext}"
    frames[0].save(f, fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match=r"anim\.\w+: holds 3 images \(an animation or a multi-page file\)"):
        read_image(f)


def test_a_camera_mpo_is_its_photo(tmp_path):
    """A phone's JPEG with a second image (depth map, preview) opens as MPO: the photo is the first image."""
    photo, extra = Image.new("RGB", (32, 24), (200, 10, 10)), Image.new("RGB", (8, 6), (0, 0, 0))
    photo.save(tmp_path / "phone.jpg", "MPO", save_all=True, append_images=[extra], quality=95)
    art = read_image(tmp_path / "phone.jpg")
    assert art.size == (32, 24) and art.rgb[..., 0].mean() > 150


def test_damaged_exif_is_a_warning_and_the_pixels_are_read(tmp_path):
    im = Image.new("RGB", (16, 12), (1, 2, 3))
    im.save(tmp_path / "x.jpg", exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00garbage")
    art = read_image(tmp_path / "x.jpg")
    assert art.size == (16, 12) and art.warnings and all("\n" not in w for w in art.warnings)


def test_temp_files_have_short_fixed_names(tmp_path, monkeypatch):
    """A 244-character name used to overflow the file-name limit once the temp prefix and suffix were added."""
    rgb = np.zeros((4, 4, 3), np.uint8)
    seen = []
    real = Image.Image.save

    def spy(self, fp, *a, **k):
        seen.append(os.path.basename(fp))
        return real(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", spy)
    long = tmp_path / ("é" * 60 + "x" * 120 + ".png")  # 244 bytes in UTF-8 (what the limit counts)
    assert len(os.fsencode(long.name)) == 244
    save_image(long, rgb)
    assert [p.name for p in tmp_path.iterdir()] == [long.name]
    assert len(seen) == 1 and seen[0].startswith(".glazeish-") and seen[0].endswith(".tmp") and len(seen[0]) == 30


def test_no_clobber_write_never_replaces(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    (tmp_path / "x.png").write_bytes(b"someone else's")
    with pytest.raises(ImageError, match=r"x\.png: exists"):
        save_image(tmp_path / "x.png", rgb, overwrite=False)
    assert (tmp_path / "x.png").read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temp file left
    save_image(tmp_path / "y.png", rgb, overwrite=False)
    assert Image.open(tmp_path / "y.png").size == (4, 4)


def test_list_images_keeps_folders_and_reports_unreadable_ones(tmp_path, monkeypatch):
    from glazeish.imageio import list_images

    for p in ["in/a.png", "in/x/art.png", "in/y/art.png", "in/locked/z.png", "in/out/already.protected.png"]:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(b"x")
    (tmp_path / "in/x/loop").symlink_to(tmp_path / "in", target_is_directory=True)  # a cycle: visited once
    locked = tmp_path / "in/locked"
    if os.geteuid() == 0:  # root reads anything: make the listing fail as it would for a user
        real = os.scandir

        def scandir(path="."):
            if os.fspath(path) == os.fspath(locked):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        locked.chmod(0)
    try:
        got = list_images([tmp_path / "in", tmp_path / "in/a.png"], recursive=True, skip=tmp_path / "in/out")
    finally:
        locked.chmod(0o755)
    assert [(f.path.relative_to(tmp_path).as_posix(), f.rel.as_posix()) for f in got.files] == [
        ("in/a.png", "a.png"), ("in/x/art.png", "x/art.png"), ("in/y/art.png", "y/art.png")]
    assert len(got.problems) == 1 and str(locked) in got.problems[0] and "cannot read this folder" in got.problems[0]
    flat = list_images([tmp_path / "in"])
    assert [f.rel.as_posix() for f in flat.files] == ["a.png"] and flat.problems == []
