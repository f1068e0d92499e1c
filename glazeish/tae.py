"""Tiny AutoEncoder (TAE) modules: TAEF2 encoder/decoder and the TAESANA encoder.

Rebuilt from the architecture description shipped with the weights (madebyollin/taesd, MIT).
State-dict keys follow the ``nn.Sequential`` indices, so the upstream ``.pth`` files load as-is.

Conventions: images are float RGB in ``[0, 1]``, ``B×3×H×W``; TAEF2 latents are ``B×32×H/8×W/8``
(values roughly in ``[-3, 3]``), TAESANA latents ``B×32×H/32×W/32``.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .device import native_precisions


def conv(n_in: int, n_out: int, stride: int = 1, **kwargs) -> nn.Conv2d:
    if stride == 2:
        return Stride2Conv(n_in, n_out, **kwargs)
    return nn.Conv2d(n_in, n_out, 3, padding=1, stride=stride, **kwargs)


# Both classes below exist so that a cloak has the same bytes on any number of CPU threads (1 thread in a Ray
# worker, all cores in a local run): two of PyTorch's CPU kernels give other low bits on other thread counts,
# and a cloak follows the sign of its gradient, so one flipped low bit flips pixels. Measured before: 1 vs 2
# threads changed up to 8 levels in 1 % (fp32) to 22 % (bf16) of the pixels of a 384 px painting.


class PlainLayoutGroupNorm(nn.GroupNorm):
    """GroupNorm computed in the plain (NCHW) memory layout, whatever the input's.

    PyTorch's channels-last GroupNorm kernel splits its statistics (a sum over the whole map) across the
    intra-op threads; the plain-layout kernel gives each group to one thread, which sums it in a fixed order.
    The maps it sees are the encoder's smallest, so the two layout copies cost little.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous():
            return super().forward(x)
        return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)


class _Stride2Conv(torch.autograd.Function):
    """A 3×3 stride-2 convolution (padding 1) whose input gradient is a stride-1 convolution over the output
    gradient spread onto the input grid (zeros between): the same sums, through oneDNN's ordinary
    convolution kernel rather than its strided backward one."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight)
        ctx.size = x.shape[-2:]
        return F.conv2d(x, weight, bias, stride=2, padding=1)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            n, c, oh, ow = g.shape
            spread = g.new_zeros(n, c, 2 * oh, 2 * ow)
            if g.is_contiguous(memory_format=torch.channels_last):
                spread = spread.contiguous(memory_format=torch.channels_last)
            spread[..., ::2, ::2] = g  # y[i] = sum_k w[k] x[2i + k - 1]  =>  dx[j] = sum_k w[k] spread[j + 1 - k]
            flipped = weight.to(g.dtype).transpose(0, 1).flip(2, 3)
            gx = F.conv2d(spread, flipped, padding=1)[..., : ctx.size[0], : ctx.size[1]]
        if ctx.needs_input_grad[1]:  # never while cloaking (frozen weights): left to PyTorch
            gw = torch.nn.grad.conv2d_weight(x.to(g.dtype), weight.shape, g, stride=2, padding=1).to(weight.dtype)
        if ctx.needs_input_grad[2]:
            gb = g.float().sum((0, 2, 3)).to(weight.dtype)
        return gx, gw, gb


class Stride2Conv(nn.Conv2d):
    """A 3×3 stride-2 convolution (padding 1); the same forward, weights and state-dict keys as ``nn.Conv2d``.

    oneDNN's gradient of a strided convolution (what the cloak's gradient passes through) splits its work by
    the thread count (fp32: 3, 5 or 6 threads gave other bits than 1, 2, 4 or 8); its plain convolution kernel,
    which every other layer uses, does not. So the input gradient is computed with that kernel (see
    :class:`_Stride2Conv`): 4x the arithmetic of these few layers' input gradients, a few % of an encoder pass.
    """

    def __init__(self, n_in: int, n_out: int, bias: bool = True):
        super().__init__(n_in, n_out, 3, stride=2, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Stride2Conv.apply(x, self.weight, self.bias)


@contextlib.contextmanager
def _one_thread(device: torch.device):
    """Run the enclosed CPU kernels on one intra-op thread (a no-op elsewhere, and where there already is one)."""
    n = torch.get_num_threads()
    if device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class _SerialConv(torch.autograd.Function):
    """A stride-1 convolution whose forward and input gradient each run on one thread (see :class:`SerialConv2d`)."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(weight)
        ctx.padding, ctx.x_meta = padding, (x.shape, x.dtype, x.is_contiguous(memory_format=torch.channels_last))
        with _one_thread(x.device):
            return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, g):
        (weight,) = ctx.saved_tensors
        shape, dtype, cl = ctx.x_meta
        x = g.new_empty(shape, dtype=dtype)  # only its shape and layout are read: the input gradient needs no x
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        with _one_thread(g.device):
            gx = torch.ops.aten.convolution_backward(g, x, weight.to(g.dtype), None, [1, 1], ctx.padding, [1, 1],
                                                     False, [0, 0], 1, [True, False, False])[0]
        return gx, None, None, None


