"""Reading and writing artists' images, safely.

Read: any Pillow format (PNG, JPEG, WebP, TIFF, ...), EXIF orientation applied, full resolution and aspect
ratio kept, alpha split off (never perturbed), CMYK / palette / 16-bit / greyscale converted to 8-bit RGB,
ICC profile and EXIF kept for the output. Write: atomically (temp file + rename), never over an input.
Errors are :class:`ImageError` with a one-line message that names the file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .metadata import MetadataOptions, SourceMetadata, read_source_metadata, save_kwargs

DEFAULT_MAX_PIXELS = 64_000_000  # 8000×8000; a 4000×3000 photo is 12 MP
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
FORMATS = {"png": ("PNG", ".png"), "jpeg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}


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
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    source: SourceMetadata = field(default_factory=SourceMetadata)
    path: Path | None = None
    mode: str = "RGB"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as Pillow reports it."""
        return self.rgb.shape[1], self.rgb.shape[0]

    def tensor(self) -> torch.Tensor:
        """``1×3×H×W`` float32 in [0, 1]."""
        return to_tensor(self.rgb)


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


def _to_rgb8(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    alpha = None
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info) or mode == "RGBa":
        im = im.convert("RGBA")
        alpha = np.asarray(im.getchannel("A")).copy()
        return np.asarray(im.convert("RGB")).copy(), alpha
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clip (Pillow's convert("L") clips at 255)
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        grey = np.clip(np.round(arr / peak * 255), 0, 255).astype(np.uint8)
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


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Artwork:
    """Read an image file as an :class:`Artwork`; raise :class:`ImageError` naming the file otherwise."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ImageError(f"{path}: is a folder, not an image")
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings(), _pixel_limit(max_pixels):
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageError(
                        f"{path}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the limit of "
                        f"{max_pixels / 1e6:.0f} (raise it with --max-pixels if the file is trusted)"
                    )
                im.load()  # decode first: a damaged file fails here, not later as zeros (reading EXIF decodes too)
                source = read_source_metadata(im)
                mode = im.mode
                im = ImageOps.exif_transpose(im)
                rgb, alpha = _to_rgb8(im)
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
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{path}: corrupt or truncated image ({msg})") from None
    except MemoryError:
        raise ImageError(f"{path}: too large to decode in memory") from None
    return Artwork(rgb=rgb, alpha=alpha, source=source, path=path, mode=mode)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    source: SourceMetadata | None = None,
    metadata: MetadataOptions | None = None,
    fmt: str = "png",
    quality: int = 95,
) -> Path:
    """Write ``rgb`` (``H×W×3`` uint8) plus optional alpha atomically; returns the path.

    ``fmt`` is ``png`` (lossless, default), ``jpeg`` or ``webp`` (lossy: they weaken the cloak). JPEG has
    no alpha channel: transparent areas are flattened onto white.
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
    kwargs = save_kwargs(source or SourceMetadata(), metadata or MetadataOptions(), pil_fmt)
    if pil_fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if pil_fmt == "JPEG":
        kwargs.setdefault("subsampling", 0 if quality >= 90 else 2)

    def write(tmp: str) -> None:
        im.save(tmp, format=pil_fmt, **kwargs)

    try:
        _atomic_write(path, write)
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


def find_images(inputs: list[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of image paths (folders: by suffix)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            out.extend(sorted(f for f in it if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)  # a missing or bad file is reported when it is read
    return list(dict.fromkeys(out))
