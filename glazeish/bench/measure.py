"""What the benchmark measures on one image, in the measurement model of a latent diffusion model.

A latent diffusion model never sees pixels: fine-tuning, img2img and inpainting all work on ``z = E(x)``
and show what they learned through the decoder. The ideal mimic of an image ``v`` therefore reproduces
its *mimic view* ``D(E(v))``. For an original ``x`` and a variant ``v`` (cloaked, noised, purified, ...)
:class:`Measurer` reports, per image:

========================  ======================================================================  =========
metric                    definition                                                              damage is
========================  ======================================================================  =========
``psnr`` ``ssim``         PSNR (dB) / SSIM / MS-SSIM of ``v`` against ``x`` (visibility)          lower
``ms_ssim``
``linf`` ``l2``           L∞ and RMS of ``v − x`` in 1/255 units                                  higher
``latent:<enc>``          ``‖E(v) − E(x)‖₂ / ‖E(x)‖₂`` for every encoder (attacked or not)          higher
``mimic_psnr``            PSNR (dB) of the mimic view ``D(E(v))`` against the clean mimic view     lower
``mimic_ssim``            SSIM of the same pair                                                   lower
``mimic_psnr_orig``       PSNR of ``D(E(v))`` against the original artwork ``x``                   lower
``mimic_ssim_orig``       SSIM of the same pair                                                   lower
``style``                 Gram/channel-statistics distance between ``D(E(v))`` and ``D(E(x))`` on  higher
                          the features of an encoder that was not attacked (``taesana``)
``style_orig``            the same between ``D(E(v))`` and ``x``                                   higher
``decoy_corr``            Pearson correlation of the mimic view's change ``D(E(v)) − D(E(x))``     higher
                          with the direction to the decoy ``T − D(E(x))`` (``T`` the built-in
                          decoy pattern, :func:`glazeish.objectives.default_target`)
``decoy_psnr``            PSNR of ``D(E(v))`` against ``T`` (higher: the mimic shows more decoy)   higher
========================  ======================================================================  =========

Everything is computed in float32 without gradients, one image size at a time (no resizing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import metrics
from ..encoders import LatentModel
from ..objectives import fit_target
from ..protect import pad_to_multiple


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric: ``damage_up`` is True when a larger value means more damage/visibility."""

    name: str
    label: str
    unit: str
    damage_up: bool
    group: str  # visibility, latent or mimic


VISIBILITY = [
    MetricInfo("psnr", "PSNR vs original", "dB", False, "visibility"),
    MetricInfo("ssim", "SSIM vs original", "", False, "visibility"),
    MetricInfo("ms_ssim", "MS-SSIM vs original", "", False, "visibility"),
    MetricInfo("linf", "L-inf of delta", "/255", True, "visibility"),
    MetricInfo("l2", "RMS of delta", "/255", True, "visibility"),
]
MIMIC = [
    MetricInfo("mimic_psnr", "mimic view vs clean mimic view", "dB", False, "mimic"),
    MetricInfo("mimic_ssim", "mimic view SSIM vs clean mimic view", "", False, "mimic"),
    MetricInfo("mimic_psnr_orig", "mimic view vs original", "dB", False, "mimic"),
    MetricInfo("mimic_ssim_orig", "mimic view SSIM vs original", "", False, "mimic"),
    MetricInfo("style", "style distance to clean mimic view", "", True, "mimic"),
    MetricInfo("style_orig", "style distance to original", "", True, "mimic"),
    MetricInfo("decoy_corr", "correlation of mimic-view change with decoy", "", True, "mimic"),
    MetricInfo("decoy_psnr", "mimic view vs decoy pattern", "dB", True, "mimic"),
]
#: derived by the report from ``mimic_psnr`` (not a CSV metric): the same change on a linear scale,
#: ``MSE = 10^(−PSNR/10)``. Changes that add up (a purification's own change plus what is left of the
#: cloak) add in MSE, not in dB, so retained effects are also given on this scale.
DERIVED = [MetricInfo("mimic_mse", "mimic view MSE vs clean mimic view (linear scale)", "", True, "mimic")]


