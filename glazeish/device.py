"""Where the work runs and in what precision: a policy read off the hardware, never off a timing.

``auto`` precision is decided by what the processor can do, so that the same input, seed and settings give
the same bytes in every process on one kind of machine (a timing race between two Ray workers on a loaded
machine could otherwise choose differently): on CUDA, bf16 autocast where the GPU supports it, else fp16;
on a CPU, bf16 autocast where it has native bf16 arithmetic (AMX or AVX-512 BF16: oneDNN runs the
convolutions in bf16 there, about 2x faster than fp32), else fp32 (bf16 would be emulated, and slower).
``GLAZEISH_PRECISION`` or an explicit ``fp32``/``bf16``/``fp16`` overrides it; a reduced precision that this
processor cannot compute natively is refused (ValueError) rather than emulated: emulation is slower than fp32,
and some oneDNN kernels (the fused convolution) do not run at all without it.

"Native" is what the processor *and* oneDNN say: the CPU's flags (read through PyTorch's cpuinfo, so on macOS,
Windows and ARM too) and oneDNN's own answer, which also honours ``ONEDNN_MAX_CPU_ISA`` (an AVX-512 BF16 machine
held to ``AVX2`` computes as a laptop does, and says so).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else the CPU; anything else must exist here (ValueError otherwise)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r} (auto, cpu, cuda, cuda:1, ...): {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA GPU is available here (use auto or cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():  # torch names it; building on it fails
        raise ValueError(f"device {device!r}: no Apple GPU (MPS) is available here (use auto or cpu)")
    elif dev.type not in ("cpu", "mps"):
        raise ValueError(f"device {device!r} is not supported (auto, cpu, cuda, cuda:N)")
    return dev


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    name, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; the platform's processor string elsewhere)."""
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them (empty where they cannot be read)."""
    return _cpuinfo()[1]


def _onednn_says(name: str) -> bool:
    """oneDNN's answer to ``torch.ops.mkldnn._is_mkldnn_<name>_supported()`` (False where it cannot be asked)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(getattr(torch.ops.mkldnn, f"_is_mkldnn_{name}_supported")())
    except (AttributeError, RuntimeError):
        return False


def _cpu_has(test: str, linux_flags: tuple[str, ...]) -> bool:
    """A CPU feature from PyTorch's cpuinfo (``torch.cpu._is_<test>_supported``, any OS), else /proc/cpuinfo."""
    fn = getattr(torch.cpu, f"_is_{test}_supported", None)
    if fn is not None:
        try:
            return bool(fn())
        except RuntimeError:
            pass
    return any(f in cpu_flags() for f in linux_flags)


@functools.lru_cache(maxsize=None)
def native_precisions(device_type: str) -> tuple[str, ...]:
    """The precisions a device computes natively: fp32 always; on CUDA bf16 where supported, and fp16; on a CPU
    bf16 where the processor has AVX-512 BF16 or AMX (or ARM's BF16) *and* oneDNN uses it, fp16 where oneDNN
    computes it natively (AVX-512 FP16, AMX-FP16). Read off the hardware, the same answer in every process."""
    if device_type == "cuda":
        return ("fp32", "bf16", "fp16") if torch.cuda.is_bf16_supported() else ("fp32", "fp16")
    if device_type != "cpu":
        return ("fp32",)
    out = ["fp32"]
    arm = platform.machine().lower() in ("arm64", "aarch64")
    bf16_cpu = arm or _cpu_has("avx512_bf16", ("avx512_bf16",)) or _cpu_has("amx_tile", ("amx_bf16",))
    if bf16_cpu and _onednn_says("bf16"):
        out.append("bf16")
    if _onednn_says("fp16"):
        out.append("fp16")
    return tuple(out)


def cpu_class() -> str:
    """What decides the low bits of a CPU computation here: the processor, the instruction set ATen's kernels
    use (``ATEN_CPU_CAPABILITY`` may lower it) and the precisions oneDNN computes natively (``ONEDNN_MAX_CPU_ISA``
    may lower them), e.g. ``AMD EPYC [avx512-bf16] · AVX2 · fp32`` (a Zen 4 held to AVX2). Two processes that print the same class compute the
    same bytes; other classes may differ in the last bits, and a cloak's pixels follow them."""
    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # torch < 2.1
        isa = "?"
    return f"{cpu_name()} [{_widest_isa()}] · {isa} · {','.join(native_precisions('cpu'))}"


