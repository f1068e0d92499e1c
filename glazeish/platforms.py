"""Where an artist posts: what each platform does to an upload, as data, and that chain as plain functions.

Every platform re-encodes what it is given: it scales the picture down to its own longest side (or pixel
cap) and saves it again as JPEG or WebP at its own quality. A scraper downloads that, not the artist's PNG,
so a cloak is only as good as what survives the chain. :data:`PLATFORMS` holds one :class:`Platform` per
site; ``docs/platforms.md`` gives each value's source and date, and says which values are estimates.
One line of data adds a platform.

* :meth:`Platform.posted_size` — the size the platform serves for an upload of a given size;
* :func:`post` — the real chain on ``H×W×3`` uint8 pixels (Pillow's resampling and encoders);
* :func:`posting_size` — the size to cloak at for one or several platforms (the largest they serve).

The differentiable stand-in that the cloak is optimised through is the ``platform:NAME`` transform
(:mod:`glazeish.transforms`); the real chain is the ``platform:NAME`` purification (:mod:`glazeish.purify`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from .imageio import RESAMPLE, resize_rgb
from .registry import split_specs

#: Pillow's JPEG ``subsampling`` argument by chroma subsampling
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


@dataclass(frozen=True)
class Platform:
    """What one platform does to a still image upload (the largest version it serves, the one a scraper takes).

    Attributes:
        name: the key on the command line (``instagram``).
        title: the name shown to people (``Instagram``).
        max_width, max_height: the largest width and height it serves, px (larger uploads are scaled down to
            fit, keeping the aspect ratio; None: no limit).
        max_pixels: a cap on width × height, scaled down to fit (None: no cap).
        resample: ``lanczos``, ``bicubic`` or ``bilinear``: the filter it scales down with.
        format: ``jpeg`` or ``webp`` (what it re-encodes to), or ``original`` (it serves the uploaded file's
            pixels: a PNG stays lossless).
        quality: the encoder's quality, 1-100 (unused for ``original``).
        subsampling: JPEG chroma subsampling, ``4:2:0`` or ``4:4:4`` (WebP is always 4:2:0).
        metadata: whether the served file keeps the rights fields (XMP/IPTC: where the "no AI training" notice
            lives): ``yes``, ``no``, or ``png`` (kept in a PNG upload, stripped from a JPEG).
        estimate: True where the size or quality is inferred rather than documented or measured.
        note: one line on what the values rest on (``docs/platforms.md`` has the sources).
    """

    name: str
    title: str
    max_width: int | None
    max_height: int | None
    max_pixels: int | None
    resample: str
    format: str
    quality: int
    subsampling: str
    metadata: str
    estimate: bool
    note: str = ""

    def __post_init__(self):
        if (self.resample not in RESAMPLE or self.format not in ("jpeg", "webp", "original")
                or self.subsampling not in SUBSAMPLING or self.metadata not in ("yes", "no", "png")):
            raise ValueError(f"platform {self.name!r}: bad resample, format, subsampling or metadata")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"platform {self.name!r}: quality must lie in [1, 100], not {self.quality}")

    def posted_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` of what the platform serves for an upload of that size (never larger)."""
        scale = min(1.0, (self.max_width or width) / width, (self.max_height or height) / height,
                    ((self.max_pixels or width * height) / (width * height)) ** 0.5)
        return _scaled(width, height, scale)

    def keeps_metadata(self, fmt: str) -> bool:
        """Whether a file of format ``fmt`` (``png``, ``jpeg``, ``webp``) keeps its rights metadata when served."""
        return self.metadata == "yes" or (self.metadata == "png" and fmt == "png")

    def describe(self) -> str:
        """One line: ``Instagram: at most 1080 px wide, JPEG q80 4:2:0, metadata stripped; partly estimated``."""
        w, h = self.max_width, self.max_height
        size = (f"at most {w} px" if w == h else f"at most {w} px wide" if h is None
                else f"at most {w}×{h} px" if w else f"at most {h} px tall") if (w or h) else "full size"
        if self.max_pixels:
            size += f", at most {self.max_pixels / 1e6:.1f} MP"
        enc = {"jpeg": f"JPEG q{self.quality} {self.subsampling}", "webp": f"WebP q{self.quality}",
               "original": "the uploaded file's pixels"}[self.format]
        meta = {"yes": "rights metadata kept", "no": "metadata stripped", "png": "metadata kept in PNG only"}
        return f"{self.title}: {size}, {enc}, {meta[self.metadata]}" + ("; partly estimated" if self.estimate else "")