def metric_info(name: str) -> MetricInfo:
    """Look up a metric by its CSV name (``latent:<enc>`` included; unknown names get a neutral entry)."""
    for m in VISIBILITY + MIMIC + DERIVED:
        if m.name == name:
            return m
    if name.startswith("latent:"):
        return MetricInfo(name, f"latent displacement ({name.split(':', 1)[1]})", "", True, "latent")
    return MetricInfo(name, name, "", True, "other")


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per image of two ``B×...`` tensors (0 where either is constant)."""
    a = a.float().flatten(1)
    b = b.float().flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-12), torch.zeros_like(den))


@dataclass
class Reference:
    """What every variant of one original is compared with (all ``1×...`` tensors on the device)."""

    x: torch.Tensor  # original, 1×3×H×W
    latents: dict[str, torch.Tensor]  # encoder name -> E(x)
    view: torch.Tensor | None = None  # clean mimic view D(E(x))
    feats_view: list[torch.Tensor] = field(default_factory=list)  # style features of D(E(x))
    feats_x: list[torch.Tensor] = field(default_factory=list)  # style features of x
    target: torch.Tensor | None = None  # decoy pattern, 1×3×H×W
    extra: dict = field(default_factory=dict)  # other measurers' per-original caches (e.g. img2img outputs)


class Measurer:
    """Computes the metrics of the module docstring for variants of one original.

    Args:
        encoders: encoders whose latent displacement is reported (attacked or not).
        mimic: the autoencoder whose ``D(E(·))`` is the mimic view (needs a decoder); ``None`` skips the
            mimic metrics.
        style: a :class:`glazeish.metrics.StyleFeatures` of an encoder that was not attacked; ``None`` skips
            the style distances.
        batch: how many images go through the networks at once.
    """

    def __init__(self, encoders: list[LatentModel], mimic: LatentModel | None = None,
                 style: metrics.StyleFeatures | None = None, device: torch.device | str = "cpu", batch: int = 4):
        if mimic is not None and not mimic.has_decoder:
            raise ValueError(f"the mimic model {mimic.name!r} has no decoder")
        self.encoders = encoders
        self.mimic = mimic
        self.style = style
        self.device = torch.device(device)
        self.batch = max(1, int(batch))

    @property
    def metric_names(self) -> list[str]:
        names = [m.name for m in VISIBILITY] + [f"latent:{e.name}" for e in self.encoders]
        if self.mimic is not None:
            names += [m.name for m in MIMIC if self.style is not None or not m.name.startswith("style")]
        return names

    @torch.no_grad()
    def _encode(self, model: LatentModel, x: torch.Tensor) -> torch.Tensor:
        xp, _ = pad_to_multiple(x, model.multiple)
        return torch.cat([model.encode(c).float() for c in xp.split(self.batch)])

    @torch.no_grad()
    def _view(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mimic view ``D(E(x))`` cropped to x's size, mimic latent ``E(x)``)."""
        assert self.mimic is not None
        h, w = x.shape[-2:]
        z = self._encode(self.mimic, x)
        v = torch.cat([self.mimic.decode(c).float() for c in z.split(self.batch)])
        return v[..., :h, :w], z

    @torch.no_grad()
    def _feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        assert self.style is not None
        chunks = [self.style(c) for c in x.split(self.batch)]
        return [torch.cat(level) for level in zip(*chunks)]

    @torch.no_grad()
    def mimic_view(self, x: torch.Tensor) -> torch.Tensor:
        """``D(E(x))`` for ``B×3×H×W`` in [0,1] (any size), same shape."""
        return self._view(x.to(self.device).float())[0]

    @torch.no_grad()
    def reference(self, x: torch.Tensor) -> Reference:
        """Precompute everything about the original ``x`` (``1×3×H×W`` in [0,1])."""
        x = x.to(self.device).float()
        ref = Reference(x=x, latents={})
        for enc in self.encoders:
            if self.mimic is not None and enc is self.mimic:
                continue
            ref.latents[enc.name] = self._encode(enc, x)
        if self.mimic is not None:
            ref.view, z = self._view(x)
            ref.latents[self.mimic.name] = z
            ref.target = fit_target(None, x)
            if self.style is not None:
                ref.feats_view = self._feats(ref.view)
                ref.feats_x = self._feats(x)
        return ref

    @torch.no_grad()
    def measure(self, ref: Reference, v: torch.Tensor) -> list[dict[str, float]]:
        """Metrics of every variant in ``v`` (``B×3×H×W`` in [0,1], the size of ``ref.x``), one dict per image."""
        v = v.to(self.device).float()
        b = v.shape[0]
        x = ref.x.expand(b, -1, -1, -1)
        delta = v - x
        out: dict[str, torch.Tensor] = {
            "psnr": metrics.psnr(v, x),
            "ssim": metrics.ssim(v, x),
            "ms_ssim": metrics.ms_ssim(v, x),
            # in 1/255 units, rounded off float32 noise (an 8-bit δ of 4 levels reads 4, not 4.00001)
            "linf": torch.round(metrics.linf(delta) * 255 * 1e4) / 1e4,
            "l2": torch.round(delta.float().flatten(1).square().mean(1).sqrt() * 255 * 1e4) / 1e4,
        }
        # a variant equal to the original takes the reference's tensors: networks are not bit-exact across
        # batch sizes, and "clean vs clean" must read exactly 0 / ∞ rather than 1e-7 / 130 dB
        same = [i for i in range(b) if torch.equal(v[i], ref.x[0])]
        rest = [i for i in range(b) if i not in same]

        def fix(t: torch.Tensor | None, r: torch.Tensor) -> torch.Tensor:
            """Rows ``rest`` from ``t`` (computed on ``v[rest]`` only), rows ``same`` from the reference ``r``."""
            out_t = r.new_empty((b,) + tuple(r.shape[1:]), dtype=torch.float32)
            if t is not None:
                out_t[rest] = t.float()
            if same:
                out_t[same] = r[0].float()
            return out_t

        vr = v[rest] if rest else None  # only these go through the networks
        view = None
        if self.mimic is not None:
            view_r, z_r = self._view(vr) if rest else (None, None)
            view, z = fix(view_r, ref.view), fix(z_r, ref.latents[self.mimic.name])
            out[f"latent:{self.mimic.name}"] = metrics.relative_l2(z, ref.latents[self.mimic.name].expand_as(z))
        for enc in self.encoders:
            if self.mimic is not None and enc is self.mimic:
                continue
            z = fix(self._encode(enc, vr) if rest else None, ref.latents[enc.name])
            out[f"latent:{enc.name}"] = metrics.relative_l2(z, ref.latents[enc.name].expand_as(z))
        if view is not None:
            v0 = ref.view.expand(b, -1, -1, -1)
            t = ref.target.expand(b, -1, -1, -1)
            out["mimic_psnr"] = metrics.psnr(view, v0)
            out["mimic_ssim"] = metrics.ssim(view, v0)
            out["mimic_psnr_orig"] = metrics.psnr(view, x)
            out["mimic_ssim_orig"] = metrics.ssim(view, x)
            if self.style is not None:
                fr = self._feats(view[rest]) if rest else [None] * len(ref.feats_view)
                fv = [fix(f, r) for f, r in zip(fr, ref.feats_view)]
                out["style"] = metrics.style_distance(fv, [f.expand_as(g) for f, g in zip(ref.feats_view, fv)])
                out["style_orig"] = metrics.style_distance(fv, [f.expand_as(g) for f, g in zip(ref.feats_x, fv)])
            out["decoy_corr"] = pearson(view - v0, t - v0)
            out["decoy_psnr"] = metrics.psnr(view, t)
        names = self.metric_names
        return [{k: float(out[k][i]) for k in names} for i in range(b)]
