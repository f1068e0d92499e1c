"""The cloak options added by the stronger-cloak search: energy (RMS) bound, masked budget, optimisers,
momentum, the untargeted view objective, and their plumbing through Protector. Small images, few steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from glazeish.attack import OPTIMIZERS, PGD, project
from glazeish.budget import masked_budget, masking_activity
from glazeish.encoders import LatentModel
from glazeish.objectives import OBJECTIVES, MimicAway, make_objective


def toy_model(seed: int = 0) -> LatentModel:
    g = torch.Generator().manual_seed(seed)
    enc = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, 2, 1))
    dec = torch.nn.Sequential(torch.nn.Upsample(scale_factor=4), torch.nn.Conv2d(4, 3, 3, 1, 1), torch.nn.Sigmoid())
    for p in list(enc.parameters()) + list(dec.parameters()):
        p.data = torch.randn(p.shape, generator=g) * 0.3
    return LatentModel("toy", enc.requires_grad_(False), dec.requires_grad_(False), multiple=4)


def textured_and_flat(h: int = 32, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.full((1, 3, h, w), 0.6)
    x[..., w // 2 :] += 0.2 * torch.randn(1, 3, h, w - w // 2, generator=g)
    return x.clamp(0, 1)


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).square().flatten(1).mean(1)


# ---- project with an energy bound ----------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), eps255=st.floats(0.5, 16), rms255=st.floats(0, 8))
def test_project_energy_and_box(seed, eps255, rms255):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 8, 12, generator=g)
    x[0, :, :2] = 1.0  # saturated pixels exercise [0, 1]
    v = x + (torch.rand(x.shape, generator=g) * 2 - 1) * 0.2
    eps, rms = eps255 / 255, rms255 / 255
    y = project(v, x, eps, rms)
    assert float((y - x).abs().max()) <= eps + 1e-6
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert bool((mse(y, x) <= rms**2 * (1 + 1e-4) + 1e-12).all())


def test_project_energy_is_the_euclidean_projection():
    """Inside the ball nothing changes; outside, the result is a scaled-then-clipped v on the sphere."""
    x = torch.full((1, 3, 4, 4), 0.5)
    v = x + torch.linspace(-0.1, 0.1, 48).view(1, 3, 4, 4)
    assert torch.equal(project(v, x, 0.2, rms=1.0), project(v, x, 0.2))
    y = project(v, x, 0.05, rms=0.02)
    assert float(mse(y, x).sqrt()) == pytest.approx(0.02, rel=1e-3)
    d = y - x
    free = d.abs() < 0.05 - 1e-6  # unclipped values are one common multiple of v - x
    ratio = d[free] / (v - x)[free]
    assert float(ratio.max() - ratio.min()) < 1e-4 and 0 < float(ratio.mean()) < 1
    # no exact projection is closer: compare with plain clipping to the box, then uniform shrinking
    naive = project(x + (project(v, x, 0.05) - x) * (0.02 / float(mse(project(v, x, 0.05), x).sqrt())), x, 0.05)
    assert float((y - v).norm()) <= float((naive - v).norm()) + 1e-6


def test_project_energy_counts_only_changeable_values():
    """A zero budget (transparent pixels, a tile's fixed context) is not part of the energy's mean."""
    x = torch.full((1, 3, 4, 8), 0.5)
    eps = torch.full((1, 1, 4, 8), 0.1)
    eps[..., :4] = 0
    y = project(x + 0.1, x, eps, rms=0.05)
    assert torch.equal(y[..., :4], x[..., :4])
    assert float((y - x)[..., 4:].square().mean().sqrt()) == pytest.approx(0.05, rel=1e-3)


# ---- masked budget -------------------------------------------------------------------------------------


def test_masked_budget_moves_energy_to_texture():
    x = textured_and_flat()
    rms = 3 / 255
    m = masked_budget(x, rms, cap=3.0, floor=0.25)
    w = x.shape[-1]
    assert m.shape == (1, 1, *x.shape[-2:]) and not m.requires_grad
    assert float(m.square().mean().sqrt()) == pytest.approx(rms, rel=1e-3)  # the same energy as a flat rms
    assert float(m.max()) <= 3 * rms + 1e-9 and float(m.max()) > rms  # texture takes MORE than rms ...
    assert torch.allclose(m[..., : w // 2 - 4], torch.full_like(m[..., : w // 2 - 4], 0.25 * rms))  # ... fills the floor


def test_masked_budget_without_enough_texture_stays_below_the_energy():
    x = torch.full((1, 3, 32, 32), 0.9)
    x[..., 15:17, :] = 0.1  # one thin line on paper
    rms = 3 / 255
    m = masked_budget(x, rms, cap=2.0, floor=0.25)
    assert float(m.square().mean().sqrt()) < rms
    assert float(m.max()) == pytest.approx(2 * rms) and float(m.min()) == pytest.approx(0.25 * rms)


def test_masked_budget_alpha_batch_and_errors():
    a, b = textured_and_flat(seed=1), torch.rand(1, 3, 32, 64)
    both = masked_budget(torch.cat([a, b]), 3 / 255)
    assert torch.allclose(both[:1], masked_budget(a, 3 / 255)) and torch.allclose(both[1:], masked_budget(b, 3 / 255))
    alpha = torch.ones(1, 1, 32, 64)
    alpha[..., :8, :] = 0
    m = masked_budget(a, 3 / 255, alpha=alpha)
    assert float(m[..., :8, :].abs().max()) == 0
    for bad in (dict(cap=0.5), dict(floor=1.5), dict(power=0)):
        with pytest.raises(ValueError):
            masked_budget(a, 3 / 255, **bad)
    assert masking_activity(a).shape == m.shape


# ---- PGD options ---------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 1000),
    optimizer=st.sampled_from(OPTIMIZERS),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    rms255=st.sampled_from([None, 1.0, 3.0]),
    objective=st.sampled_from(sorted(OBJECTIVES)),
)
def test_pgd_options_keep_every_budget(seed, optimizer, momentum, rms255, objective):
    x = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(seed))
    x[..., :2, :] = 0.0
    eps = 8 / 255
    eps_map = torch.rand(1, 1, 16, 20, generator=torch.Generator().manual_seed(seed + 1)) * eps
    rms = None if rms255 is None else rms255 / 255
    pgd = PGD(toy_model(), make_objective(objective), eps=eps, steps=3, seed=seed, precision="fp32",
              optimizer=optimizer, momentum=momentum, rms=rms)
    adv = pgd(x, eps_map)
    assert adv.shape == x.shape
    assert bool(((adv - x).abs() <= eps_map + 1e-6).all())
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    if rms is not None:
        assert float(mse(adv, x)) <= rms**2 * (1 + 1e-4)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("momentum", [0.0, 0.75])
def test_pgd_options_deterministic_and_effective(optimizer, momentum):
    model = toy_model()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    obj = MimicAway()
    run = lambda seed: PGD(model, obj, eps=8 / 255, steps=4, seed=seed, precision="fp32", optimizer=optimizer,  # noqa: E731
                           momentum=momentum, rms=3 / 255)(x)
    a = run(1)
    assert torch.equal(a, run(1)) and not torch.equal(a, run(2))
    loss = obj.setup(model, x)
    noise = project(x + (torch.rand(x.shape, generator=torch.Generator().manual_seed(9)) * 2 - 1) * 8 / 255, x, 8 / 255, 3 / 255)
    with torch.no_grad():
        assert bool((loss(a) < loss(noise)).all())


def test_pgd_rejects_bad_options():
    with pytest.raises(ValueError, match="optimizer"):
        PGD(toy_model(), MimicAway(), optimizer="lbfgs")
    with pytest.raises(ValueError, match="momentum"):
        PGD(toy_model(), MimicAway(), momentum=1.0)
    with pytest.raises(ValueError, match="rms"):
        PGD(toy_model(), MimicAway(), rms=-1.0)


def test_mimic_away_is_registered_and_pushes_the_view_away():
    assert OBJECTIVES["mimic-away"] is MimicAway and MimicAway.needs_decoder
    model = toy_model()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    loss = make_objective("mimic-away").setup(model, x)
    adv = PGD(model, MimicAway(), eps=8 / 255, steps=4, precision="fp32")(x)
    with torch.no_grad():
        assert float(loss(x)) == pytest.approx(1.0)
        v0 = model.decode(model.encode(x))
        assert float(loss(adv)) < 1 and float(mse(model.decode(model.encode(adv)), v0)) > 0


# ---- through Protector ---------------------------------------------------------------------------------


def test_protector_masked_budget_keeps_linf_and_psnr(models_dir):
    from glazeish.config import ProtectConfig
    from glazeish.imageio import Artwork
    from glazeish.protect import Protector

    g = np.random.default_rng(0)
    rgb = np.full((64, 96, 3), 200, np.uint8)
    rgb[:, 48:] = np.clip(120 + g.normal(0, 40, (64, 48, 3)), 0, 255).astype(np.uint8)
    cfg = ProtectConfig(eps_levels=9, rms_levels=3, budget="masked", budget_cap=3, budget_floor=0.25, steps=2,
                        objective="mimic-away",
                        robust="", models_dir=str(models_dir), precision="fp32", device="cpu", optimizer="sign",
                        momentum=0.5)
    p = Protector(cfg)
    assert p.eps == pytest.approx(9 / 255) and cfg.rms == pytest.approx(3 / 255)
    out = p.protect(Artwork(rgb=rgb)).rgb
    d = out.astype(np.int16) - rgb.astype(np.int16)
    assert np.abs(d).max() <= 9
    assert np.sqrt(np.mean(d.astype(np.float64) ** 2)) <= 3.0 + 0.3  # + 8-bit rounding
    assert np.abs(d[:, :40]).max() <= 1  # the flat half: floor 0.25·3 levels, rounded
    assert np.abs(d[:, 56:]).max() > 3  # the texture takes more than eps
    again = Protector(cfg).protect(Artwork(rgb=rgb)).rgb
    assert np.array_equal(out, again)


def test_protect_config_rejects_bad_budget_and_steps():
    from glazeish.config import ProtectConfig

    for bad, match in ((dict(budget="masked", budget_cap=0.5), "budget cap"), (dict(budget="lpips"), "budget"),
                       (dict(rms_levels=-1), "rms"), (dict(optimizer="sgd"), "optimizer"),
                       (dict(schedule="step"), "schedule"), (dict(transform_order="shuffle"), "transform order"),
                       (dict(momentum=1.0), "momentum"), (dict(eot_reference="purified"), "EOT reference")):
        with pytest.raises(ValueError, match=match):
            ProtectConfig(**bad)


def test_the_default_preset_is_the_masked_energy_bounded_cloak():
    """The preset's budget fields reach the config; an explicit budget leaves the preset's energy bound out."""
    from glazeish.config import ProtectConfig

    c = ProtectConfig()
    assert (c.budget, c.eps_levels, c.budget_cap, c.rms_levels, c.objective, c.transform_order) == (
        "masked", 12, 3.0, 2.95, "mimic-away", "cycle")
    flat = ProtectConfig(budget="flat", eps_levels=4)
    assert flat.budget == "flat" and flat.rms_levels is None
    assert ProtectConfig(intensity="low", budget="flat").rms_levels is None  # an explicit budget drops the preset's rms
    assert (ProtectConfig(intensity="low").budget, ProtectConfig(intensity="low").rms_levels) == ("masked", 2.5)
    assert ProtectConfig().fingerprint() != ProtectConfig(rms_levels=3).fingerprint()


def test_coarse_steps_and_cycled_transforms_keep_the_budget_and_seed():
    from glazeish.transforms import make_transforms

    model = toy_model()
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(4))
    eps = 6 / 255
    run = lambda seed, **kw: PGD(model, MimicAway(), eps=eps, steps=3, seed=seed, precision="fp32", rms=2 / 255,  # noqa: E731
                                 transforms=make_transforms("jpeg,identity"), **kw)(x)
    for kw in (dict(coarse=8), dict(transform_order="cycle"), dict(coarse=4, transform_order="cycle")):
        a = run(5, **kw)
        assert float((a - x).abs().max()) <= eps + 1e-6 and float(mse(a, x)) <= (2 / 255) ** 2 * (1 + 1e-4)
        assert torch.equal(a, run(5, **kw))
    assert not torch.equal(run(5, coarse=8), run(5))
    with pytest.raises(ValueError, match="transform_order"):
        PGD(model, MimicAway(), transform_order="shuffle")


def test_cycled_transforms_follow_the_list():
    seen = []

    class Spy:
        def __init__(self, name):
            self.name = name

        def __call__(self, x, rng):
            seen.append(self.name)
            return x

    PGD(toy_model(), MimicAway(), steps=5, precision="fp32", transforms=[Spy("a"), Spy("b")],
        transform_order="cycle")(torch.rand(1, 3, 8, 8))
    assert seen == ["a", "b", "a", "b", "a"]


def test_protector_through_the_adaptive_purifier_with_a_transformed_reference(models_dir):
    """EOT over the IMPRESS++-style purifier, each step pushed away from the equally purified original's view:
    the cloak keeps its budget and its seed (same bytes twice) and differs from the clean-reference cloak."""
    from glazeish.config import ProtectConfig
    from glazeish.imageio import Artwork
    from glazeish.protect import Protector

    g = np.random.default_rng(1)
    rgb = np.clip(128 + g.normal(0, 50, (64, 64, 3)), 0, 255).astype(np.uint8)
    cfg = ProtectConfig(steps=3, robust="purify,jpeg,identity", eot_reference="transformed",
                        models_dir=str(models_dir), precision="fp32", device="cpu")
    out = Protector(cfg).protect(Artwork(rgb=rgb)).rgb
    d = out.astype(np.int16) - rgb.astype(np.int16)
    assert 0 < np.abs(d).max() <= cfg.eps_levels
    assert np.array_equal(out, Protector(cfg).protect(Artwork(rgb=rgb)).rgb)
    clean = Protector(cfg.replace(eot_reference="clean")).protect(Artwork(rgb=rgb)).rgb
    assert not np.array_equal(out, clean)
    assert cfg.fingerprint()["eot_reference"] == "transformed"
