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
