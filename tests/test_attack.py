from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from glazeish.attack import PGD, project, step_sizes
from glazeish.encoders import Ensemble, LatentModel
from glazeish.objectives import OBJECTIVES, MimicView, TargetedTexture, Untargeted, default_target, fit_target, make_objective


def toy_model(seed: int = 0, decoder: bool = True) -> LatentModel:
    """A small random conv autoencoder (4x downscale): fast stand-in for real encoders."""
    g = torch.Generator().manual_seed(seed)
    enc = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, 2, 1))
    dec = torch.nn.Sequential(torch.nn.Upsample(scale_factor=4), torch.nn.Conv2d(4, 3, 3, 1, 1), torch.nn.Sigmoid())
    for p in list(enc.parameters()) + list(dec.parameters()):
        p.data = torch.randn(p.shape, generator=g) * 0.3
    return LatentModel("toy", enc.requires_grad_(False), dec.requires_grad_(False) if decoder else None, multiple=4)


@settings(max_examples=25, deadline=None)
@given(
    eps255=st.floats(0, 16),
    steps=st.integers(0, 4),
    seed=st.integers(0, 1000),
    objective=st.sampled_from(sorted(OBJECTIVES)),
    h=st.sampled_from([8, 16, 24]),
    w=st.sampled_from([8, 12, 20]),
)
def test_budget_invariant(eps255, steps, seed, objective, h, w):
    """Whatever the settings: |δ|∞ ≤ eps exactly and the output stays in [0, 1]."""
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
    x[..., :2, :] = 0.0  # saturated pixels exercise the [0,1] clamp
    x[..., -2:, :] = 1.0
    eps = eps255 / 255
    adv = PGD(toy_model(), make_objective(objective), eps=eps, steps=steps, seed=seed, precision="fp32")(x)
    assert adv.shape == x.shape
    assert float((adv - x).abs().max()) <= eps + 1e-7
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1


@settings(max_examples=20, deadline=None)
@given(eps255=st.floats(0.5, 16), seed=st.integers(0, 1000))
def test_budget_map_invariant(eps255, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, 16, 16, generator=g)
    eps = eps255 / 255
    eps_map = torch.rand(1, 1, 16, 16, generator=g) * eps
    eps_map[..., :4, :] = 0
    adv = PGD(toy_model(), Untargeted(), eps=eps, steps=3, seed=seed, precision="fp32")(x, eps_map)
    assert bool(((adv - x).abs() <= eps_map + 1e-7).all())
    assert torch.equal(adv[..., :4, :], x[..., :4, :])


def test_project_is_the_l_inf_projection():
    x = torch.full((1, 3, 2, 2), 0.5)
    y = project(x + torch.tensor([0.1, -0.1, 0.01])[None, :, None, None], x, 0.05)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.55, 0.45, 0.51]))
    assert float(project(torch.full_like(x, 2.0), torch.ones_like(x), 0.5).max()) == 1.0


def test_same_seed_same_cloak_other_seed_other_cloak():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    run = lambda seed: PGD(toy_model(), TargetedTexture(), eps=8 / 255, steps=3, seed=seed, precision="fp32")(x)
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


@pytest.mark.parametrize("name", ["texture", "untargeted", "style", "mimic", "features", "mimic-away+features"])
def test_attack_lowers_its_objective_more_than_noise(name):
    model = toy_model()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    obj = make_objective(name)
    adv = PGD(model, obj, eps=8 / 255, steps=8, seed=0, precision="fp32")(x)
    loss = obj.setup(model, x)
    noise = (x + (torch.rand(x.shape, generator=torch.Generator().manual_seed(9)) * 2 - 1) * 8 / 255).clamp(0, 1)
    with torch.no_grad():
        assert torch.allclose(loss(x), torch.ones(2), atol=1e-4)  # normalised to 1 at the clean image
        assert bool((loss(adv) < loss(noise)).all())


def test_ensemble_weights_and_decoder_requirement():
    a, b = toy_model(0), toy_model(1, decoder=False)
    x = torch.rand(1, 3, 16, 16)
    adv = PGD(Ensemble([a, b], [1.0, 0.5]), MimicView(), eps=4 / 255, steps=2, precision="fp32")(x)
    assert float((adv - x).abs().max()) <= 4 / 255 + 1e-7
    with pytest.raises(ValueError, match="needs a decoder"):
        PGD(b, MimicView())


def test_size_must_match_multiple():
    with pytest.raises(ValueError, match="multiple of 4"):
        PGD(toy_model(), Untargeted(), steps=1)(torch.rand(1, 3, 10, 16))


def test_step_schedules():
    assert step_sizes(1.0, 3, "constant") == [1.0, 1.0, 1.0]
    cos = step_sizes(1.0, 5, "cosine")
    assert cos[0] == pytest.approx(1.0) and cos[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(cos, cos[1:]))


