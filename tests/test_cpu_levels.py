"""The CPUs artists own: the tests whose outcome depends on the processor (same bits on any thread count, the
precisions it computes natively, pinned outputs) run here natively and again with oneDNN and ATen held to the
laptop class (AVX2, fp32), so that a change that breaks an AVX2 laptop fails on an AVX-512 or AMX machine too.

Those tests carry the ``cpu_level`` mark; ``test_the_cpu_level_tests_pass_on`` re-runs them in a subprocess at
each level below this machine's. ``GLAZEISH_CPU_LEVELS=avx2,default`` chooses the levels (``default``: ATen's
plain kernels and oneDNN's SSE4.1 ones, the oldest x86 CPUs torch runs on); empty skips the re-run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import crop_rgb

ROOT = Path(__file__).resolve().parents[1]

#: each level: the environment that holds this machine's kernels to it
LEVELS = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "default": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"},
}
#: the levels a plain ``pytest`` run covers besides the native one
DEFAULT_LEVELS = "avx2"
#: ATen's capability names, narrowest first
_ORDER = ["DEFAULT", "AVX2", "AVX512"]


def _levels() -> list[str]:
    names = os.environ.get("GLAZEISH_CPU_LEVELS", DEFAULT_LEVELS)
    return [n.strip() for n in names.split(",") if n.strip()]


@pytest.mark.parametrize("level", _levels())
def test_the_cpu_level_tests_pass_on(level):
    """Everything marked ``cpu_level`` passes with this machine held to ``level`` (a fresh process: the ISA is
    fixed when oneDNN and ATen load)."""
    if level not in LEVELS:
        pytest.fail(f"unknown CPU level {level!r} in GLAZEISH_CPU_LEVELS (known: {', '.join(LEVELS)})")
    held = LEVELS[level]
    if any(os.environ.get(k) for k in held):
        pytest.skip("this run is itself held to a CPU level")
    native = torch.backends.cpu.get_cpu_capability()
    if native in _ORDER and _ORDER.index(native) <= _ORDER.index(held["ATEN_CPU_CAPABILITY"].upper()):
        pytest.skip(f"this CPU is at most {level} ({native}): the main run covers it")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cpu_level", "-p", "no:cacheprovider",
                           "-o", "addopts=", str(ROOT / "tests")], cwd=ROOT, env={**os.environ, **held},
                          capture_output=True, text=True, timeout=1800)
    tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
    assert proc.returncode == 0, f"held to {level}:\n{tail}\n{proc.stderr[-2000:]}"
    assert " passed" in tail, tail


@pytest.mark.cpu_level
@pytest.mark.parametrize("intensity", ["default", "fast"])
def test_presets_give_the_same_bytes_on_1_or_2_threads(intensity, ensemble, painting_path):
    """A cloak follows the sign of its gradient, so one low bit that follows the thread count flips pixels
    (before issue 26, on an AVX2 EPYC: 20-43 % of the values of such crops, up to 24 levels)."""
    from glazeish.config import ProtectConfig
    from glazeish.imageio import Artwork
    from glazeish.protect import Protector

    art = Artwork(rgb=crop_rgb(painting_path, 160, 128, 200, 180))
    protector = Protector(ProtectConfig(intensity=intensity, steps=2, seed=3, device="cpu"), ensemble=ensemble)
    saved, got = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got.append(protector.protect(art).rgb)
    finally:
        torch.set_num_threads(saved)
    assert np.array_equal(got[0], got[1])
