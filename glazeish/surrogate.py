"""Model augmentation of the attacked encoder: how gradients flow back through it, never what it computes.

A cloak built on one encoder follows that encoder's quirks; an encoder it never saw has other quirks and shares
only what every image encoder computes: edges, colours, shading. These changes to the *backward* pass bend the
attack toward what is shared. The forward pass, so the loss and every figure, is untouched.

Add one with a class that has ``__enter__``/``__exit__`` and takes the models in its constructor; PGD enters it
around its gradient steps.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient times ``gamma`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: float) -> torch.Tensor:
        ctx.gamma = gamma
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return g * ctx.gamma, None


def residual_bodies(module: nn.Module) -> list[nn.Module]:
    """The last layer of every residual block's body in ``module``: the output that is added to the skip.

    Knows the TAE family's ``Block`` (``relu(conv(x) + skip(x))``: ``conv[4]``) and diffusers' ``ResnetBlock2D``
    (``conv2``); any other block is not found (its gradient is left as it is)."""
    out = []
    for m in module.modules():
        kind = type(m).__name__
        if kind == "Block" and isinstance(getattr(m, "conv", None), nn.Sequential) and len(m.conv) == 5:
            out.append(m.conv[4])
        elif kind == "ResnetBlock2D" and hasattr(m, "conv2"):
            out.append(m.conv2)
    return out


class _ResidualHooks:
    """Forward hooks on the last layer of every residual body of the attacked encoders, registered on entering and
    removed on leaving (a change to the encoders that lasts exactly as long as the ``with`` block)."""

    def __init__(self, models: Iterable):
        self.layers = [layer for m in models for layer in residual_bodies(getattr(m, "encoder", m))]
        self._hooks: list = []

    @property
    def active(self) -> bool:
        raise NotImplementedError

    def _hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __enter__(self):
        if self.active:
            self._hooks = [layer.register_forward_hook(self._hook) for layer in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []


class SkipGradient(_ResidualHooks):
    """Skip gradient (Wu et al., ICLR 2020, "Skip connections matter"): in every residual block of the attacked
    encoders, the gradient through the block's body is scaled by ``gamma`` (< 1), so more of it follows the skip
    connections, which carry the early, low-level features (edges, colours) that other encoders compute too.

    The authors use gamma 0.2-0.5 on ResNets (their ImageNet best: 0.2 for ResNet-152, 0.5 for shallower ones).
    Used as a context manager; ``gamma = 1`` changes nothing. Only the encoders are changed: the mimic's decoder,
    through which the view objective's gradient first runs, is the loss, not the surrogate.

    Args:
        models: the attacked :class:`~glazeish.encoders.LatentModel`\\ s (their ``encoder`` modules are changed).
        gamma: the factor on the gradient through each residual body, in (0, 1].
    """

    def __init__(self, models: Iterable, gamma: float = 0.5):
        if not 0 < gamma <= 1:
            raise ValueError(f"skip gradient gamma must lie in (0, 1], not {gamma}")
        super().__init__(models)
        self.gamma = float(gamma)

    @property
    def active(self) -> bool:
        return self.gamma != 1

    def _hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        return _ScaleGrad.apply(output, self.gamma) if output.requires_grad else output


class Ghost(_ResidualHooks):
    """Ghost networks' skip erosion (Li et al., AAAI 2020, "Learning transferable adversarial examples via ghost
    networks"): every step sees another member of a family of encoders made from the attacked one by scaling each
    residual block's body by a factor drawn uniformly from ``[1 - r, 1 + r]``. The cloak then has to move all of
    them, as it has to move an encoder it never saw. Unlike :class:`SkipGradient` this changes the forward pass
    during the steps (not the clean references, which PGD sets up outside it) — a longitudinal ensemble at the
    cost of one model.

    Args:
        models: the attacked :class:`~glazeish.encoders.LatentModel`\\ s.
        r: the erosion range in [0, 1); 0 = off. The authors' skip erosion for ResNets uses 0.22.
        seed: seeds the draws (one generator, drawn in the fixed order the blocks run: the same cloak every time).
    """

    def __init__(self, models: Iterable, r: float = 0.22, seed: int = 0):
        if not 0 <= r < 1:
            raise ValueError(f"ghost erosion range must lie in [0, 1), not {r}")
        super().__init__(models)
        self.r = float(r)
        self.gen = torch.Generator().manual_seed(seed)

    @property
    def active(self) -> bool:
        return self.r != 0

    def _hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        factor = 1 + self.r * (2 * float(torch.rand((), generator=self.gen)) - 1)
        return output * factor
