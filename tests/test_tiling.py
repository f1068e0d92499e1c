from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import crop_rgb
from glazeish.imageio import Artwork
from glazeish.protect import ProtectConfig, Protector, Step
from glazeish.tiling import Tile, cloak_tiled, cores, plan_tiles


@pytest.mark.parametrize("h,w,multiple", [(300, 520, 1), (2048, 2048, 8), (3008, 4000, 32), (136, 104, 8)])
def test_plan_covers_and_cores_partition_the_image(h, w, multiple):
    tile, overlap = 128 if h < 1000 else 512, 32 if h < 1000 else 64
    tiles = plan_tiles(h, w, tile, overlap, multiple)
    owned = torch.zeros(h, w, dtype=torch.int32)
    for t, c in zip(tiles, cores(tiles)):
        assert t.h <= tile and t.w <= tile and t.top + t.h <= h and t.left + t.w <= w
        assert t.top % multiple == 0 and t.left % multiple == 0 and t.h % multiple == 0 and t.w % multiple == 0
        assert c.top >= t.top and c.left >= t.left and c.top + c.h <= t.top + t.h and c.left + c.w <= t.left + t.w
        c.slice(owned)[...] += 1
    assert bool((owned == 1).all())  # every pixel owned by exactly one tile
    if len(tiles) > 1:  # neighbours overlap by at least about the asked overlap
        tops = sorted({(t.top, t.h) for t in tiles})
        assert min(s0 + n0 - s1 for (s0, n0), (s1, _) in zip(tops, tops[1:])) >= overlap - multiple
    assert plan_tiles(64, 64, 128, 32) == [Tile(0, 0, 64, 64)]


def test_one_tile_is_exactly_the_untiled_attack():
    calls = []

    def attack(xs, es, i, tile):
        calls.append(i)
        return xs + 0.01

    x = torch.rand(1, 3, 64, 64)
    out = cloak_tiled(attack, x, None, 0.1, tile=64, overlap=16)
    assert calls == [0] and torch.equal(out, x + 0.01)


def test_later_tiles_keep_earlier_pixels_and_budget():
    x = torch.zeros(1, 3, 96, 160)
    seen = []

    def attack(xs, es, i, tile):
        seen.append(es.clone())
        return xs + es  # use all the budget it is given

    out = cloak_tiled(attack, x, None, 0.05, tile=64, overlap=16)
    assert torch.allclose(out, torch.full_like(out, 0.05))  # every pixel written exactly once
    first = cores(plan_tiles(96, 160, 64, 16))[0]
    assert float(seen[1][..., : first.h, : first.left + first.w - 48].max()) == 0.0  # not what the first owns


@pytest.fixture(scope="module")
def protector(models_dir):
    return Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32", tile=128, overlap=32))


def test_tiled_protector_equals_untiled_when_one_tile(models_dir, painting_path):
    art = Artwork(rgb=crop_rgb(painting_path, 120, 96, 50, 60))
    small = Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32", tile=128))
    big = Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32", tile=1024))
    assert small.n_tiles(96, 120) == 1
    a = small.protect(art).rgb
    b = big.protect(art).rgb
    assert np.array_equal(a, b)


def test_progress_counts_steps_per_image_and_names_the_tile(protector, painting_path):
    """A large image reports the configured steps per tile and which tile, not a step count inflated by tiles."""
    seen: list[Step] = []
    protector.protect(Artwork(rgb=crop_rgb(painting_path, 200, 120, 40, 40)), seen.append)
    tiles = protector.n_tiles(120, 200)
    assert tiles == 2
    assert [(s.step, s.steps, s.tile, s.tiles) for s in seen] == [(1, 2, 1, 2), (2, 2, 1, 2), (1, 2, 2, 2),
                                                                   (2, 2, 2, 2)]
    assert [s.done for s in seen] == [1, 2, 3, 4] and {s.total for s in seen} == {4}


def test_no_seams_in_delta_statistics(protector, painting_path):
    """|δ| along tile borders looks like |δ| anywhere else (no band where perturbations cancel)."""
    rgb = crop_rgb(painting_path, 256, 192, 100, 100)
    assert protector.n_tiles(192, 256) > 2
    result = protector.protect(Artwork(rgb=rgb))
    delta = np.abs(result.rgb.astype(int) - rgb.astype(int)).mean(axis=(0, 2))  # mean |δ| per column
    assert np.abs(result.rgb.astype(int) - rgb.astype(int)).max() <= protector.config.eps_levels
    tiles = plan_tiles(192, 256, 128, 32, 8)
    seams = sorted({c.left for c in cores(tiles) if c.left > 0})
    near = np.concatenate([delta[s - 2 : s + 2] for s in seams])
    assert abs(near.mean() - delta.mean()) < 0.15 * delta.mean()


def test_tiled_evaluation_matches_single_pass(protector, models_dir, painting_path):
    rgb = crop_rgb(painting_path, 256, 160, 0, 0)
    cloaked = protector.protect(Artwork(rgb=rgb)).rgb
    from glazeish.evaluation import Evaluator, assess

    one = assess(rgb, cloaked, Evaluator(protector.ensemble, tile=1024), purifications=())
    tiled = assess(rgb, cloaked, Evaluator(protector.ensemble, tile=128), purifications=())
    assert tiled.before.cloak.psnr == pytest.approx(one.before.cloak.psnr, abs=0.01)  # sums of squares add up
    d1, d2 = one.before.cloak.latent["taef2"], tiled.before.cloak.latent["taef2"]
    assert d2 == pytest.approx(d1, rel=0.35)  # tiles change the encoder's context, not the picture


def test_perceptual_budget_and_robust_options(models_dir, flat_path):
    rgb = crop_rgb(flat_path, 128, 96, 250, 150)
    flat = Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32", eps_levels=4, budget="flat"))
    perc = Protector(ProtectConfig(models_dir=str(models_dir), steps=2, precision="fp32", eps_levels=4, budget="perceptual",
                                   robust="jpeg,resize"))
    a = flat.protect(Artwork(rgb=rgb)).rgb
    b = perc.protect(Artwork(rgb=rgb)).rgb
    da = np.abs(a.astype(int) - rgb).mean()
    db = np.abs(b.astype(int) - rgb).mean()
    assert np.abs(b.astype(int) - rgb).max() <= 4
    assert db < 0.7 * da  # flat fills get less change under the perceptual budget
    with pytest.raises(ValueError, match="budget"):
        ProtectConfig(budget="weird")
    with pytest.raises(ValueError, match="unknown transform"):
        Protector(ProtectConfig(models_dir=str(models_dir), robust="jpeg,nope"))
