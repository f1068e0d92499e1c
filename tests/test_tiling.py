from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import crop_rgb
from glazeish.imageio import Artwork, to_tensor
from glazeish.protect import ProtectConfig, Protector
from glazeish.tiling import Tile, cloak_tiled, core, plan_tiles


def test_plan_covers_and_cores_partition_the_image():
    h, w, tile, overlap = 300, 520, 128, 32
    tiles = plan_tiles(h, w, tile, overlap)
    owned = torch.zeros(h, w, dtype=torch.int32)
    for t in tiles:
        assert t.h == tile and t.w == tile and t.top + t.h <= h and t.left + t.w <= w
        c = core(t, h, w, overlap)
        assert c.top >= t.top and c.left >= t.left and c.top + c.h <= t.top + t.h
        c.slice(owned)[...] += 1
    # cores of flush-to-edge tiles may overlap their neighbour's core; every pixel has at least one owner
    assert int(owned.min()) >= 1
    assert plan_tiles(64, 64, 128, 32) == [Tile(0, 0, 64, 64)]


def test_one_tile_is_exactly_the_untiled_attack():
    calls = []

    def attack(xs, es, i):
        calls.append(i)
        return xs + 0.01

    x = torch.rand(1, 3, 64, 64)
    out = cloak_tiled(attack, x, None, 0.1, tile=64, overlap=16)
    assert calls == [0] and torch.equal(out, x + 0.01)


def test_later_tiles_keep_earlier_pixels_and_budget():
    x = torch.zeros(1, 3, 96, 160)
    seen = []

    def attack(xs, es, i):
        seen.append(es.clone())
        return xs + es  # use all the budget it is given

    out = cloak_tiled(attack, x, None, 0.05, tile=64, overlap=16)
    assert torch.allclose(out, torch.full_like(out, 0.05))  # every pixel written exactly once
    assert float(seen[1][..., :56, :8].max()) == 0.0  # the second tile may not touch what the first owns


@pytest.fixture(scope="module")
def protector(models_dir):
    return Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32", tile=128, overlap=32))


def test_tiled_protector_equals_untiled_when_one_tile(models_dir, painting_path):
    art = Artwork(rgb=crop_rgb(painting_path, 120, 96, 50, 60))
    small = Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32", tile=128))
    big = Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32", tile=1024))
    assert small.n_tiles(96, 120) == 1
    a = small.protect(art, evaluate=False).rgb
    b = big.protect(art, evaluate=False).rgb
    assert np.array_equal(a, b)


def test_no_seams_in_delta_statistics(protector, painting_path):
    """|δ| along tile borders looks like |δ| anywhere else (no band where perturbations cancel)."""
    rgb = crop_rgb(painting_path, 256, 192, 100, 100)
    assert protector.n_tiles(192, 256) > 2
    result = protector.protect(Artwork(rgb=rgb), evaluate=False)
    delta = np.abs(result.rgb.astype(int) - rgb.astype(int)).mean(axis=(0, 2))  # mean |δ| per column
    assert np.abs(result.rgb.astype(int) - rgb.astype(int)).max() <= 4
    tiles = plan_tiles(192, 256, 128, 32)
    seams = sorted({core(t, 192, 256, 32).left for t in tiles if t.left > 0})
    near = np.concatenate([delta[s - 2 : s + 2] for s in seams])
    assert abs(near.mean() - delta.mean()) < 0.15 * delta.mean()


def test_tiled_evaluation_matches_single_pass(protector, models_dir, painting_path):
    rgb = crop_rgb(painting_path, 256, 160, 0, 0)
    cloaked = protector.protect(Artwork(rgb=rgb), evaluate=False).rgb
    one = Protector(ProtectConfig(models_dir=str(models_dir), steps=0, tile=1024)).evaluate(rgb, cloaked)
    tiled = protector.evaluate(rgb, cloaked)
    assert tiled["psnr"]["cloak"] == pytest.approx(one["psnr"]["cloak"], abs=0.01)  # sums of squares add up (float32)
    d1 = one["encoders"]["taef2"]["latent_displacement"]["cloak"]
    d2 = tiled["encoders"]["taef2"]["latent_displacement"]["cloak"]
    assert d2 == pytest.approx(d1, rel=0.35)  # tiles change the encoder's context, not the picture


def test_perceptual_budget_and_robust_options(models_dir, flat_path):
    rgb = crop_rgb(flat_path, 128, 96, 250, 150)
    flat = Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32"))
    perc = Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32", budget="perceptual",
                                   robust="jpeg,resize"))
    a = flat.protect(Artwork(rgb=rgb), evaluate=False).rgb
    b = perc.protect(Artwork(rgb=rgb), evaluate=False).rgb
    da = np.abs(a.astype(int) - rgb).mean()
    db = np.abs(b.astype(int) - rgb).mean()
    assert np.abs(b.astype(int) - rgb).max() <= 4
    assert db < 0.7 * da  # flat fills get less change under the perceptual budget
    with pytest.raises(ValueError, match="budget"):
        ProtectConfig(budget="weird")
    with pytest.raises(ValueError, match="unknown transform"):
        Protector(ProtectConfig(models_dir=str(models_dir), robust="jpeg,nope"))
