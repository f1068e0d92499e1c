"""Reading and writing artists' images, safely.

Read: any Pillow format (PNG, JPEG, WebP, TIFF, ...), EXIF orientation applied, full resolution and aspect
ratio kept, alpha split off (never perturbed), CMYK / palette / 16-bit / greyscale converted to 8-bit RGB,
ICC profile and EXIF kept for the output. Write: atomically (temp file + rename), never over an input.
Errors are :class:`ImageError` with a one-line message that names the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import secrets
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import first_line
from .metadata import ICC_MAX, MetadataOptions, SourceMetadata, damaged_exif, read_source_metadata, save_kwargs

DEFAULT_MAX_PIXELS = 64_000_000  # 8000×8000; a 4000×3000 photo is 12 MP
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
FORMATS = {"png": ("PNG", ".png"), "jpeg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}
#: the largest ICC profile read from a PNG (Pillow stops at 1 MB; printer profiles run to several): what a JPEG
#: carries, so that a profile read from either format is read from both
PNG_ICC_READ_MAX = ICC_MAX["JPEG"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageError(ValueError):
    """A file that cannot be read or written; ``str(e)`` is one line naming the file and the reason."""


@dataclass
class Artwork:
    """An image ready to cloak.

    Attributes:
        rgb: ``H×W×3`` uint8, upright (EXIF orientation applied).
        alpha: ``H×W`` uint8 or None; kept as-is in the output.
        source: ICC profile and EXIF of the input, carried over to the output.
        path: where it came from (None for in-memory images).
        mode: the input's Pillow mode before conversion (e.g. ``"CMYK"``, ``"I;16"``).
        warnings: one-line notes on what was read with a problem and dropped (e.g. unreadable EXIF).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    source: SourceMetadata = field(default_factory=SourceMetadata)
    path: Path | None = None
    mode: str = "RGB"
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as Pillow reports it."""
        return self.rgb.shape[1], self.rgb.shape[0]

    def tensor(self) -> torch.Tensor:
        """``1×3×H×W`` float32 in [0, 1]."""
        return to_tensor(self.rgb)


#: Pillow's resampling filters by name
RESAMPLE = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def resize_rgb(rgb: np.ndarray, size: tuple[int, int], resample: str = "lanczos") -> np.ndarray:
    """``H×W×3`` (or ``H×W``) uint8 -> the same at ``size`` = ``(width, height)`` with Pillow's filter (a new
    array; ``rgb`` itself when it already has that size)."""
    if (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb
    return np.array(Image.fromarray(rgb).resize(tuple(size), RESAMPLE[resample]))


def resized(art: Artwork, size: tuple[int, int], resample: str = "lanczos") -> Artwork:
    """``art`` scaled to ``size`` = ``(width, height)`` with Pillow's filter (``lanczos``, ``bicubic``,
    ``bilinear``), its alpha likewise, its metadata kept; ``art`` itself when it already has that size."""
    if art.size == tuple(size):
        return art
    alpha = None if art.alpha is None else resize_rgb(art.alpha, size, resample)
    return dataclasses.replace(art, rgb=resize_rgb(art.rgb, size, resample), alpha=alpha)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``H×W×3`` uint8 -> ``1×3×H×W`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).float().div(255)


def to_uint8(x: torch.Tensor, reference: np.ndarray | None = None, eps: float | None = None) -> np.ndarray:
    """``1×3×H×W`` (or ``3×H×W``) in [0,1] -> ``H×W×3`` uint8, rounded.

    With ``reference`` and ``eps``, the rounded result stays within ``floor(eps·255)`` levels of the
    reference, so quantisation never pushes the saved cloak past its L∞ budget.
    """
    if x.dim() == 4:
        x = x[0]
    out = x.detach().float().clamp(0, 1).mul(255).round().to(torch.int16).permute(1, 2, 0).cpu().numpy()
    if reference is not None and eps is not None:
        k = int(np.floor(eps * 255 + 1e-6))
        ref = reference.astype(np.int16)
        out = np.clip(out, ref - k, ref + k)
    return np.clip(out, 0, 255).astype(np.uint8)


def pad_to_multiple(x: torch.Tensor, m: int, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``B×C×H×W`` on the bottom/right to multiples of ``m``; returns the padded tensor and the original
    ``(H, W)`` to crop back to. ``reflect`` (the default: no new edges for a convolution to see) falls back to
    ``replicate`` where the image is too small to reflect; ``replicate`` is what libjpeg does at the border."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % max(1, int(m)), (-w) % max(1, int(m))
    if ph == 0 and pw == 0:
        return x, (h, w)
    if mode == "reflect" and not (ph < h and pw < w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def _grey_bits(im: Image.Image) -> int:
    """The bit depth of a 16/32-bit greyscale image as the file declares it, never guessed from its values: a
    very dark 16-bit scan has every value below 256 and must stay dark. Pillow's ``I;16`` modes are 16 bits;
    so is its ``I`` mode as PNG and PGM fill it (PGM scaled to 65535), unless a TIFF's BitsPerSample says
    otherwise (a signed 32-bit TIFF: 31 bits of positive range)."""
    bits = getattr(im, "tag_v2", {}).get(258) if not im.mode.startswith("I;16") else None
    bits = bits[0] if isinstance(bits, tuple) and bits else bits
    return min(int(bits), 31) if isinstance(bits, int) and bits > 0 else 16


def _to_rgb8(im: Image.Image, grey_bits: int = 16) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    alpha = None
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info) or mode == "RGBa":
        im = im.convert("RGBA")
        alpha = np.asarray(im.getchannel("A")).copy()
        return np.asarray(im.convert("RGB")).copy(), alpha
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: scaled from its declared depth (Pillow's convert("L") clips at 255)
        arr = np.asarray(im, dtype=np.float64)
        grey = np.clip(np.round(arr / (2**grey_bits - 1) * 255), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "F":
        grey = np.clip(np.round(np.asarray(im) * 255), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None
    # CMYK, YCbCr, LAB, P, L, 1, RGB(16-bit PNGs open as RGB/RGBA in Pillow ≥ 10 only via 8-bit paths)
    return np.asarray(im.convert("RGB")).copy(), None


@contextlib.contextmanager
def _pixel_limit(max_pixels: int):
    """Let Pillow's own bomb check (raised in ``Image.open``) use our limit rather than its default."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _frames(im: Image.Image) -> int:
    """How many images the file holds (frames of an animation, pages of a TIFF); an MPO's extra images (a
    camera's depth map or preview beside the photo) do not count: the photo is the first."""
    if im.format == "MPO":
        return 1
    return int(getattr(im, "n_frames", 1) or 1)


