"""What the cloak optimises: one class per objective, registered by name.

An objective is set up once per (encoder, clean image) and returns a loss function
``loss(x_adv) -> B`` (one value per image) that the attack *minimises*. Losses are normalised by their
value at the clean image so that ensemble weights mean "relative importance", not "latent scale".
Add one by subclassing :class:`Objective` and decorating it with :func:`register_objective`.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, ClassVar

import torch

from .encoders import LatentModel
from .registry import Registered, Registry

LossFn = Callable[[torch.Tensor], torch.Tensor]
OBJECTIVES: Registry = Registry("objective")


#: class decorator: register an :class:`Objective` under its ``name`` (unique)
register_objective = OBJECTIVES.register


def _per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).square().flatten(1).mean(1)


def default_target(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The built-in decoy pattern, ``3×H×W`` in [0, 1]: saturated, high-frequency, clearly not art.

    Tiles of oriented stripes in clashing colours (Mist's "textural" target idea): a latent pulled
    toward it decodes to a busy, structured texture that a mimic then reproduces instead of the style.
    """
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    tile = 48
    ty, tx = (yy // tile), (xx // tile)
    angle = ((ty * 3 + tx * 5) % 4) * (math.pi / 4)
    u = xx * torch.cos(angle) + yy * torch.sin(angle)
    stripes = 0.5 + 0.5 * torch.sign(torch.sin(u * (2 * math.pi / 6)))
    palette = torch.tensor(
        [[1.0, 0.1, 0.6], [0.1, 0.9, 0.2], [0.1, 0.3, 1.0], [1.0, 0.9, 0.0], [0.0, 0.9, 0.9], [0.9, 0.3, 0.0]]
    )
    idx = ((ty * 7 + tx * 3) % len(palette)).long()
    fg = palette[idx].permute(2, 0, 1)
    bg = palette[(idx + 3) % len(palette)].permute(2, 0, 1)
    return (fg * stripes + bg * (1 - stripes)).to(device)


def fit_target(target: torch.Tensor | None, like: torch.Tensor, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Tile (never resize) a ``3×h×w`` target to the shape of ``like`` (``B×3×H×W``).

    ``origin`` = (top, left) of ``like`` in a larger image: the window of the image-wide pattern that
    falls there, so the decoy continues seamlessly across the tiles of a large image.
    """
    b, _, h, w = like.shape
    top, left = origin
    if target is None:
        t = default_target(top + h, left + w, like.device)
    else:
        t = target.to(like.device, torch.float32)
        if t.dim() == 4:
            t = t[0]
        reps = (1, math.ceil((top + h) / t.shape[1]), math.ceil((left + w) / t.shape[2]))
        t = t.repeat(*reps)
    return t[:, top : top + h, left : left + w].unsqueeze(0).expand(b, -1, -1, -1)


class Objective(Registered):
    """Base class. ``setup(model, x)`` -> ``loss(x_adv) -> B`` to minimise (1 at the clean image).

    Built by name with :data:`OBJECTIVES` ``.build(name, target=pattern)``: objectives that take a decoy
    ``target`` (``3×h×w`` in [0, 1]) get it, the others ignore it.
    """

    needs_decoder: ClassVar[bool] = False
    origin: tuple[int, int] = (0, 0)  # where x's top-left sits in the whole image (tiles)

    def at(self, top: int, left: int) -> "Objective":
        """A copy for a tile at (top, left): decoy targets are cut from the image-wide pattern there."""
        out = copy.copy(self)
        out.origin = (top, left)
        return out

    def setup(self, model: LatentModel, x: torch.Tensor) -> LossFn:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@register_objective
class TargetedTexture(Objective):
    """Pull the latent toward the latent of a target pattern (Mist's textural loss)."""

    name = "texture"
    description = "pull the latent toward a decoy texture's latent (Mist-style); encoder only, fastest"

    def __init__(self, target: torch.Tensor | None = None):
        self.target = target

    def setup(self, model: LatentModel, x: torch.Tensor) -> LossFn:
        with torch.no_grad():
            z_t = model.encode(fit_target(self.target, x, self.origin)).float()
            base = _per_image_mse(model.encode(x), z_t).clamp_min(1e-8)
        return lambda xa: _per_image_mse(model.encode(xa), z_t) / base


@register_objective
class Untargeted(Objective):
    """Push the latent away from the clean latent (PhotoGuard's encoder attack)."""

    name = "untargeted"
    description = "push the latent away from the clean latent (PhotoGuard encoder attack)"

    def setup(self, model: LatentModel, x: torch.Tensor) -> LossFn:
        with torch.no_grad():
            z0 = model.encode(x).float()
            scale = z0.square().flatten(1).mean(1).clamp_min(1e-8)
        return lambda xa: 1 - _per_image_mse(model.encode(xa), z0) / scale


def _stage_outputs(model: LatentModel, x: torch.Tensor) -> list[torch.Tensor]:
    """The encoder's feature maps at the end of each resolution (before each stride-2 layer) and its latent.

    For an encoder built as an ``nn.Sequential`` (the TAE family); any other encoder gives its latent alone."""
    enc = getattr(model, "encoder", None)
    if not isinstance(enc, torch.nn.Sequential):
        return [model.encode(x)]
    out, h = [], x
    layers = list(enc)
    for i, layer in enumerate(layers):
        h = layer(h)
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if nxt is None or getattr(nxt, "stride", (1, 1)) == (2, 2):
            out.append(h)
    return out


@register_objective
class FeatureAway(Objective):
    """Push the encoder's intermediate features at every scale away from the clean image's, each stage by its
    change relative to its own energy (feature-level attacks transfer better between networks than ones on the
    output alone: early features are edges and colours that any image encoder computes)."""

    name = "features"
    description = "push the encoder's features at every scale away from the clean image's (for transfer)"

    def setup(self, model: LatentModel, x: torch.Tensor) -> LossFn:
        with torch.no_grad():
            f0 = [f.float() for f in _stage_outputs(model, x)]
            scales = [f.square().flatten(1).mean(1).clamp_min(1e-8) for f in f0]

        def loss(xa: torch.Tensor) -> torch.Tensor:
            moved = [_per_image_mse(f, g) / s for f, g, s in zip(_stage_outputs(model, xa), f0, scales)]
            return 1 - torch.stack(moved).mean(0)

        return loss


def _style_stats(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = z.float()
    flat = z.flatten(2)
    mean, std = flat.mean(2), flat.std(2)
    centred = flat - mean.unsqueeze(2)
    gram = centred @ centred.transpose(1, 2) / flat.shape[2]
    return mean, std, gram


def _style_distance(a, b) -> torch.Tensor:
    return sum((x - y).square().flatten(1).mean(1) for x, y in zip(a, b))


@register_objective
class StyleDecoy(Objective):
    """Move the latent's per-channel statistics and Gram matrix toward a decoy style's (Glaze's idea)."""

    name = "style"
    description = "move latent channel statistics / Gram toward a decoy style (Glaze-style)"

    def __init__(self, target: torch.Tensor | None = None):
        self.target = target

    def setup(self, model: LatentModel, x: torch.Tensor) -> LossFn:
        with torch.no_grad():
            s_t = _style_stats(model.encode(fit_target(self.target, x, self.origin)))
            base = _style_distance(_style_stats(model.encode(x)), s_t).clamp_min(1e-8)
        return lambda xa: _style_distance(_style_stats(model.encode(xa)), s_t) / base


@register_objective
class MimicView(Objective):
    """Optimise what a mimic reproduces, through the decoder: pull ``D(E(x'))`` toward a decoy texture.

    Without a decoder this falls back to the latent texture target. ``target=None`` uses the built-in
    decoy pattern; ``untargeted=True`` instead pushes ``D(E(x'))`` away from the clean view ``D(E(x))``.
    """

    name = "mimic"
    description = "pull what a mimic reproduces, D(E(x)), toward a decoy texture (through the decoder)"
    needs_decoder = True

    def __init__(self, target: torch.Tensor | None = None, untargeted: bool = False, crop: int | None = None):
        self.target = target
        self.untargeted = untargeted
        self.crop = crop

    def setup(self, model: LatentModel, x: torch.Tensor) -> LossFn:
        if not model.has_decoder:
            return TargetedTexture(self.target).at(*self.origin).setup(model, x)
        with torch.no_grad():
            z0, view0 = model.clean_passes(x)  # the figures after the cloak find this pass made
            view0 = view0.float()
            ref = view0 if self.untargeted else fit_target(self.target, x, self.origin)
            base = _per_image_mse(view0, ref if not self.untargeted else torch.full_like(view0, 0.5)).clamp_min(1e-8)
        sign = -1.0 if self.untargeted else 1.0
        f = x.shape[-1] // z0.shape[-1]
        window = _LatentWindow(z0.shape[-2:], None if self.crop is None else max(1, self.crop // f))

        def loss(xa: torch.Tensor) -> torch.Tensor:
            # The decoder costs ~2x the encoder: decode a random latent window per step (the encoder,
            # whose GroupNorm is global, still sees the whole image). Windows cover the image over steps.
            (top, left), (h, w) = window.sample()
            z = model.encode(xa)[..., top : top + h, left : left + w]
            view = model.decode(z)
            r = ref[..., top * f : (top + h) * f, left * f : (left + w) * f]
            return (1.0 if self.untargeted else 0.0) + sign * _per_image_mse(view, r) / base

        return loss


@register_objective
class MimicAway(MimicView):
    """Push what a mimic reproduces, ``D(E(x'))``, away from the clean view ``D(E(x))`` (no decoy)."""

    name = "mimic-away"
    description = "push what a mimic reproduces, D(E(x)), away from the clean view (untargeted, through the decoder)"

    def __init__(self, target: torch.Tensor | None = None, crop: int | None = None):
        super().__init__(target=target, untargeted=True, crop=crop)


@register_objective
class MimicAwayAndFeatures(MimicAway):
    """Half :class:`MimicAway` (the mimic's view, through the decoder), half :class:`FeatureAway` (the encoder's
    features at every scale): the view moves, and so does what other encoders see in it."""

    name = "mimic-away+features"
    description = "half mimic-away, half features: move the mimic's view and the encoder's features at every scale"

    def setup(self, model: LatentModel, x: torch.Tensor) -> LossFn:
        view, features = super().setup(model, x), FeatureAway().setup(model, x)
        return lambda xa: 0.5 * (view(xa) + features(xa))


class _LatentWindow:
    """Deterministic sequence of random windows of a latent grid (the whole grid when size is None)."""

    def __init__(self, grid: tuple[int, int], size: int | None, seed: int = 0):
        self.grid, self.size = grid, size
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self) -> tuple[tuple[int, int], tuple[int, int]]:
        gh, gw = self.grid
        if self.size is None or (self.size >= gh and self.size >= gw):
            return (0, 0), (gh, gw)
        h, w = min(self.size, gh), min(self.size, gw)
        top = int(torch.randint(0, gh - h + 1, (1,), generator=self.gen))
        left = int(torch.randint(0, gw - w + 1, (1,), generator=self.gen))
        return (top, left), (h, w)


def make_objective(name: str, target: torch.Tensor | None = None) -> Objective:
    """Build a registered objective by name; ``target`` (``3×h×w`` in [0,1]) where it takes one."""
    return OBJECTIVES.build(name, target=target)
