"""The base class of every purification, the registry it joins, the default lists, and the helpers the
purifications share (8-bit round trips, the noise drawn the same for a batch)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from PIL import Image

from ..platforms import PLATFORMS, purification_specs
from ..registry import Registered, Registry

if TYPE_CHECKING:  # imported lazily at run time: the Pillow/kornia purifications need no model code
    from ..encoders import LatentModel

PURIFICATIONS: Registry = Registry("purification")

#: what ``bench run`` measures by default: what platforms and a cheap mimic do to an image
DEFAULT_PURIFICATIONS: list[str] = [
    "jpeg75", "jpeg50", "webp", "resize0.5", "resize0.75", "blur1", "noise0.05", "median3", "tvd",
]
#: a cheap pair for quick checks
QUICK_PURIFICATIONS: list[str] = ["jpeg75", "resize0.75"]
#: every purification that needs nothing but the un-attacked model (``ae``, ``impress``)
ALL_PURIFICATIONS: list[str] = [
    "jpeg95", "jpeg75", "jpeg50", "webp", "resize0.5", "resize0.75", "blur1", "blur2", "noise0.05", "median3",
    "bits5", "tvd", "bilateral", "ae", "impress",
]

#: what every platform that re-encodes its uploads serves (``platforms``: the benchmark's "survives Instagram,
#: X, ..." table); those that serve the uploaded pixels keep a PNG cloak as it is
PLATFORM_PURIFICATIONS: list[str] = list(purification_specs([p for p in PLATFORMS.values() if p.format != "original"]))

_ALIASES = {"default": DEFAULT_PURIFICATIONS, "all": ALL_PURIFICATIONS, "quick": QUICK_PURIFICATIONS,
            "platforms": PLATFORM_PURIFICATIONS}


#: class decorator: register a :class:`Purification` under its ``name`` (unique)
register_purification = PURIFICATIONS.register


class Purification(Registered):
    """Base class. Subclasses set ``name``/``description`` and implement :meth:`apply`."""

    needs_model: ClassVar[bool] = False  # model-based (takes a LatentModel with a decoder as ``model``): slow
    #: the diffusers pipeline it runs, if any: ``"img2img"`` (constructor keyword ``pipeline``) or
    #: ``"upscaler"`` (keyword ``upscaler``); a repo id, a local folder or a built pipeline. Never in a default list
    needs_pipeline: ClassVar[str | None] = None
    #: False for a purification that changes the size (a platform's downscale): its figures are measured at the
    #: size it gives, against :meth:`resized` of the original
    keeps_size: ClassVar[bool] = True
    #: True for a purification whose output is already what the mimic reproduces (CAT's adapted copy
    #: ``D'(E'(x))``): its figures compare the outputs as they are, not through the mimic's view again
    gives_view: ClassVar[bool] = False

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``B×3×H×W`` float32 in [0, 1] -> same shape (clamped and cast afterwards by ``__call__``)."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return self(x.unsqueeze(0))[0]
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected B×3×H×W images, got shape {tuple(x.shape)}")
        with torch.no_grad():
            y = self.apply(x.detach().to(torch.float32))
        if y.shape[:2] != x.shape[:2] or (self.keeps_size and y.shape != x.shape):  # a bug in a purification
            raise RuntimeError(f"{self.name}: output shape {tuple(y.shape)} != input shape {tuple(x.shape)}")
        return y.to(device=x.device, dtype=torch.float32).clamp(0, 1).contiguous()

    def resized(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` brought to the size :meth:`__call__` gives, with nothing else done to it: the reference a
        size-changing purification's own cost is measured against (``x`` itself where the size is kept)."""
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# ---------------------------------------------------------------------------------------------
# helpers


def _to_uint8_arrays(x: torch.Tensor) -> list[np.ndarray]:
    """``B×3×H×W`` [0,1] -> list of ``H×W×3`` uint8 arrays (rounded, as saving a PNG would)."""
    u8 = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(a) for a in u8]


def _from_uint8_arrays(arrays: list[np.ndarray], like: torch.Tensor) -> torch.Tensor:
    t = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    return t.to(like.device)


def _pil_roundtrip(x: torch.Tensor, fmt: str, **save_kw) -> torch.Tensor:
    """Encode every image with Pillow in ``fmt`` and decode it again."""
    out = []
    for a in _to_uint8_arrays(x):
        buf = io.BytesIO()
        Image.fromarray(a, "RGB").save(buf, format=fmt, **save_kw)
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(np.asarray(im.convert("RGB")))
    return _from_uint8_arrays(out, x)


def _pad_mode(x: torch.Tensor, pad: int) -> str:
    """``reflect`` where the image is large enough for it, else ``replicate``."""
    return "reflect" if min(x.shape[-2:]) > pad else "replicate"


def _shared_noise(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Standard Gaussian noise like ``x``, drawn on the CPU from ``seed`` (the same on every device), one draw
    shared by every image of the batch. The figures purify the original, the cloak and its baselines in one
    batch: with one draw they are purified alike (a paired comparison, as the pipeline purifications' per-image
    generators already are), so what differs afterwards is the cloak's doing, not two noise draws' (on 128²
    crops, independent draws left the mimic's views of every version ~26 dB from the purified original's and
    buried the cloak's effect under that floor). A batch of one gets the draw it always got."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn((1, *x.shape[1:]), generator=gen, dtype=torch.float32).to(x.device).expand_as(x)


def _check_model(model: "LatentModel | None", who: str) -> "LatentModel":
    from ..encoders import require_decoder

    return require_decoder(model, f"purification {who!r}")
