"""Shared fixtures: the real weights and images in ../shared (tests skip cleanly without them)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GLAZEISH_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("GLAZEISH_MODELS", SHARED / "models"))
IMAGES = SHARED / "images"

# tests use the real weights in ../shared and never download any
if MODELS.is_dir():
    os.environ.setdefault("GLAZEISH_MODELS", str(MODELS))
os.environ.setdefault("GLAZEISH_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# keep the cache (downloads, the remembered fp32/bf16 choice) out of the user's home
os.environ.setdefault("GLAZEISH_CACHE", tempfile.mkdtemp(prefix="glazeish-test-cache-"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set GLAZEISH_SHARED / GLAZEISH_MODELS)")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _need(MODELS / "taef2_encoder.pth", "real TAE weights").parent


@pytest.fixture(scope="session")
def taef2(models_dir):
    from glazeish.encoders import load_encoder

    return load_encoder("taef2", models_dir)


@pytest.fixture(scope="session")
def taesana(models_dir):
    from glazeish.encoders import load_encoder

    return load_encoder("taesana", models_dir)


@pytest.fixture(scope="session")
def painting_path() -> Path:
    return _need(IMAGES / "paintings" / "00003-0-vincent-van-gogh_olive-picking-1889-2.png", "test paintings")


@pytest.fixture(scope="session")
def flat_path() -> Path:
    return _need(IMAGES / "flat" / "flat_05.png", "flat-colour test images")


def crop_rgb(path: Path, width: int, height: int, left: int = 0, top: int = 0) -> np.ndarray:
    """``height×width×3`` uint8 crop of an image file."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").crop((left, top, left + width, top + height))).copy()


@pytest.fixture
def small_painting(tmp_path, painting_path) -> Path:
    """A 136×104 crop of a real painting (deliberately not a multiple of 8 or 32)."""
    p = tmp_path / "in" / "painting.png"
    p.parent.mkdir()
    Image.fromarray(crop_rgb(painting_path, 136, 104, 100, 150)).save(p)
    return p


@pytest.fixture(scope="session")
def ensemble(taef2):
    """The real taef2 (encoder + decoder) as an ensemble on the CPU."""
    from glazeish.encoders import Ensemble

    return Ensemble([taef2]).to("cpu")


@pytest.fixture(scope="session")
def original(painting_path) -> np.ndarray:
    """A 128×96 crop of a Van Gogh painting (textured, like most art people protect)."""
    from glazeish.imageio import read_image

    return np.ascontiguousarray(read_image(painting_path).rgb[200:296, 150:278])


@pytest.fixture(scope="session")
def cloaked(ensemble, original) -> np.ndarray:
    """A real glazeish cloak of ``original`` (default objective, 3 steps, a flat ±4/255 budget, fp32): every
    pixel may use the whole budget, as the noise baselines' tests assume."""
    from glazeish.config import ProtectConfig
    from glazeish.imageio import Artwork
    from glazeish.protect import Protector

    p = Protector(ProtectConfig(eps_levels=4, budget="flat", steps=3, device="cpu", precision="fp32"), ensemble=ensemble)
    return p.protect(Artwork(rgb=original)).rgb


def assert_same_bits_on_threads(transform, x0, gy, threads=(1, 2, 3)) -> None:
    """A transform's output and input gradient (for output gradient ``gy``) are bit-identical on every thread
    count in ``threads``: what a cloak made through it needs to be the same bytes on any machine's threads."""
    import random

    import torch

    saved, got = torch.get_num_threads(), []
    try:
        for n in threads:
            torch.set_num_threads(n)
            x = x0.clone().requires_grad_(True)
            y = transform(x, random.Random(5))
            got.append((y.detach(), torch.autograd.grad(y, x, gy)[0]))
    finally:
        torch.set_num_threads(saved)
    for y, g in got[1:]:
        assert torch.equal(y, got[0][0]) and torch.equal(g, got[0][1])
