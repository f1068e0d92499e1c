"""EOT transforms: shape, range, determinism, gradients, and the registry."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from conftest import assert_same_bits_on_threads
from glazeish.transforms import (
    DEFAULT_ROBUST,
    JPEG,
    TRANSFORMS,
    AutoencoderRoundTrip,
    Transform,
    make_transforms,
    register_transform,
)

MODELS = Path(os.environ.get("GLAZEISH_MODELS") or Path(__file__).resolve().parents[2] / "shared" / "models")
NEEDS_NO_MODEL = sorted(n for n, cls in TRANSFORMS.items() if not getattr(cls, "needs_model", False))


def smooth_image(b: int = 2, h: int = 72, w: int = 88, seed: int = 0) -> torch.Tensor:
    """Image-like test input: low-frequency colour blobs plus mild texture, in [0, 1].

    Sizes deliberately not multiples of 16 (JPEG blocks) nor of 8 (latent grid).
    """
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(b, 3, h // 8 + 1, w // 8 + 1, generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    img = img + 0.05 * torch.randn(b, 3, h, w, generator=g)
    return img.clamp(0, 1)


def _FakeAE():
    """A tiny differentiable LatentModel with a decoder (4x down, 4x up)."""
    from glazeish.encoders import LatentModel

    return LatentModel("fake", torch.nn.AvgPool2d(4), torch.nn.Upsample(scale_factor=4, mode="bilinear"), multiple=4)


#: transforms that are built only with an argument, and the spec these tests build them with
NEEDS_ARG = {"platform": "platform:tumblr"}


def build(name: str, model=None) -> Transform:
    return make_transforms(NEEDS_ARG.get(name, name), model=model)[0]


def test_registry_has_the_documented_transforms():
    assert {"jpeg", "resize", "blur", "shift", "noise", "identity", "ae", "purify"} <= set(TRANSFORMS)
    assert NEEDS_MODEL == ["ae", "purify"]
    assert [t.name for t in make_transforms(DEFAULT_ROBUST)] == DEFAULT_ROBUST.split(",")


NEEDS_MODEL = sorted(set(TRANSFORMS) - set(NEEDS_NO_MODEL))


@pytest.mark.parametrize("name", NEEDS_NO_MODEL + NEEDS_MODEL)
def test_shape_range_determinism_and_gradient(name):
    t = build(name, model=_FakeAE() if name in NEEDS_MODEL else None)
    x = smooth_image().requires_grad_(True)
    y = t(x, random.Random(123))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.detach().min()) >= 0 and float(y.detach().max()) <= 1
    # same seed -> the same parameters and noise -> the same output
    y2 = t(x, random.Random(123))
    assert torch.equal(y, y2)
    # gradients reach the input
    y.square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.cpu_level
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_same_bits_on_any_number_of_threads(name, request):
    """The cloak's bytes must not depend on the thread count (plain bilinear interpolation's CPU kernel rounded
    differently on 1, 2 and 3 threads, and so did every cloak made through ``resize``)."""
    t = build(name, model=request.getfixturevalue("taef2") if name in NEEDS_MODEL else None)
    x0 = smooth_image(1, 256, 288).contiguous(memory_format=torch.channels_last)  # big enough to be split
    gy = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    assert_same_bits_on_threads(t, x0, gy)


@pytest.mark.parametrize("name", ["jpeg", "resize", "blur", "shift", "noise", "purify"])
def test_different_seeds_draw_different_parameters(name):
    t = build(name, model=_FakeAE() if name in NEEDS_MODEL else None)
    x = smooth_image(b=1)
    outs = {tuple(t(x, random.Random(s)).flatten()[::97].tolist()) for s in range(6)}
    assert len(outs) > 1


@pytest.mark.parametrize("name", ["jpeg", "resize", "blur", "shift", "noise"])
def test_changes_the_image(name):
    x = smooth_image(b=1)
    changed = [float((build(name)(x, random.Random(s)) - x).abs().mean()) for s in range(4)]
    assert max(changed) > 1e-4


def test_jpeg_changes_more_at_low_quality():
    # grey, so that 4:2:0 chroma subsampling (the same at every quality) does not dominate the error
    x = smooth_image(b=1, h=64, w=64)[:, :1].expand(-1, 3, -1, -1)
    err = {q: float((JPEG(q)(x, random.Random(0)) - x).abs().mean()) for q in (50, 95)}
    assert err[50] > 2 * err[95] > 0


def test_jpeg_quality_range_is_50_to_95():
    assert JPEG().quality == (50.0, 95.0)
    with pytest.raises(ValueError):
        JPEG((10, 120))


def test_shift_is_a_whole_pixel_translation():
    x = smooth_image(b=1, h=40, w=40)
    t = build("shift")
    for seed in range(5):
        y = t(x, random.Random(seed))
        # the interior is the input moved by whole pixels: some integer offset matches exactly
        hits = [
            (dy, dx)
            for dy in range(-8, 9)
            for dx in range(-8, 9)
            if torch.equal(y[..., 10:30, 10:30], x[..., 10 + dy : 30 + dy, 10 + dx : 30 + dx])
        ]
        assert hits


def test_make_transforms_parsing_and_errors():
    assert make_transforms("") == []
    assert [t.name for t in make_transforms(" jpeg , blur,,")] == ["jpeg", "blur"]
    assert [t.name for t in make_transforms(["noise", "identity"])] == ["noise", "identity"]
    with pytest.raises(ValueError, match="bogus"):
        make_transforms("jpeg,bogus")
    with pytest.raises(ValueError, match="decoder"):
        make_transforms("ae")


def test_ae_needs_a_decoder():
    class NoDecoder:
        name = "enc-only"
        has_decoder = False

    with pytest.raises(ValueError, match="enc-only"):
        AutoencoderRoundTrip(NoDecoder())


def test_register_transform_adds_by_name():
    @register_transform
    class Invert(Transform):
        name = "_test_invert"

        def __call__(self, x, rng):
            return 1 - x

    try:
        (t,) = make_transforms("_test_invert")
        x = smooth_image(b=1)
        assert torch.allclose(t(x, random.Random(0)), 1 - x)
    finally:
        TRANSFORMS.unregister("_test_invert")


def test_works_as_pgd_transforms():
    """The attack calls ``rng.choice(self.transforms)(x_adv, rng)``: mimic it for a few steps."""
    rng = random.Random(0)
    ts = make_transforms("jpeg,resize,blur,shift,noise,identity")
    x = smooth_image(b=1, h=32, w=32).requires_grad_(True)
    for _ in range(12):
        y = rng.choice(ts)(x, rng)
        (g,) = torch.autograd.grad(y.mean(), x)
        assert torch.isfinite(g).all()


@pytest.fixture(scope="module")
def taef2():
    if not (MODELS / "taef2_encoder.pth").is_file() or not (MODELS / "taef2_decoder.pth").is_file():
        pytest.skip(f"taef2 weights not found in {MODELS} (set GLAZEISH_MODELS to the folder holding them)")
    from glazeish.encoders import load_encoder

    return load_encoder("taef2", MODELS)


def test_ae_round_trip_with_real_taef2(taef2):
    (t,) = make_transforms("ae", model=taef2)
    x = smooth_image(b=1, h=64, w=72).requires_grad_(True)  # 72: the transform pads to the multiple
    y = t(x, random.Random(0))
    assert y.shape == x.shape and 0 <= float(y.detach().min()) and float(y.detach().max()) <= 1
    # a reconstruction: close to the input, but not the input
    err = float((y - x).detach().abs().mean())
    assert 0 < err < 0.15
    y.sum().backward()
    assert float(x.grad.abs().sum()) > 0


def test_plugs_into_pgd():
    """PGD(transforms=...) runs with every cheap transform and stays in the L∞ ball."""
    from glazeish.attack import PGD
    from glazeish.encoders import LatentModel
    from glazeish.objectives import Untargeted

    torch.manual_seed(0)
    enc = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, stride=2, padding=1)
    )
    model = LatentModel("tiny", enc.eval().requires_grad_(False), multiple=4)
    x = smooth_image(b=1, h=32, w=32)
    eps = 4 / 255
    ts = make_transforms("identity,jpeg,resize,blur,shift,noise")
    a = PGD(model, Untargeted(), eps=eps, steps=6, precision="fp32", transforms=ts, seed=3)(x)
    b = PGD(model, Untargeted(), eps=eps, steps=6, precision="fp32", transforms=ts, seed=3)(x)
    assert torch.equal(a, b)  # same seed, same transforms drawn, same result
    assert float((a - x).abs().max()) <= eps + 1e-6 and float((a - x).abs().max()) > 0


def test_purify_is_noise_then_a_bounded_consistency_move_with_a_straight_through_gradient():
    from glazeish.transforms import Purify

    ae = _FakeAE()
    x = smooth_image(b=1, h=32, w=32)
    noised = Purify(ae, noise=0.05, steps=0)(x, random.Random(7))
    purified = Purify(ae, noise=0.05, steps=3, eps=4 / 255, precision="fp32")(x, random.Random(7))
    # the same draws: the consistency steps start from the same noised image and stay within eps of it
    assert float((noised - x).abs().max()) > 0.05
    assert 0 < float((purified - noised).abs().max()) <= 4 / 255 + 1e-6
    # ... and bring the image closer to what the autoencoder reproduces
    gap = lambda v: float((ae.round_trip(v) - v).square().mean())  # noqa: E731
    assert gap(purified) < gap(noised)
    # the gradient passes the consistency steps as if they were constant: d(sum)/dx = 1 where not clipped
    xg = x.clone().requires_grad_(True)
    Purify(ae, noise=0.0, steps=2, precision="fp32")(xg, random.Random(0)).sum().backward()
    assert torch.equal(xg.grad, torch.ones_like(x))
    with pytest.raises(ValueError, match="non-negative"):
        Purify(ae, noise=-0.1)
    with pytest.raises(ValueError, match="decoder"):
        make_transforms("purify")


def test_a_jobs_precision_reaches_the_transforms_that_run_a_model():
    """``--precision fp32`` must hold inside the purify transform too (it would resolve ``auto`` on its own)."""
    (p, j) = make_transforms("purify,jpeg", model=_FakeAE(), precision="fp32")
    assert p.precision == "fp32" and not hasattr(j, "precision")
    assert make_transforms("purify", model=_FakeAE())[0].precision == "auto"


def test_pgd_reference_transformed_pushes_away_from_the_equally_transformed_original():
    """``reference="transformed"``: a transformed step compares against the untouched image under the same draw.
    With identity steps only it is the clean reference (the same bits); with JPEG steps it is a different attack;
    a bad value is refused before any work."""
    from glazeish.attack import PGD
    from glazeish.encoders import LatentModel
    from glazeish.objectives import Untargeted

    torch.manual_seed(0)
    enc = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, stride=2, padding=1)
    )
    model = LatentModel("tiny", enc.eval().requires_grad_(False), multiple=4)
    x = smooth_image(b=1, h=32, w=32)

    def run(names, reference):
        return PGD(model, Untargeted(), eps=4 / 255, steps=4, precision="fp32", seed=3, reference=reference,
                   transforms=make_transforms(names), transform_order="cycle")(x)

    assert torch.equal(run("identity", "clean"), run("identity", "transformed"))
    a, b = run("jpeg,identity", "clean"), run("jpeg,identity", "transformed")
    assert not torch.equal(a, b) and float((b - x).abs().max()) <= 4 / 255 + 1e-6
    assert torch.equal(b, run("jpeg,identity", "transformed"))  # the twin draw is reproducible too
    with pytest.raises(ValueError, match="reference"):
        PGD(model, Untargeted(), reference="purified")