def test_callback_sees_every_step():
    seen = []
    PGD(toy_model(), Untargeted(), steps=4, precision="fp32", callback=lambda i, n, l: seen.append((i, n)))(torch.rand(1, 3, 8, 8))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_targets_are_tiled_not_resized():
    t = default_target(64, 96)
    assert t.shape == (3, 64, 96) and 0 <= float(t.min()) and float(t.max()) <= 1
    small = torch.rand(3, 5, 7)
    big = fit_target(small, torch.zeros(2, 3, 12, 16))
    assert big.shape == (2, 3, 12, 16)
    assert torch.equal(big[0, :, 5:10, 7:14], small)


@pytest.mark.parametrize("target", [None, torch.rand(3, 5, 7)])
def test_targets_continue_across_tiles(target):
    """A tile at (top, left) gets the image-wide pattern's window there, not a pattern restarted at 0,0."""
    whole = fit_target(target, torch.zeros(1, 3, 100, 120))
    tile = fit_target(target, torch.zeros(1, 3, 40, 56), origin=(48, 64))
    assert torch.equal(tile, whole[..., 48:88, 64:120])
    assert Untargeted().at(8, 16).origin == (8, 16) and Untargeted().origin == (0, 0)


def test_real_encoder_attack_beats_noise(taef2):
    """On the real TAEF2 encoder, 4 steps already move the latent far more than same-budget noise."""
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    eps = 4 / 255
    adv = PGD(taef2, Untargeted(), eps=eps, steps=4, precision="fp32")(x)
    noise = (x + (torch.rand(x.shape) * 2 - 1) * eps).clamp(0, 1)
    with torch.no_grad():
        z = taef2.encode(x)
        d_adv = (taef2.encode(adv) - z).norm() / z.norm()
        d_noise = (taef2.encode(noise) - z).norm() / z.norm()
    assert d_adv > 2 * d_noise


@pytest.mark.cpu_level
@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_reduced_precision_runs_and_keeps_the_budget(taef2, precision):
    from glazeish.device import native_precisions

    if precision not in native_precisions("cpu") + ("auto",):
        pytest.skip(f"this CPU does not compute {precision} natively (refused: test_device)")
    x = torch.rand(1, 3, 32, 32)
    adv = PGD(taef2, MimicView(), eps=4 / 255, steps=2, precision=precision)(x)
    assert adv.dtype == torch.float32 and float((adv - x).abs().max()) <= 4 / 255 + 1e-7


def test_feature_objective_reads_every_scale_of_a_tae_encoder(taef2, taesana):
    """The features at the end of each resolution and the latent: 4 stages for TAEF2 (8×), 5 for TAESANA (32×)."""
    from glazeish.objectives import _stage_outputs

    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        f2, fs = _stage_outputs(taef2, x), _stage_outputs(taesana, x)
    assert [f.shape[-1] for f in f2] == [64, 32, 16, 8] and torch.equal(f2[-1], taef2.encode(x))
    assert [f.shape[-1] for f in fs] == [32, 16, 8, 4, 2]


def test_fill_smooth_leaves_no_grain_on_flat_fills_and_keeps_the_budget():
    """A flat fill with a textured band: with ``fill_smooth`` the change on the fill is smooth (its high-pass is
    a fraction of the plain attack's), the start there is zero, and the budget holds everywhere."""
    from glazeish.metrics import flat_mask, high_pass

    g = torch.Generator().manual_seed(0)
    x = torch.full((1, 3, 48, 64), 0.3)
    x[..., 16:32, :] = torch.rand(1, 3, 16, 64, generator=g)  # texture across the middle
    fills = flat_mask(x)
    assert float(fills.mean()) > 0.4
    grain = {}
    for k in (0, 9):
        adv = PGD(toy_model(), Untargeted(), eps=6 / 255, steps=4, seed=1, precision="fp32", fill_smooth=k)(x)
        d = adv - x
        assert float(d.abs().max()) <= 6 / 255 + 1e-7 and 0 <= float(adv.min()) and float(adv.max()) <= 1
        grain[k] = float((high_pass(d).square() * fills).sum() / fills.sum() / 3) ** 0.5
    assert grain[9] < 0.25 * grain[0]
    with pytest.raises(ValueError, match="odd kernel size"):
        PGD(toy_model(), Untargeted(), fill_smooth=4)
    from glazeish.config import ProtectConfig

    with pytest.raises(ValueError, match="odd kernel size"):  # a config says so before any work
        ProtectConfig(fill_smooth=4)


def test_an_unknown_schedule_is_refused_not_taken_for_cosine():
    with pytest.raises(ValueError, match="schedule must be one of cosine, linear, constant, photoguard, not 'cosin'"):
        PGD(toy_model(), Untargeted(), schedule="cosin")