class SerialConv2d(nn.Conv2d):
    """A frozen stride-1 convolution computed on one CPU thread: the same weights, keys and function as
    ``nn.Conv2d``, with bits that cannot follow the thread count.

    oneDNN splits the channel sum of some convolutions across the threads, depending on the CPU's instruction set
    and the map's size: on an AVX-512 or AVX2 EPYC, the 1×1 convolutions over 256 channels (``GlobalPool``) and the
    input gradient of the 3-channel first layer gave other low bits on 1 and 3 threads. These layers are a few
    % of an encoder pass, so one thread costs little. A layer whose weights train (never while cloaking) takes
    the ordinary path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or self.weight.requires_grad or self.stride != (1, 1) or self.groups != 1 \
                or self.dilation != (1, 1) or isinstance(self.padding, str) or self.padding_mode != "zeros":
            return super().forward(x)
        dtype = _cpu_autocast_dtype() or x.dtype
        bias = None if self.bias is None else self.bias.to(dtype)
        return _SerialConv.apply(x.to(dtype), self.weight.to(dtype), bias, list(self.padding))


def _cpu_autocast_dtype() -> torch.dtype | None:
    """The dtype CPU autocast casts convolutions to here, or None outside it (torch 2.1-2.3 lack the device arg)."""
    try:
        on = torch.is_autocast_enabled("cpu")
        return torch.get_autocast_dtype("cpu") if on else None
    except (TypeError, AttributeError):
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


class _ConvReLU(torch.autograd.Function):
    """``relu(conv2d(x))`` (3×3, stride 1) in bf16 as one oneDNN call: the ReLU runs on the convolution's output
    while it is still in cache instead of as another pass over a 4-33 MB map (~5 % of a bf16 cloak on a CPU).
    The backward is the two ops' own (ReLU's mask, then the convolution's input gradient), so the values are
    the same bits as ``F.relu(F.conv2d(...))``, forward and backward. Only bf16: in fp32 oneDNN's fused
    primitive takes another kernel on small maps (13×17 px: other low bits), and fp32 is the exact path."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        y = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, [1, 1], [1, 1], 1, "relu", [None], "")
        ctx.save_for_backward(x, weight, y)
        ctx.padding = padding
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, y = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(g, y, 0)
        gx = torch.ops.aten.convolution_backward(g, x, weight, None, [1, 1], ctx.padding, [1, 1], False, [0, 0], 1,
                                                 [True, False, False])[0]
        return gx, None, None, None