#: one line per platform; sources, dates and which values are estimates: docs/platforms.md
PLATFORMS: dict[str, Platform] = {p.name: p for p in (
    Platform("instagram", "Instagram", 1080, None, None, "bicubic", "jpeg", 80, "4:2:0", "no", True,
             "1080 px wide as documented (1440 px versions measured 2019-24); quality a community figure"),
    Platform("x", "X (Twitter)", 4096, 4096, None, "bicubic", "jpeg", 85, "4:2:0", "no", False,
             "JPEG q85 documented by Twitter (2018); name=orig is at most 4096 px"),
    Platform("bluesky", "Bluesky", 4000, 4000, None, "bilinear", "jpeg", 89, "4:2:0", "no", True,
             "the app re-encodes to at most 2 MB, trying q100/98/95/89/76/51; q89 is typical of large art"),
    Platform("facebook", "Facebook", 2048, 2048, None, "lanczos", "jpeg", 75, "4:2:0", "no", True,
             "2048 px and Lanczos documented (2010); quality 85 (2010) or 75 (2017): the harsher taken"),
    Platform("tumblr", "Tumblr", 2048, 3072, None, "bicubic", "jpeg", 85, "4:2:0", "no", True,
             "largest variant s2048x3072; quality not measured"),
    Platform("artstation", "ArtStation", 3840, 3840, None, "lanczos", "jpeg", 90, "4:4:4", "no", False,
             "JPEG at 90 % (help page), the /4k/ version"),
    Platform("deviantart", "DeviantArt", 1280, None, None, "bicubic", "jpeg", 75, "4:2:0", "no", True,
             "the fullview a visitor gets when downloads are off (q_75, metadata stripped)"),
    Platform("mastodon", "Mastodon", None, None, 3840 * 2160, "lanczos", "original", 90, "4:4:4", "no", False,
             "images over 8.3 MP scaled down; a PNG stays PNG, a JPEG is re-saved at q90; metadata stripped"),
    Platform("pixiv", "pixiv", None, None, None, "lanczos", "original", 100, "4:4:4", "no", False,
             "serves the original file; all metadata removed"),
    Platform("discord", "Discord", None, None, None, "lanczos", "original", 100, "4:4:4", "png", False,
             "serves the original attachment; metadata stripped from JPEG only"),
    Platform("reddit", "Reddit", None, None, None, "lanczos", "original", 100, "4:4:4", "no", True,
             "i.redd.it serves the original; previews re-encode; metadata handling not documented"),
)}


def get_platform(name: str) -> Platform:
    """The :class:`Platform` called ``name`` (case-insensitive); ValueError naming the known ones."""
    try:
        return PLATFORMS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown platform {name!r}; known: {', '.join(PLATFORMS)}") from None


def named_in_spec(arg: str | None, who: str) -> Platform:
    """The platform a ``platform:NAME`` spec names (``who``: ``transform`` or ``purification``, for the message)."""
    if not arg:
        raise ValueError(f"{who} 'platform' needs a platform: platform:NAME, NAME one of {', '.join(PLATFORMS)}")
    return get_platform(arg)


def purification_specs(platforms: Sequence[Platform]) -> tuple[str, ...]:
    """``("platform:instagram", ...)``: what survives each of ``platforms``, as purification specs."""
    return tuple(f"platform:{p.name}" for p in platforms)


def parse_platforms(names: str | Sequence[str] | None) -> list[Platform]:
    """``"instagram,x"`` (or a list) -> platforms, in order, each once; ``None``/``""`` -> ``[]``."""
    out: list[Platform] = []
    for n in split_specs(names or ""):
        p = get_platform(n)
        if p not in out:
            out.append(p)
    return out


def posting_size(width: int, height: int, platforms: Sequence[Platform], max_side: int | None = None
                 ) -> tuple[int, int]:
    """The size to cloak an upload of ``width × height`` at: the largest size any of ``platforms`` serves (each
    scales that one down further), no larger than ``max_side`` on the long side, never larger than the upload."""
    w, h = width, height
    if platforms:
        w, h = max((p.posted_size(width, height) for p in platforms), key=lambda s: s[0] * s[1])
    return _scaled(w, h, max_side / max(w, h)) if max_side else (w, h)


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    """``width × height`` scaled by ``scale`` when it shrinks them (halves rounded up, at least 1 px)."""
    if scale >= 1:
        return width, height
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))


def for_platforms(config, platforms: Sequence[Platform]):
    """``config`` (a :class:`~glazeish.config.ProtectConfig`) optimised through the chains of ``platforms``: each
    step draws one platform's scale-and-re-encode (the ``platform:NAME`` transform), and pushes the view of the
    re-encoded cloak away from the view of the equally re-encoded original (``eot_reference="transformed"``: what
    the figures judge it against). ``config`` itself where ``platforms`` is empty."""
    if not platforms:
        return config
    return config.replace(robust=",".join(f"platform:{p.name}" for p in platforms), eot_reference="transformed")


def metadata_line(platform: Platform, fmt: str, has_notice: bool) -> str:
    """A sentence on whether a file's "no AI training" notice (``has_notice``) survives posting on ``platform``."""
    if not has_notice:
        return f"Metadata on {platform.title}: the file carries no 'no AI training' notice to keep."
    if platform.keeps_metadata(fmt):
        return f"Metadata on {platform.title}: its 'no AI training' notice is kept in the file served."
    return (f"Metadata on {platform.title}: the 'no AI training' notice is stripped from the file served; "
            "only the cloak travels with the pixels.")


def encode(rgb: np.ndarray, platform: Platform) -> bytes:
    """The file the platform serves for these pixels (no resizing): JPEG, WebP or (``original``) PNG bytes."""
    buf = io.BytesIO()
    im = Image.fromarray(rgb, "RGB")
    if platform.format == "jpeg":
        im.save(buf, "JPEG", quality=platform.quality, subsampling=SUBSAMPLING[platform.subsampling])
    elif platform.format == "webp":
        im.save(buf, "WEBP", quality=platform.quality, method=4)
    else:
        im.save(buf, "PNG")
    return buf.getvalue()


def post(rgb: np.ndarray, platform: Platform) -> np.ndarray:
    """What a scraper downloads after posting ``rgb`` (``H×W×3`` uint8): scaled to the platform's size with
    its filter, encoded and decoded by Pillow. ``H'×W'×3`` uint8."""
    small = resize_rgb(np.ascontiguousarray(rgb), platform.posted_size(rgb.shape[1], rgb.shape[0]), platform.resample)
    if platform.format == "original":
        return small
    with Image.open(io.BytesIO(encode(small, platform))) as im:
        return np.asarray(im.convert("RGB"))
