"""What arrives: :func:`check_upload` reads each upload the moment it lands (a thumbnail, or one line saying why
it cannot be cloaked), :func:`unique_names` names each one's download, :func:`friendly_error` turns any failure
into one readable line naming the file, and the previews show transparency over a checkerboard.

Nothing here knows about Gradio; :mod:`glazeish.webpage` draws the check.
"""

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..imageio import ImageError, read_image
from ..job import NAME_MAX, fit_name
from ..report import checkerboard
from ..webpage import Upload
from ..weights import WeightsError
from .settings import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS

THUMB = 96  # px, the upload check's thumbnails


#: the longest name :func:`cloak_one` writes beside a download, ``<stem>`` + this
LONGEST_BESIDE = ".model-view-original.png"


def unique_names(names: Sequence[str], suffix: str = ".protected.png") -> list[str]:
    """``<stem><suffix>`` per upload, numbered (``a-2.protected.png``) where two stems collide; a long stem is
    shortened as the command line does (:func:`~glazeish.job.fit_name`), so that every file written beside the
    download fits a file name (a 240-byte CJK name would not)."""
    room = NAME_MAX - len(LONGEST_BESIDE.encode()) + len(suffix.encode())
    out, seen = [], set()
    for name in names:
        stem = Path(name).stem or "image"
        cand, k = fit_name(stem, suffix, room)[0], 1
        while cand.lower() in seen:
            k += 1
            cand = fit_name(f"{stem}-{k}", suffix, room)[0]
        seen.add(cand.lower())
        out.append(cand)
    return out


NOT_A_PICTURE = "this file is not a picture or is damaged"


def friendly_error(err: BaseException, path: str | Path | None = None, name: str | None = None) -> str:
    """One readable line for the page: no traceback, no library names, the upload's name (once) instead of its
    temp path."""
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    if path is not None and name:
        msg = msg.replace(str(path), name)
    if isinstance(err, MemoryError) or "out of memory" in msg.lower() or "too large to decode" in msg:
        return f"{name or 'image'}: not enough memory for an image this large; try a smaller one"
    if isinstance(err, WeightsError):
        return f"model weights are missing or damaged: {msg}"
    if isinstance(err, ImageError) and any(s in msg for s in ("corrupt", "not an image", "empty file", "is a folder")):
        return f"{name}: {NOT_A_PICTURE}" if name else NOT_A_PICTURE
    return msg


def data_uri(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _preview(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """What the page shows of ``rgb``: transparent areas over the checkerboard, as everywhere."""
    return rgb if alpha is None else checkerboard(alpha, rgb)


def check_upload(path: str | Path, name: str | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_bytes: int | None = DEFAULT_MAX_FILE_MB * 1_000_000) -> Upload:
    """Read an upload the moment it arrives (the same reader as the job): a thumbnail, or one line saying why it
    cannot be cloaked, naming the file once."""
    name = name or Path(path).name
    up = Upload(path=str(path), name=name)
    try:
        up.bytes = Path(path).stat().st_size
        if max_bytes is not None and up.bytes > max_bytes:
            up.error = f"{name}: {up.bytes / 1e6:.1f} MB is over this page's limit of {max_bytes / 1e6:.0f} MB"
            return up
        art = read_image(path, max_pixels=max_pixels)
    except (ImageError, OSError) as e:
        up.error = friendly_error(e, path, name)
        return up
    up.width, up.height = art.size
    up.alpha = art.alpha is not None
    thumb = Image.fromarray(_preview(art.rgb, art.alpha), "RGB")
    thumb.thumbnail((THUMB, THUMB), Image.LANCZOS)
    up.thumb = data_uri(np.asarray(thumb))
    return up
