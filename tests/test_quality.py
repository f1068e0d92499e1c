"""The issue's quality bar, scaled down to test size: real encoder, real art, default preset."""

from __future__ import annotations

import pytest

from conftest import crop_rgb
from glazeish.config import ProtectConfig
from glazeish.imageio import Artwork
from glazeish.job import Cloaker, Job


@pytest.fixture(scope="module")
def cloaker(models_dir):
    return Cloaker(Job(ProtectConfig(intensity="default", models_dir=str(models_dir))))


@pytest.mark.parametrize(
    "which,box,min_psnr", [("painting", (192, 192, 160, 160), 34.0), ("flat", (200, 136, 220, 160), 36.0)]
)
def test_default_preset_beats_same_budget_noise(cloaker, painting_path, flat_path, which, box, min_psnr):
    path = painting_path if which == "painting" else flat_path
    art = Artwork(rgb=crop_rgb(path, *box))
    rgb = cloaker.cloak(art)
    f = cloaker.figures(art, rgb)
    b = f.before
    assert rgb.shape == art.rgb.shape
    assert f.linf <= 4
    assert b.cloak.psnr >= min_psnr
    if which == "painting":  # the latent bar is for paintings; flat art's latent is small
        assert b.latent_ratio("taef2", "uniform") >= 2
    else:
        assert b.latent_ratio("taef2", "uniform") > 1
    assert b.view_gap("uniform") >= 8.0  # the mimic's view moves ≥ 8 dB more than under same-L∞ noise
    assert b.view_gap("noise") > 0  # and more than under noise of the same PSNR