def _widest_isa() -> str:
    """The widest x86 vector extension the processor has, whatever it is held to (two CPUs of one name, e.g.
    ``AMD EPYC`` under a hypervisor, can be Zen 3 or Zen 4)."""
    for test, flag, name in (("amx_tile", "amx_tile", "amx"), ("avx512_bf16", "avx512_bf16", "avx512-bf16"),
                             ("avx512", "avx512f", "avx512"), ("avx2", "avx2", "avx2")):
        if _cpu_has(test, (flag,)):
            return name
    return platform.machine() or "?"


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> the hardware's choice (see the module doc); ``fp32``, ``bf16``, ``fp16`` as given where the
    device computes them natively (:func:`native_precisions`), ValueError otherwise."""
    if precision == "auto":
        precision = os.environ.get("GLAZEISH_PRECISION", "auto") or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    native = native_precisions(device.type)
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if "bf16" in native else "fp16"
        return "bf16" if "bf16" in native else "fp32"
    if precision not in native:
        what = "processor" if device.type == "cpu" else f"{device.type} device"
        raise ValueError(f"precision {precision}: this {what} does not compute it natively (it would be emulated: "
                         f"slower than fp32, where it runs at all); natively: {', '.join(native)}; use auto or fp32")
    return precision


#: glibc ``mallopt`` parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: blocks above this still get their own mapping, handed back when freed: a 512² tile's fp32 maps (64 MiB, the
#: figures) and a large image's full-size tensors. At 256 MiB a 2048² image's figures peaked at 2.25 GB instead
#: of 1.9; the bf16 attack's maps (up to 32 MiB) stay below it, and it is as fast as with 256 MiB.
MMAP_THRESHOLD = 40 << 20
#: freed memory at the top of the heap is handed back to the system only beyond this (or at a phase's end)
TRIM_THRESHOLD = 1 << 30


@functools.lru_cache(maxsize=1)
def _libc():
    """glibc's ``mallopt`` and ``malloc_trim`` (None off Linux, elsewhere than glibc, or when turned off)."""
    if os.environ.get("GLAZEISH_KEEP_MEMORY", "1") == "0" or platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Let the process reuse the memory of freed tensors instead of handing it back to the system at once.

    glibc's malloc gives every block over 32 MiB at most (a 512² activation map is 4-32 MiB) its own mapping and
    unmaps it when freed; the next tensor of that size then pays a page fault for each 4 KB page it touches.
    On a CPU, where the attack allocates and frees such maps at every layer of every step, those faults are
    ~20 % of a 512² cloak (a whole `fast` 512² command: 0.83× the time, ``benchmarks/memory_reuse.py``).
    Raising glibc's thresholds keeps that memory in the heap for the next step; :func:`release_freed_memory`
    hands it back between the phases of an image. The numbers computed are unchanged: only where the memory comes from.
    Process-wide and idempotent; a no-op off glibc (macOS, Windows, musl) and when ``GLAZEISH_KEEP_MEMORY=0``.
    Returns whether the thresholds were set.
    """
    libc = _libc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    # a glibc that refuses this threshold (some cap it at 32 MiB) gets its largest
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_freed_memory() -> None:
    """Hand the heap memory that freed tensors left behind back to the system (glibc ``malloc_trim``), at the
    end of a phase (a cloak, its figures). Without it a long-lived process (the web UI, a Ray worker) would
    hold the attack's peak while idle: 1.31 GB after a 512² ``fast`` cloak, against 0.31 GB with it (and
    0.70 GB with glibc's own thresholds; ``benchmarks/memory_reuse.py``). Takes milliseconds; a no-op where
    :func:`keep_freed_memory` is."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def autocast(device: torch.device, precision: str):
    """The autocast context of a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """A fresh channels-last copy of ``B×C×H×W`` ``x``: CPU convolutions are ~1.5x faster in that layout.

    Not ``x.contiguous(memory_format=...)``: a ``1×3×H×W`` view of an ``H×W×3`` array (``to_tensor``) already
    counts as channels-last, but its batch stride (3) sends oneDNN down a slow path (measured at 512²: 3.5x
    slower in bf16, 1.3x in fp32); a clone gets the canonical strides.
    """
    return x.clone(memory_format=torch.channels_last)


def fixed_order_sum(t: torch.Tensor) -> torch.Tensor:
    """Per-image sums of a ``B×...`` tensor as ``B×1×…×1`` float64, with the same bits on any thread count.

    PyTorch's CPU reductions split a long sum across the intra-op threads, so its low bits follow the thread
    count; where a sum *decides* something (a bisection's threshold, e.g. the energy projection) that would
    make the cloak's bytes depend on the machine's cores. NumPy's pairwise sum runs in one fixed order.
    """
    shape = (-1,) + (1,) * (t.dim() - 1)
    if t.device.type != "cpu":  # one device's kernels: the same order on every run
        return t.double().flatten(1).sum(1).view(shape)
    flat = t.detach().double().reshape(t.shape[0], -1).numpy()
    return torch.from_numpy(flat.sum(1)).view(shape)