def _open_checked(fp, path: Path, max_pixels: int) -> Image.Image:
    """``Image.open`` plus the checks that need no decoding: the pixel limit, a single image."""
    im = Image.open(fp)
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ImageError(
            f"{path}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.0f} (raise it with --max-pixels if the file is trusted)"
        )
    n = _frames(im)
    if n > 1:
        im.close()
        raise ImageError(f"{path}: holds {n} images (an animation or a multi-page file); glazeish cloaks single "
                         "images: save the frame you want as a PNG and cloak that")
    return im


def _png_data_size(width: int, height: int, depth: int, colour: int, interlaced: bool) -> int:
    """Bytes of filtered image data a PNG header declares (every row of every interlace pass, filter bytes)."""
    bits = depth * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 4)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    total = 0
    for x0, y0, dx, dy in passes if interlaced else [(0, 0, 1, 1)]:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            total += h * (1 + -(-(w * bits) // 8))
    return total


def _png_rows_missing(fp) -> bool:
    """Whether a PNG's image data stops before the rows its header declares: Pillow then fills the rest with
    zeros and says nothing (a damaged height whose checksum was redone, data cut at a chunk boundary)."""
    fp.seek(8)
    z, got, need = zlib.decompressobj(), 0, None
    while len(head := fp.read(8)) == 8:
        length, kind = struct.unpack(">I4s", head)
        data = fp.read(length)
        fp.read(4)
        if kind == b"IHDR" and len(data) >= 13:
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[:13])
            need = _png_data_size(w, h, depth, colour, bool(interlace))
        elif kind == b"IDAT":
            while data and got < (need or 0):  # counted in slices: a compression bomb never sits in memory
                got += len(z.decompress(data, 1 << 20))
                data = z.unconsumed_tail
        elif kind == b"IEND":
            break
    return need is not None and got < need


def _png_icc_size(fp) -> int:
    """The inflated size of a PNG's ICC profile (its iCCP chunk), counted in slices and no further than just
    past :data:`PNG_ICC_READ_MAX`; 0 when there is none or the file is not a PNG."""
    fp.seek(0)
    if fp.read(8) != PNG_SIGNATURE:
        return 0
    while len(head := fp.read(8)) == 8:
        length, kind = struct.unpack(">I4s", head)
        if kind in (b"IDAT", b"IEND"):  # the profile comes before the image data, or not at all
            return 0
        if kind != b"iCCP":
            fp.seek(length + 4, os.SEEK_CUR)
            continue
        data = fp.read(min(length, 2 * PNG_ICC_READ_MAX))
        data = data[data.find(b"\0") + 2 :]  # after the profile's name and compression method
        z, size = zlib.decompressobj(), 0
        with contextlib.suppress(zlib.error):  # a damaged profile: Pillow's own reading says what it makes of it
            while data and size <= PNG_ICC_READ_MAX:
                size += len(z.decompress(data, 1 << 20))
                data = z.unconsumed_tail
        return size
    return 0


@contextlib.contextmanager
def _png_icc_limit(fp, path: Path):
    """Let Pillow read a PNG's ICC profile past its 1 MB text-chunk limit, up to :data:`PNG_ICC_READ_MAX`
    (raised only for such a file, so its other text chunks keep the limit); a larger profile is refused as
    what it is, not as a corrupt file."""
    size = _png_icc_size(fp)
    fp.seek(0)
    saved = PngImagePlugin.MAX_TEXT_CHUNK
    if size > PNG_ICC_READ_MAX:
        raise ImageError(f"{path}: its ICC colour profile is over {PNG_ICC_READ_MAX / 1e6:.1f} MB, more than "
                         "glazeish reads; save the picture with a smaller profile (e.g. sRGB) and cloak that")
    if size >= saved:
        PngImagePlugin.MAX_TEXT_CHUNK = size + 1
    try:
        yield
    finally:
        PngImagePlugin.MAX_TEXT_CHUNK = saved


def _collect(notes: list[str], caught: list, say: Callable[[str], str]) -> None:
    for w in caught:
        msg = say(first_line(w.message))
        if msg not in notes:
            notes.append(msg)


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Artwork:
    """Read an image file as an :class:`Artwork`; raise :class:`ImageError` naming the file otherwise.

    The pixels are decoded in full before anything else is read from the file, so a file that Pillow cannot
    decode to the end is refused (never half-decoded pixels); a PNG must also pass its own checksums (a
    flipped byte that the decompressor does not notice) and hold every row its header declares. A file with
    several images (an animated GIF, PNG or WebP, a multi-page TIFF) is refused rather than reduced to its
    first frame; so is anything but a regular file (a FIFO, a device). What Pillow only warns about (e.g.
    damaged EXIF, which is then dropped or kept in part) goes into :attr:`Artwork.warnings`, one line each.
    """
    path = Path(path)
    notes: list[str] = []
    with _read_errors(path, max_pixels):
        if path.is_dir():
            raise ImageError(f"{path}: is a folder, not an image")
        # one descriptor: the file checked is the file decoded; non-blocking, so that a FIFO named like an
        # image cannot hang the batch (it is refused below, as is a device such as /dev/zero)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as fp:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ImageError(f"{path}: not a regular file")
            if st.st_size == 0:
                raise ImageError(f"{path}: empty file (0 bytes)")
            im, mode, grey_bits = _decode(fp, path, max_pixels, notes)
            with warnings.catch_warnings(record=True) as caught, im:
                warnings.simplefilter("always")
                source = read_source_metadata(im, warn=notes.append)
                try:
                    upright = ImageOps.exif_transpose(im)
                except Exception as e:  # the pixels are fine; only the orientation tag is unreadable
                    notes.append(f"its EXIF orientation is unreadable, kept the pixels as stored ({first_line(e)})")
                    upright = im
                rgb, alpha = _to_rgb8(upright, grey_bits)
            _collect(notes, caught, damaged_exif)
    return Artwork(rgb=rgb, alpha=alpha, source=source, path=path, mode=mode, warnings=notes)


def _decode(fp, path: Path, max_pixels: int, notes: list[str]) -> tuple[Image.Image, str, int | None]:
    """Open and fully decode ``fp`` (a PNG checked first: its CRCs and rows); the image, its mode and its grey
    bit depth. What Pillow warns about while decoding goes into ``notes``."""
    with warnings.catch_warnings(record=True) as caught, _pixel_limit(max_pixels), _png_icc_limit(fp, path):
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = _open_checked(fp, path, max_pixels)
        if im.format == "PNG":
            im.verify()  # every chunk's CRC, the image data's included; then open it again to decode
            if _png_rows_missing(fp):
                raise ImageError(f"{path}: corrupt or truncated image (its image data stops before the "
                                 "last row its header declares)")
            fp.seek(0)
            im = _open_checked(fp, path, max_pixels)
        mode, grey_bits = im.mode, _grey_bits(im)
        im.load()  # decode everything first: a decoding error must not be swallowed by a later read
    _collect(notes, caught, lambda msg: damaged_exif(msg) if "EXIF" in msg else f"while decoding: {msg}")
    return im, mode, grey_bits


@contextlib.contextmanager
def _read_errors(path: Path, max_pixels: int) -> Iterator[None]:
    """Every way reading ``path`` can fail, as one :class:`ImageError` line naming the file."""
    try:
        yield
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{path}: declared size is over the limit of {max_pixels / 1e6:.0f} megapixels (possible "
            "decompression bomb; raise it with --max-pixels if the file is trusted)"
        ) from None
    except MemoryError:
        raise ImageError(f"{path}: too large to decode in memory") from None
    except OSError as e:
        if e.errno is not None:  # the system's error (not Pillow's "image file is truncated")
            raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
        raise ImageError(f"{path}: corrupt or truncated image ({first_line(e)})") from None
    except Exception as e:  # whatever a decoder raises on hostile bytes (SyntaxError, struct.error, ...)
        raise ImageError(f"{path}: corrupt or truncated image ({first_line(e)})") from None


def _atomic_write(path: Path, write: Callable[[str], None], overwrite: bool = True) -> None:
    """Write ``path`` through ``write(tmp)`` into a hidden temp file beside it, then move that into place, so
    that ``path`` is never half-written and no temp file outlives an error, Ctrl-C or (where the command line
    turns it into an exception) SIGTERM. The temp name is short and fixed-length (``.glazeish-<16 hex>.tmp``),
    whatever the length of ``path``'s own name. ``overwrite=False``: an existing ``path`` is never replaced,
    even one that appeared while writing (FileExistsError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".glazeish-{secrets.token_hex(8)}.tmp"  # named before it exists: always cleaned up
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies: an ordinary file
        write(str(tmp))
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _move_no_clobber(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path`` unless ``path`` exists (atomically where the filesystem has hard links)."""
    try:
        os.link(tmp, path)  # fails if path exists, at the instant of the link
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network or FAT filesystems): check, then rename
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def save_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    source: SourceMetadata | None = None,
    metadata: MetadataOptions | None = None,
    fmt: str = "png",
    quality: int = 95,
    *,
    overwrite: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write ``rgb`` (``H×W×3`` uint8) plus optional alpha atomically; returns the path.

    ``fmt`` is ``png`` (lossless, default), ``jpeg`` or ``webp`` (lossy: they weaken the cloak). JPEG has
    no alpha channel: transparent areas are flattened onto white. ``overwrite=False`` never replaces an
    existing file (:class:`ImageError` instead). What the format cannot carry of the input's metadata is
    dropped with one line through ``warn`` (see :func:`~glazeish.metadata.save_kwargs`).
    """
    path = Path(path)
    pil_fmt = FORMATS[fmt][0]
    im = Image.fromarray(rgb, "RGB")
    if alpha is not None:
        if pil_fmt == "JPEG":
            white = Image.new("RGB", im.size, (255, 255, 255))
            im = Image.composite(im, white, Image.fromarray(alpha, "L"))
        else:
            im.putalpha(Image.fromarray(alpha, "L"))
    kwargs = save_kwargs(source or SourceMetadata(), metadata or MetadataOptions(), pil_fmt, warn=warn)
    if pil_fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if pil_fmt == "JPEG":
        kwargs.setdefault("subsampling", 0 if quality >= 90 else 2)

    def write(tmp: str) -> None:
        im.save(tmp, format=pil_fmt, **kwargs)

    try:
        _atomic_write(path, write, overwrite=overwrite)
    except FileExistsError:
        raise ImageError(f"{path}: exists (written meanwhile by another run?); not replaced") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


@dataclass(frozen=True)
class Found:
    """An input image: ``path`` as given (or found in a folder given), and ``rel``, where it sits under that
    folder (just its name for a file given by itself): what places its output under the output folder."""

    path: Path
    rel: Path


@dataclass
class Listing:
    """What :func:`list_images` found: the images, and one line for each folder it could not read."""

    files: list[Found] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def list_images(inputs: list[str | os.PathLike], recursive: bool = False,
                skip: str | os.PathLike | None = None) -> Listing:
    """Expand files and folders into images, in a fixed order (as given; each folder's tree sorted by path),
    each file once.

    Folders contribute the files with an image suffix; with ``recursive`` their sub-folders too (symlinked
    ones followed, each folder once), except ``skip`` (the output folder, when it lies inside an input
    folder). A folder that cannot be read is a problem line, never silently left out. A file given by itself
    is listed whatever its name; a missing or bad one is reported when it is read.
    """
    listing = Listing()
    seen: set[str] = set()
    skip_real = os.path.realpath(skip) if skip is not None else None

    def add(path: Path, rel: Path) -> None:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            listing.files.append(Found(path, rel))

    def unreadable(e: OSError) -> None:
        listing.problems.append(f"{e.filename}: cannot read this folder ({e.strerror or e}); its images were not "
                                "cloaked")

    for item in inputs:
        root = Path(item)
        if not root.is_dir():
            add(root, Path(root.name))
            continue
        found: list[Path] = []
        visited = {os.path.realpath(root)}
        for folder, subfolders, names in os.walk(root, onerror=unreadable, followlinks=True):
            keep = []
            for d in sorted(subfolders) if recursive else []:
                real = os.path.realpath(os.path.join(folder, d))
                if real != skip_real and real not in visited:  # the output folder; a symlink loop
                    visited.add(real)
                    keep.append(d)
            subfolders[:] = keep
            # anything named like an image: a FIFO or a dangling link is then reported, not skipped
            found.extend(Path(folder) / name for name in names if Path(name).suffix.lower() in IMAGE_SUFFIXES)
        for f in sorted(found):  # in path order, as a sorted listing of the whole tree
            add(f, f.relative_to(root))
    return listing


def find_images(inputs: list[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """The paths of :func:`list_images` (sorted per folder, de-duplicated); unreadable folders are left out."""
    return [f.path for f in list_images(inputs, recursive).files]
