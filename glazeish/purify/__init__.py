"""Purifications: the counter-measures a cloak has to survive, one class per purification, registered by name.

A purification is built once and called as ``p(x) -> x'``: ``x`` a ``B×3×H×W`` float tensor in ``[0, 1]``
(CPU or CUDA, any H×W, odd sizes included), ``x'`` the same shape, float32, in ``[0, 1]``, on the same
device. These are the *real* operations (JPEG through Pillow's encoder, not a differentiable stand-in) and
they run without gradients. They are deterministic: the same input gives the same output on every call,
and anything random is drawn from a generator seeded by the constructor's ``seed``.

``p.name`` is the stable key a benchmark writes to its CSV (``jpeg75``, ``resize0.5``, ``ae:taef2``);
``p.description`` says in a few words what it does.

Add one by subclassing :class:`Purification`, giving it a unique ``name`` and a ``description``,
implementing ``apply`` and decorating the class with :func:`register_purification`::

    @register_purification
    class Grayscale(Purification):
        name = "gray"
        description = "convert to luma and back to RGB"

        def apply(self, x):
            return (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).expand_as(x)

Purifications that need an (un-attacked) autoencoder subclass ``_ModelPurification`` (``needs_model``; the
benchmark runs these slow ones on fewer images) and take it as the constructor's ``model``. Build them by name with
:func:`make_purifications` (``"jpeg75,resize0.5,ae:taesana"``): every constructor gets the keywords it
accepts of ``model``, ``seed``, ``models_dir``, ... (the one registry protocol of :mod:`glazeish.registry`). Those that run a diffusers pipeline (``upscale``,
``diffpure``, ``gridpure``) set ``needs_pipeline`` and take it as ``upscaler=`` / ``pipeline=`` (a repo id or a
local folder); they are never in a default list. ``docs/purifiers.md`` compares the purifications taken from
papers (``impress++``, ``upscale``, ``diffpure``, ``gridpure``) with how their authors run them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import split_specs
from .base import (  # noqa: F401  (the package's public names)
    _ALIASES,
    ALL_PURIFICATIONS,
    DEFAULT_PURIFICATIONS,
    PLATFORM_PURIFICATIONS,
    PURIFICATIONS,
    QUICK_PURIFICATIONS,
    Purification,
    _shared_noise,
    register_purification,
)

# imported, so registered, in this order: the order ``--help`` and the benchmark list them in
# isort: off
from .pixels import JPEG, Bilateral, Bits5, Blur, Median3, Noise, PlatformPost, Resize, TVDenoise, WebP  # noqa: F401
from .models import CAT, AutoencoderPurification, Impress, ImpressPlusPlus  # noqa: F401
from .pipelines import DiffPure, GrIDPure, NoisyUpscale, load_pipeline  # noqa: F401
# isort: on

if TYPE_CHECKING:
    from ..encoders import LatentModel


#: the names the common settings had before they became arguments (rows and scripts use them)
for _old, _spec in {"jpeg95": "jpeg:95", "jpeg75": "jpeg:75", "jpeg50": "jpeg:50", "resize0.5": "resize:0.5",
                    "resize0.75": "resize:0.75", "blur1": "blur:1", "blur2": "blur:2", "noise0.05": "noise:0.05"}.items():
    PURIFICATIONS.alias(_old, _spec)


def expand(names: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"quick,blur1"`` -> the names, aliases (``default``, ``quick``, ``all``, ``platforms``) expanded, ``none`` dropped,
    duplicates removed, every name checked (ValueError listing the known ones)."""
    out: list[str] = []
    for n in split_specs(names):
        if n.lower() != "none":
            out.extend(_ALIASES.get(n.lower(), [n]))
    out = list(dict.fromkeys(out))
    for n in out:
        PURIFICATIONS[n]
    return out


def make_purification(name: str, model: "LatentModel | None" = None, **kw) -> Purification:
    """Build one purification by name (``ae:<encoder>`` loads that encoder); keywords go to the constructor
    where it takes them (``seed``, ``steps``, ``upscaler``, ``models_dir``, ...)."""
    return PURIFICATIONS.build(name, model=model, **kw)


def make_purifications(names: str | list[str], model: "LatentModel | None" = None, **kw) -> list[Purification]:
    """Build a list from ``"jpeg75,resize0.5,ae"`` (or a list of names; ``quick``/``default``/``all`` expand).

    Unknown names raise ``ValueError`` listing the known ones before anything is built. Duplicates are
    dropped (also ``ae`` and ``ae:taef2`` when the model is taef2).
    """
    out: dict[str, Purification] = {}
    for n in expand(names):
        p = make_purification(n, model=model, **kw)
        out.setdefault(p.name, p)
    return list(out.values())
