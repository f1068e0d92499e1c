"""Process-wide settings of glazeish.device that must never change what is computed."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cpu_level

# a cloak made in a fresh process (the allocator setting is process-wide and made once), printed as a digest
_CLOAK = """
import hashlib, sys
from glazeish.config import ProtectConfig
from glazeish.device import keep_freed_memory
from glazeish.imageio import read_image
from glazeish.protect import Protector
out = Protector(ProtectConfig(steps=2)).protect(read_image(sys.argv[1]))  # auto: bf16 where it is native
print(keep_freed_memory(), hashlib.sha256(out.rgb.tobytes()).hexdigest())
"""


def _cloak_in_a_process(image, keep: str) -> tuple[str, str]:
    env = {**os.environ, "GLAZEISH_KEEP_MEMORY": keep}
    proc = subprocess.run([sys.executable, "-c", _CLOAK, str(image)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    kept, digest = proc.stdout.split()
    return kept, digest


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc's allocator is Linux's")
def test_keeping_freed_memory_changes_no_byte_of_the_cloak(small_painting, models_dir):
    """The allocator setting (see keep_freed_memory) changes where tensors live, never what they hold: the
    same cloak with it on and off (GLAZEISH_KEEP_MEMORY=0)."""
    on, off = _cloak_in_a_process(small_painting, "1"), _cloak_in_a_process(small_painting, "0")
    assert off[0] == "False"
    assert on[0] == ("True" if platform.libc_ver()[0] == "glibc" else "False")
    assert on[1] == off[1]


def test_a_precision_the_cpu_cannot_compute_natively_is_refused(monkeypatch):
    """bf16 where the CPU would emulate it (an AVX2 laptop): ``auto`` takes fp32, an explicit bf16 is refused in
    one line (emulated bf16 is slower than fp32, and oneDNN's fused kernel does not run at all)."""
    import torch

    from glazeish import device

    monkeypatch.setattr(device, "native_precisions", lambda kind: ("fp32",))
    cpu = torch.device("cpu")
    assert device.resolve_precision("auto", cpu) == "fp32" and device.resolve_precision("fp32", cpu) == "fp32"
    for p in ("bf16", "fp16"):
        with pytest.raises(ValueError, match=f"precision {p}: this processor does not compute it natively"):
            device.resolve_precision(p, cpu)
    monkeypatch.setattr(device, "native_precisions", lambda kind: ("fp32", "bf16"))
    assert device.resolve_precision("auto", cpu) == "bf16"


_LAPTOP = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def test_a_cpu_held_to_avx2_computes_and_says_fp32(tmp_path, small_painting, models_dir):
    """Held to AVX2 (the laptop class), oneDNN has no native bf16 whatever the flags say: ``auto`` resolves to
    fp32, and ``protect --precision bf16`` exits 2 with one line before any work, writing nothing."""
    env = {**os.environ, **_LAPTOP, "GLAZEISH_MODELS": str(models_dir)}
    probe = "from glazeish.device import native_precisions as n; print(','.join(n('cpu')))"
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split() == ["fp32"], proc.stderr
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "glazeish", "protect", str(small_painting), "-o", str(out),
                           "--precision", "bf16", "--steps", "1"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "glazeish: error: precision bf16: this processor does not compute it natively (it would be emulated: slower "
        "than fp32, where it runs at all); natively: fp32; use auto or fp32"]
    assert not out.exists()