def conv_relu(layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``relu(layer(x))``: fused (:class:`_ConvReLU`) for a frozen stride-1 convolution of a channels-last map
    under bf16 autocast (or in bf16) on a CPU whose oneDNN computes bf16 natively, the two modules one after the
    other otherwise."""
    dtype = _cpu_autocast_dtype() if x.device.type == "cpu" else None
    dtype = dtype or x.dtype
    fusable = (
        x.device.type == "cpu" and dtype == torch.bfloat16 and type(layer) is nn.Conv2d
        and layer.stride == (1, 1) and layer.dilation == (1, 1) and layer.groups == 1
        and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
        and not layer.weight.requires_grad and torch.backends.mkldnn.is_available()
        and x.is_contiguous(memory_format=torch.channels_last) and x.dim() == 4
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
        and "bf16" in native_precisions("cpu")  # oneDNN's fused bf16 kernel has no emulated fallback
    )
    if not fusable:
        return F.relu(layer(x))
    bias = None if layer.bias is None else layer.bias.to(dtype)
    return _ConvReLU.apply(x.to(dtype), layer.weight.to(dtype), bias, list(layer.padding))


class GlobalPool(nn.Module):
    """Per-pixel MLP whose GroupNorm takes statistics over the whole map (what makes it global)."""

    def __init__(self, ch: int = 64, hidden: int = 256):
        super().__init__()
        self.pool = nn.Sequential(
            SerialConv2d(ch, hidden, 1, bias=False),
            PlainLayoutGroupNorm(4, hidden),
            nn.ReLU(),
            SerialConv2d(hidden, ch, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class Block(nn.Module):
    """relu(body(x) + skip(x)); optionally x = x + pool(x) first (TAEF2's lowest resolution)."""

    def __init__(self, n_in: int, n_out: int, use_pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        if use_pool:
            # registered as direct children so the keys read `pool.0`, `pool.1`, `pool.3`
            self.pool = GlobalPool(n_in).pool
        else:
            self.pool = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        c = self.conv
        return self.fuse(c[4](conv_relu(c[2], conv_relu(c[0], x))) + self.skip(x))


class SoftClamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


def taef2_encoder(latent_channels: int = 32, ch: int = 64) -> nn.Sequential:
    """Image ``B×3×H×W`` in [0,1] (H, W multiples of 8) -> FLUX.2 latent ``B×32×H/8×W/8``."""
    return nn.Sequential(
        SerialConv2d(3, ch, 3, padding=1), Block(ch, ch),
        conv(ch, ch, stride=2, bias=False), Block(ch, ch), Block(ch, ch), Block(ch, ch),
        conv(ch, ch, stride=2, bias=False), Block(ch, ch), Block(ch, ch), Block(ch, ch),
        conv(ch, ch, stride=2, bias=False),
        Block(ch, ch, use_pool=True), Block(ch, ch, use_pool=True), Block(ch, ch, use_pool=True),
        conv(ch, latent_channels),
    )


def taef2_decoder(latent_channels: int = 32, ch: int = 64) -> nn.Sequential:
    """FLUX.2 latent ``B×32×h×w`` -> image ``B×3×8h×8w`` (clamp the output to [0, 1] yourself)."""
    return nn.Sequential(
        SoftClamp(), conv(latent_channels, ch), nn.ReLU(),
        Block(ch, ch, use_pool=True), Block(ch, ch, use_pool=True), Block(ch, ch, use_pool=True),
        nn.Upsample(scale_factor=2), conv(ch, ch, bias=False),
        Block(ch, ch), Block(ch, ch), Block(ch, ch),
        nn.Upsample(scale_factor=2), conv(ch, ch, bias=False),
        Block(ch, ch), Block(ch, ch), Block(ch, ch),
        nn.Upsample(scale_factor=2), conv(ch, ch, bias=False),
        Block(ch, ch), conv(ch, 3),
    )


def taesana_encoder(latent_channels: int = 32) -> nn.Sequential:
    """Image ``B×3×H×W`` in [0,1] (H, W multiples of 32) -> Sana DC-AE latent ``B×32×H/32×W/32``."""
    return nn.Sequential(
        conv(3, 32, stride=2), nn.ReLU(), conv(32, 64, stride=2), nn.ReLU(), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, 64, stride=2, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        conv(64, latent_channels),
    )
