"""The issue's quality bar, scaled down to test size: real encoder, real art, default preset."""

from __future__ import annotations

import pytest

from conftest import crop_rgb
from glazeish.imageio import Artwork
from glazeish.protect import ProtectConfig, Protector


@pytest.fixture(scope="module")
def protector(models_dir):
    return Protector(ProtectConfig(intensity="default", models_dir=str(models_dir)))


@pytest.mark.parametrize(
    "which,box,min_psnr", [("painting", (192, 192, 160, 160), 34.0), ("flat", (200, 136, 220, 160), 36.0)]
)
def test_default_preset_beats_same_budget_noise(protector, painting_path, flat_path, which, box, min_psnr):
    path = painting_path if which == "painting" else flat_path
    art = Artwork(rgb=crop_rgb(path, *box))
    result = protector.protect(art)
    f = result.figures
    assert result.rgb.shape == art.rgb.shape
    assert f["linf"] <= 4
    assert f["psnr"]["cloak"] >= min_psnr
    d = f["encoders"]["taef2"]["latent_displacement"]
    if which == "painting":  # the latent bar is for paintings; flat art's latent is small
        assert d["cloak"] >= 2 * d["random"]
    else:
        assert d["cloak"] > d["random"]
    m = f["encoders"]["taef2"]["mimic_psnr"]
    assert m["random"] - m["cloak"] >= 8.0  # the mimic's view moves ≥ 8 dB more than under noise
