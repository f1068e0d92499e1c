"""Process-wide settings of glazeish.device that must never change what is computed."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# a cloak made in a fresh process (the allocator setting is process-wide and made once), printed as a digest
_CLOAK = """
import hashlib, sys
from glazeish.config import ProtectConfig
from glazeish.device import keep_freed_memory
from glazeish.imageio import read_image
from glazeish.protect import Protector
out = Protector(ProtectConfig(steps=2, precision="bf16")).protect(read_image(sys.argv[1]))
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
