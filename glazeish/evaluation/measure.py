"""The one place where glazeish computes figures: :class:`Evaluator`.

A latent diffusion model never sees pixels: fine-tuning, img2img and inpainting work on ``z = E(x)`` and show
what they learned through the decoder, so the ideal mimic of an image ``v`` reproduces its *mimic's view*
``D(E(v))``. For a reference ``r`` (the original, or the original after a purification) and versions ``v``
(the cloak, its noise baselines, ...) :meth:`Evaluator.compare` measures, per version, a
:class:`~glazeish.evaluation.figures.VersionFigures`: visibility (PSNR, SSIM, ꟻLIP over visible pixels), per
encoder the latent displacement, and with a decoder the mimic's view against ``D(E(r))`` and against the
artwork. With ``extended=True`` it adds the benchmark's metrics (MS-SSIM, SSIM of the views, a style distance
on the features of an encoder the cloak did not attack, the correlation of the view's change with the decoy).

Images larger than ``tile`` are measured in tiles of at most ``tile`` px (memory stays flat; a mimic trains on
crops of about that size): sums of squares add up exactly, SSIM/ꟻLIP/style are pixel-weighted means of the
tiles' values. With ``sample=k`` the model figures (latents, views: the cost, ~2.5 s per 512² image and version
in fp32 on a 2-core CPU) are measured on at most ``k`` tiles spread evenly over the image
(:func:`sampled_tiles`), the pixel figures still on every pixel: a 2048² image costs 4 tiles' model passes
instead of 16 (what that changes is measured in ``benchmarks/figures_sampled/``).

Everything runs without gradients, the sums in float32; the encoders and the decoder run in the evaluator's
``precision``: fp32 by default, and in every figure glazeish reports, because bf16 autocast (2-3x faster on a
CPU with native bf16) moves the noise baselines' view PSNR by up to ~1.3 dB, and a bf16 encoder before an fp32
decoder still by up to ~0.3 dB: their views sit 31-42 dB from the original's, where bf16's rounding is of the
size of the difference measured (``benchmarks/figures_precision/RESULTS.md``).

Each image is encoded (and decoded) once per call and one at a time: :meth:`Evaluator.compare_many` measures
several comparisons that share images (a purified original is a version in one and the reference of the next)
in one pass over the tiles, and one image at a time is faster than a batch on a CPU (measured, 8 images at
512² on one thread: 2.4 s vs 3.0 s each in fp32, 0.6 s vs 0.85 s in bf16) and makes an image's figures
independent of what else is measured with it.

Passes are not repeated across calls either, without changing a bit (the same pixels through the same kernels
give the same bits): the 8-bit views of the tiles an evaluator measured are kept (:data:`VIEW_MEMO_BYTES`), so
:meth:`Evaluator.views` of the original and the cloak right after their figures (the HTML report, the web page's
previews) costs no pass; and a caller that measures several cloaks of one original passes a ``memo`` dict
(:func:`~glazeish.evaluation.assess`'s ``cache``) that keeps the codes of the references (the original and its
purified copies), which are then passed once for all the cloaks (``benchmarks/figures_cost/``). Within
:func:`~glazeish.encoders.sharing_passes` (``glazeish protect`` opens it around each file), the original's passes
that the attack's objective made in the same precision (fp32: a CPU without native bf16) are taken as they are.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np
import torch

from .. import metrics
from ..device import PRECISIONS, autocast, channels_last, resolve_precision
from ..encoders import Ensemble, LatentModel, fingerprint, first_with_decoder
from ..imageio import pad_to_multiple, to_uint8
from ..objectives import fit_target
from ..tiling import Tile, plan_tiles
from .figures import VersionFigures

#: the benchmark's metrics beyond the headline figures (``extended=True``), in ``VersionFigures.extra``
EXTENDED = ("ms_ssim", "linf", "rms", "view_ssim", "copy_ssim", "style", "copy_style", "decoy_corr", "decoy_psnr")
#: bytes of 8-bit views an :class:`Evaluator` keeps after measuring them (the most recent first): every view of
#: one :func:`~glazeish.evaluation.assess` of an image up to ~1.4 MP (8 images), or of 4 sampled 512² tiles of a
#: larger one, so that :meth:`Evaluator.views` of its original and cloak needs no pass
VIEW_MEMO_BYTES = 32 << 20


def _db(sq: float, n: float) -> float:
    """PSNR (dB, peak 1) of a sum of squared errors ``sq`` over ``n`` values."""
    return metrics.psnr_of_mse(sq / n) if sq > 0 else math.inf


def sampled_tiles(tiles: Sequence[Tile], k: int) -> list[Tile]:
    """At most ``k`` of ``tiles`` (all when ``k`` is 0 or covers them), evenly spaced in raster order: on a
    4×4 grid, 4 tiles are its diagonal, one in every row and every column. Depends on the layout only (never
    on the pixels), so a cloak cannot be steered toward the tiles that are measured."""
    n = len(tiles)
    if k <= 0 or k >= n:
        return list(tiles)
    if k == 1:
        return [tiles[n // 2]]
    return [tiles[round(i * (n - 1) / (k - 1))] for i in range(k)]


@dataclass(frozen=True)
class Request:
    """One comparison for :meth:`Evaluator.compare_many` (the arguments of :meth:`Evaluator.compare`).

    Tensors are ``1×3×H×W`` float in [0, 1]; a tensor object that appears in several requests (as reference
    or version) is encoded once.
    """

    reference: torch.Tensor
    versions: dict[str, torch.Tensor]
    artwork: torch.Tensor | None = None
    flip: Collection[str] = ()
    #: the reference and versions are already what the mimic reproduces (a purification that adapts the
    #: autoencoder itself gives its adapted copy): the view figures compare them as they are
    views: bool = False
    #: the versions whose views' ꟻLIP is computed; None: those of ``flip`` (the quick figures keep the views'
    #: ꟻLIP, which the protection words read, and skip the pixels', which they do not)
    flip_views: Collection[str] | None = None

    @property
    def view_flip(self) -> tuple[str, ...]:
        return tuple(self.flip if self.flip_views is None else self.flip_views)


@dataclass
class _Code:
    """What the encoders make of one tile of one image: a float32 latent per model, and the mimic's view
    ``1×3×h×w`` (float32 in [0, 1], cropped to the tile) or None without a decoder."""

    latents: dict[str, torch.Tensor]
    view: torch.Tensor | None


class Evaluator:
    """Measures versions of an image against a reference (see the module doc).

    Args:
        models: the encoders whose latent displacement is reported (an :class:`Ensemble` or a list); the first
            with a decoder gives the mimic's view (none: no view figures).
        style: optional feature network of an encoder the cloak did not attack (e.g.
            :class:`~glazeish.metrics.StyleFeatures` of ``taesana``), for the extended ``style`` metrics.
        extended: also compute :data:`EXTENDED` (the benchmark's table).
        tile: the largest side measured in one pass.
        precision: autocast of the encoders and the decoder (``fp32``, ``bf16``, ``fp16`` or ``auto``, see
            :mod:`glazeish.device`); their outputs are cast back to float32 for the sums. ``fp32`` (the
            default, and what ``protect`` and ``check`` use) keeps the figures exact; see the module doc.
        sample: measure the model figures on at most this many tiles of a large image (0: every tile).
    """

    def __init__(self, models: Ensemble | Sequence[LatentModel], *, style: torch.nn.Module | None = None,
                 extended: bool = False, tile: int = 512, precision: str = "fp32", sample: int = 0):
        self.models = list(models.models if isinstance(models, Ensemble) else models)
        if not self.models:
            raise ValueError("an evaluator needs at least one encoder")
        self.mimic = first_with_decoder(self.models)
        self.style = style
        self.extended = extended
        self.multiple = math.lcm(*(m.multiple for m in self.models))
        self.tile = max(self.multiple, int(tile) // self.multiple * self.multiple)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.precision = precision
        if sample < 0:
            raise ValueError(f"sample must be ≥ 0 tiles (0: every tile), not {sample}")
        self.sample = int(sample)
        self._view_memo: OrderedDict[tuple, np.ndarray] = OrderedDict()  # (precision, fingerprint) -> H×W×3 uint8
        self._memo_lock = threading.Lock()  # the web page's workers share one evaluator

    @property
    def device(self) -> torch.device:
        return Ensemble(self.models).device

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @torch.no_grad()
    def views(self, *images: np.ndarray) -> list[np.ndarray]:
        """The mimic's view ``D(E(x))`` of each ``H×W×3`` uint8 image, as uint8 of the same size (tiled). A tile
        whose view was computed lately (by :meth:`compare_many`, or here) is taken from the view memo: the same
        bytes, without the pass."""
        if self.mimic is None:
            raise ValueError(f"the mimic's view needs an encoder with a decoder (e.g. taef2); got {', '.join(self.names)}")
        out = []
        dev = self.device
        for a in images:
            x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float().div(255).to(dev)
            v = np.empty((*x.shape[-2:], 3), np.uint8)
            for t in plan_tiles(*x.shape[-2:], self.tile, 0):
                xt = t.slice(x)
                key = (self.precision, fingerprint(xt))
                view = self._recall_view(key)
                if view is None:
                    with self._autocast(dev):
                        view = to_uint8(self.mimic.round_trip(channels_last(xt)).float())
                    self._keep_view(key, view)
                v[t.top : t.top + t.h, t.left : t.left + t.w] = view  # to_uint8 works value by value: tiles compose
            out.append(v)
        return out

    def _recall_view(self, key: tuple) -> np.ndarray | None:
        """A kept ``h×w×3`` uint8 view, or None."""
        with self._memo_lock:
            view = self._view_memo.get(key)
            if view is not None:
                self._view_memo.move_to_end(key)
            return view

    def _keep_view(self, key: tuple, view: np.ndarray) -> None:
        """Keep a view (``h×w×3`` uint8) in the view memo, forgetting the least recently used beyond
        :data:`VIEW_MEMO_BYTES`."""
        with self._memo_lock:
            self._view_memo[key] = view
            self._view_memo.move_to_end(key)
            total = sum(v.nbytes for v in self._view_memo.values())
            while total > VIEW_MEMO_BYTES and len(self._view_memo) > 1:
                total -= self._view_memo.popitem(last=False)[1].nbytes

    def tiles(self, height: int, width: int) -> tuple[list[Tile], list[Tile]]:
        """(every tile of a ``height×width`` image, the tiles whose model figures are measured)."""
        tiles = plan_tiles(height, width, self.tile, 0)
        return tiles, sampled_tiles(tiles, self.sample)

    def measured_share(self, height: int, width: int) -> float:
        """Share of a ``height×width`` image's pixels that the model figures are measured on (1: all)."""
        _, sampled = self.tiles(height, width)
        return sum(t.h * t.w for t in sampled) / (height * width)

    def _autocast(self, device: torch.device):
        return autocast(device, resolve_precision(self.precision, device))

    @torch.no_grad()
    def compare(
        self,
        reference: torch.Tensor,
        versions: dict[str, torch.Tensor],
        *,
        artwork: torch.Tensor | None = None,
        alpha: np.ndarray | None = None,
        flip: Collection[str] = (),
        memo: dict | None = None,
    ) -> tuple[dict[str, VersionFigures], float | None]:
        """Figures of each version against ``reference`` (all ``1×3×H×W`` float in [0, 1], same size).

        ``artwork``: what ``copy_psnr`` judges the mimic's copies against (default: the reference);
        ``alpha`` (``H×W`` uint8): visibility figures count only pixels with alpha > 0; ``flip``: the versions
        whose ꟻLIP error is computed (it costs ~0.4 s per 512² on a CPU); ``memo``: as in :meth:`compare_many`.
        Returns the figures by version name and the PSNR of the reference's own view ``D(E(r))`` against the
        artwork (None without a decoder).
        """
        return self.compare_many([Request(reference, versions, artwork, tuple(flip))], alpha=alpha, memo=memo)[0]

    @torch.no_grad()
    def compare_many(
        self, requests: Sequence[Request], *, alpha: np.ndarray | None = None, memo: dict | None = None
    ) -> list[tuple[dict[str, VersionFigures], float | None]]:
        """:meth:`compare` for each request, in one pass over the tiles: every distinct tensor (by identity)
        among the references and versions is encoded and decoded once per tile, whichever requests share it.
        All tensors must have the same size (one ``alpha`` and one tiling for all). Returns one
        ``(figures by version, the reference's view PSNR against the artwork)`` per request, in order.

        ``memo``: a dict the caller keeps between calls on one original (:func:`~glazeish.evaluation.assess`'s
        ``cache``): the references' codes are stored in it, and an image tile whose pixels it holds is not passed
        through the models again (the same pixels give the same bits: the figures do not change)."""
        if not requests:
            return []
        jobs, encoded, given, refs = self._jobs(requests)
        dev = self.device
        mask = None if alpha is None else torch.from_numpy(np.asarray(alpha) > 0).to(dev)[None, None].float()
        accs: list[dict] = [defaultdict(float) for _ in jobs]
        linfs: list[dict[str, float]] = [defaultdict(float) for _ in jobs]
        tiles, sampled = self.tiles(*jobs[0][0].shape[-2:])
        for t in tiles:
            mt = None if mask is None else t.slice(mask)
            codes = self._codes(t, encoded, given, refs, memo) if t in sampled else None
            for (x, art, vs, flip, view_flip), acc, linf in zip(jobs, accs, linfs):
                self._pixels(t, x, vs, mt, flip, acc, linf)
                if codes is not None:
                    acc["mpx"] += t.h * t.w
                    self._latents(t, x, art, vs, codes, acc, view_flip)
        out = []
        for (_, _, vs, flip, view_flip), acc, linf in zip(jobs, accs, linfs):
            clean_copy = _db(acc["clean_copy"], acc["mpx"] * 3) if self.mimic else None
            out.append((self._collect(acc, linf, vs, flip, view_flip), clean_copy))
        return out

    def _jobs(self, requests: Sequence[Request]) -> tuple[list[tuple], list[torch.Tensor], set[int], set[int]]:
        """The requests' tensors on the device in float32, each distinct tensor (by identity) moved once:
        ``(jobs, images, given, references)`` — per request ``(reference, artwork, versions, flip, view flip)``;
        the distinct images to pass through the models; the ids of those that are views already
        (:attr:`Request.views`); the ids of the references. Raises ValueError when the sizes differ."""
        dev = self.device
        on_dev: dict[int, torch.Tensor] = {}  # id of a tensor as given -> it on the device, float32

        def put(t: torch.Tensor) -> torch.Tensor:
            if id(t) not in on_dev:
                on_dev[id(t)] = t.to(dev).float()
            return on_dev[id(t)]

        jobs = []
        for r in requests:
            x = put(r.reference)
            vs = {k: put(v) for k, v in r.versions.items()}
            jobs.append((x, x if r.artwork is None else put(r.artwork), vs, tuple(r.flip), r.view_flip))
        shape = jobs[0][0].shape
        for x, art, vs, *_ in jobs:
            for k, v in {"the reference": x, "the artwork": art, **{f"version {k!r}": v for k, v in vs.items()}}.items():
                if v.shape != shape:
                    raise ValueError(f"{k} is {tuple(v.shape)}, the first reference {tuple(shape)}")
        images = list({id(t): t for x, _, vs, *_ in jobs for t in (x, *vs.values())}.values())
        given = {id(put(t)) for r in requests if r.views for t in (r.reference, *r.versions.values())}
        return jobs, images, given, {id(x) for x, *_ in jobs}

    def _codes(self, t: Tile, images: list[torch.Tensor], given: set[int], refs: set[int],
               memo: dict | None) -> dict[int, _Code]:
        """The code of tile ``t`` of each image (by id): from ``memo`` where it holds the tile's pixels, else
        passed through the models (the references' codes then stored in it). Each view is kept in the view
        memo, from which :meth:`views` answers without a pass."""
        out = {}
        keep = self.mimic is not None and self.mimic.multiple == self.multiple  # views() pads to the mimic's
        for img in images:
            xt, is_view = t.slice(img), id(img) in given
            fp = fingerprint(xt) if keep or memo is not None else b""
            key = ("code", self.precision, tuple(self.names), self.multiple, is_view, fp)
            code = memo.get(key) if memo is not None else None
            if code is None:
                code = self._code(xt, is_view)
                if memo is not None and id(img) in refs:
                    memo[key] = code
            if keep and not is_view:
                self._keep_view((self.precision, fp), to_uint8(code.view))
            out[id(img)] = code
        return out

    # -- one tile --------------------------------------------------------------------------------

    def _code(self, xt: torch.Tensor, is_view: bool = False) -> _Code:
        """Latents and the mimic's view of one ``1×3×h×w`` tile, computed in the evaluator's precision and
        returned in float32 (padded to :attr:`multiple` for the encoders; the view cropped back). ``is_view``:
        the tile is already a view (:attr:`Request.views`), its own view."""
        h, w = xt.shape[-2:]
        b = channels_last(pad_to_multiple(xt, self.multiple)[0])
        latents, view = {}, None
        for model in self.models:
            with self._autocast(b.device):
                # the attack's objective may have made the original's passes already (same bits: PassMemo)
                z, full = model.clean_passes(b, decode=model is self.mimic and not is_view)
                if model is self.mimic:
                    view = xt.float() if is_view else full[..., :h, :w].float()
            latents[model.name] = z.float()
        return _Code(latents, view)

    def _pixels(self, t, x, vs, mask, flip, acc, linf) -> None:
        """Visibility sums of each version against the reference over tile ``t`` (pixels only, no model)."""
        xt = t.slice(x)
        npx = t.h * t.w
        nvis = float(mask.sum()) if mask is not None else float(npx)
        acc["px"] += npx
        acc["vis"] += nvis
        flat = metrics.flat_mask(xt) if mask is None else metrics.flat_mask(xt) * mask
        acc["flat"] += float(flat.sum()) * 3
        for k, v in vs.items():
            v = t.slice(v)
            d2 = (v - xt).square()
            acc["sq", k] += float((d2 * mask).sum()) if mask is not None else float(d2.sum())
            acc["grain", k] += float((metrics.high_pass(v - xt).square() * flat).sum())
            acc["ssim", k] += metrics.masked_mean(metrics.ssim_map(v, xt), mask) * nvis
            if k in flip:
                acc["flip", k] += metrics.flip(v, xt, mask) * nvis
            if self.extended:
                acc["ms_ssim", k] += float(metrics.ms_ssim(v, xt)) * npx
                linf[k] = max(linf[k], float((v - xt).abs().max()))

    def _latents(self, t, x, art, vs, codes: dict[int, _Code], acc, flip) -> None:
        """Latent displacement and view sums of each version over tile ``t``, from the tile's ``codes``."""
        ref = codes[id(x)]
        for model in self.models:
            z0 = ref.latents[model.name]
            acc["zz", model.name] += float(z0.square().sum())
            for k, v in vs.items():
                acc["dz", model.name, k] += float((codes[id(v)].latents[model.name] - z0).square().sum())
        if self.mimic is not None:
            self._views(t, ref.view, {k: codes[id(v)].view for k, v in vs.items()}, t.slice(x), t.slice(art), acc,
                        flip)

    def _views(self, t, v0, views, xt, at, acc, flip) -> None:
        """View sums over tile ``t``: each version's view against the reference's ``v0`` and the artwork ``at``
        (and the views' ꟻLIP for the versions in ``flip``: how visible the copy's change is to a person)."""
        npx = t.h * t.w
        acc["clean_copy"] += float((v0 - at).square().sum())
        target = fit_target(None, xt, (t.top, t.left)) if self.extended else None
        if self.extended:
            feats_v0 = self.style(v0) if self.style is not None else None
            feats_art = self.style(at) if self.style is not None else None
        for k, v in views.items():
            acc["dv", k] += float((v - v0).square().mean()) * npx  # mean over channels, as a PSNR wants
            acc["dv_detinted", k] += float((metrics.match_colour_stats(v, v0) - v0).square().mean()) * npx
            acc["copy", k] += float((v - at).square().sum())
            if k in flip:
                acc["view_flip", k] += metrics.flip(v, v0) * npx
            if not self.extended:
                continue
            acc["view_ssim", k] += float(metrics.ssim(v, v0)) * npx
            acc["copy_ssim", k] += float(metrics.ssim(v, at)) * npx
            dv, dt = (v - v0).flatten(), (target - v0).flatten()
            for name, val in (("a", dv.sum()), ("b", dt.sum()), ("ab", (dv * dt).sum()), ("aa", dv.square().sum()),
                              ("bb", dt.square().sum()), ("n", dv.numel())):
                acc["corr", name, k] += float(val)
            acc["decoy", k] += float((v - target).square().sum())
            if self.style is not None:
                fv = self.style(v)
                acc["style", k] += float(metrics.style_distance(fv, feats_v0)) * npx
                acc["copy_style", k] += float(metrics.style_distance(fv, feats_art)) * npx

    # -- sums to figures ---------------------------------------------------------------------------

    def _collect(self, acc, linf, vs, flip, view_flip) -> dict[str, VersionFigures]:
        # pixel figures are over every tile (px), model figures over the sampled ones (mpx)
        px, mpx, vis = acc["px"], acc["mpx"], max(acc["vis"], 1e-12)
        out = {}
        for k in vs:
            latent = {m.name: (acc["dz", m.name, k] / max(acc["zz", m.name], 1e-12)) ** 0.5 for m in self.models}
            view = _db(acc["dv", k], mpx) if self.mimic else None
            detinted = _db(acc["dv_detinted", k], mpx) if self.mimic else None
            grain = math.sqrt(acc["grain", k] / acc["flat"]) * 255 if acc["flat"] else None
            copy = _db(acc["copy", k], mpx * 3) if self.mimic else None
            extra = {}
            if self.extended:
                extra = {"ms_ssim": acc["ms_ssim", k] / px, "linf": round(linf[k] * 255, 4),
                         "rms": round(math.sqrt(acc["sq", k] / (3 * vis)) * 255, 4)}
                if self.mimic:
                    n = acc["corr", "n", k]
                    cov = acc["corr", "ab", k] - acc["corr", "a", k] * acc["corr", "b", k] / max(n, 1)
                    va = acc["corr", "aa", k] - acc["corr", "a", k] ** 2 / max(n, 1)
                    vb = acc["corr", "bb", k] - acc["corr", "b", k] ** 2 / max(n, 1)
                    extra.update(view_ssim=acc["view_ssim", k] / mpx, copy_ssim=acc["copy_ssim", k] / mpx,
                                 decoy_corr=cov / math.sqrt(va * vb) if va > 0 and vb > 0 else 0.0,
                                 decoy_psnr=_db(acc["decoy", k], mpx * 3))
                    if self.style is not None:
                        extra.update(style=acc["style", k] / mpx, copy_style=acc["copy_style", k] / mpx)
            out[k] = VersionFigures(
                psnr=_db(acc["sq", k], 3 * vis), ssim=acc["ssim", k] / vis, latent=latent, view_psnr=view,
                copy_psnr=copy, flip=acc["flip", k] / vis if k in flip else None, view_psnr_detinted=detinted,
                view_flip=acc["view_flip", k] / mpx if self.mimic and k in view_flip and mpx else None,
                grain=grain, extra=extra,
            )
        return out
