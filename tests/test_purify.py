"""Tests for glazeish.purify: the contract every registered purification keeps, plus per-op checks."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from glazeish import purify
from glazeish.purify import (
    DEFAULT_PURIFICATIONS,
    PURIFICATIONS,
    QUICK_PURIFICATIONS,
    Purification,
    make_purification,
    make_purifications,
    register_purification,
)

MODELS_DIR = Path(os.environ.get("GLAZEISH_MODELS") or Path(__file__).resolve().parents[2] / "shared" / "models")
TAEF2_FILES = ("taef2_encoder.pth", "taef2_decoder.pth")

# every registered purification that can be built here (upscale needs a diffusers upscaler on disk)
BUILDABLE = [n for n in PURIFICATIONS if n != "upscale"]
IMPRESS_STEPS = 3


def textured(b: int = 2, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    """A random image with structure at several scales: smooth colour field, stripes, fine noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, max(2, h // 8), max(2, w // 8), generator=g)
    field = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    stripes = 0.15 * torch.sin(xx * 0.9 + yy * 0.4)
    fine = 0.1 * torch.randn(b, 3, h, w, generator=g)
    return (0.8 * field + 0.1 + stripes + fine).clamp(0, 1)


@pytest.fixture(scope="session")
def taef2():
    missing = [f for f in TAEF2_FILES if not (MODELS_DIR / f).is_file()]
    if missing:
        pytest.skip(f"taef2 weights not found in {MODELS_DIR} (missing {', '.join(missing)}; set GLAZEISH_MODELS)")
    from glazeish.encoders import load_encoder

    return load_encoder("taef2", MODELS_DIR)


def build(name: str, request: pytest.FixtureRequest, **kw) -> Purification:
    """Build ``name``, loading the model only for the purifications that need one."""
    cls = PURIFICATIONS[name]
    if cls.needs_model:
        kw["model"] = request.getfixturevalue("taef2")
        if name in ("impress", "impress++"):
            kw.setdefault("steps", IMPRESS_STEPS)
    return make_purification(name, **kw)


def mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


# ---------------------------------------------------------------------------------------------
# the contract, for every registered purification


@pytest.mark.parametrize("name", BUILDABLE)
def test_contract(name, request):
    p = build(name, request)
    assert p.name and isinstance(p.name, str) and "," not in p.name
    assert p.description
    x = textured(2, 64, 64)
    x_before = x.clone()
    y = p(x)
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not y.requires_grad
    assert torch.equal(x, x_before), "the input must not be modified in place"
    # deterministic: the same instance twice, and a fresh instance
    assert torch.equal(p(x), y)
    assert torch.equal(build(name, request)(x), y)
    # it does something to a textured image
    assert mad(y, x) > 1e-3, f"{name} left a textured image (almost) unchanged"


@pytest.mark.parametrize("name", BUILDABLE)
def test_odd_size(name, request):
    p = build(name, request)
    for h, w in [(45, 67), (67, 45)]:
        x = textured(1, h, w, seed=1)
        y = p(x)
        assert y.shape == x.shape and y.dtype == torch.float32
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        assert mad(y, x) > 1e-3


@pytest.mark.parametrize("name", ["jpeg75", "blur1", "bits5", "resize0.5"])
def test_tiny_and_single_image(name):
    p = make_purification(name)
    x = textured(1, 5, 3, seed=2)
    assert p(x).shape == x.shape
    # a single C×H×W image is accepted and returned as such
    assert p(x[0]).shape == x[0].shape
    with pytest.raises(ValueError):
        p(torch.rand(1, 1, 8, 8))


def test_input_dtype_is_normalised():
    x = textured(1, 32, 32).to(torch.float64)
    y = make_purification("blur1")(x)
    assert y.dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# each op does what its name says


def test_jpeg_stronger_with_lower_quality():
    x = textured(2, 64, 64)
    d = {q: mad(make_purification(f"jpeg{q}")(x), x) for q in (95, 75, 50)}
    assert d[50] > d[75] > d[95] > 0


def test_jpeg_is_real_pillow_jpeg():
    import io

    import numpy as np
    from PIL import Image

    x = textured(1, 48, 40, seed=3)
    a = (x[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=75, subsampling=2)
    ref = torch.from_numpy(np.array(Image.open(buf).convert("RGB"))).permute(2, 0, 1).float() / 255
    assert torch.equal(make_purification("jpeg75")(x)[0], ref)


def test_webp_changes_and_quantises():
    x = textured(1, 64, 64)
    y = make_purification("webp")(x)
    assert torch.equal(torch.round(y * 255) / 255, y)  # decoded 8-bit image
    assert 1e-3 < mad(y, x) < 0.1


def test_resize_stronger_when_smaller():
    x = textured(2, 64, 64)
    assert mad(make_purification("resize0.5")(x), x) > mad(make_purification("resize0.75")(x), x) > 1e-3
    flat = torch.full((1, 3, 33, 47), 0.4)
    assert torch.allclose(make_purification("resize0.5")(flat), flat, atol=1e-5)


def test_blur_stronger_with_larger_sigma():
    x = textured(2, 64, 64)
    assert mad(make_purification("blur2")(x), x) > mad(make_purification("blur1")(x), x) > 1e-3
    flat = torch.full((1, 3, 20, 20), 0.7)
    assert torch.allclose(make_purification("blur2")(flat), flat, atol=1e-5)


def test_noise_statistics_and_seed():
    x = torch.full((2, 3, 64, 64), 0.5)
    y = make_purification("noise0.05")(x)
    assert abs(float((y - x).std()) - 0.05) < 0.005
    assert abs(float((y - x).mean())) < 0.005
    assert not torch.equal(make_purification("noise0.05", seed=1)(x), y)
    assert torch.equal(make_purification("noise0.05", seed=0)(x), y)


def test_median_removes_impulses():
    x = torch.full((1, 3, 21, 21), 0.3)
    x[..., 10, 10] = 1.0
    x[..., 3, 15] = 0.0
    assert torch.allclose(make_purification("median3")(x), torch.full_like(x, 0.3))


def test_bits5_levels():
    x = textured(2, 64, 64)
    y = make_purification("bits5")(x)
    for c in range(3):
        assert torch.unique(y[:, c]).numel() <= 32
    assert torch.allclose(y * 31, torch.round(y * 31), atol=1e-5)
    assert float((y - x).abs().max()) <= 0.5 / 31 + 1e-6


def _tv(x: torch.Tensor) -> float:
    return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())


def test_tvd_denoises():
    clean = torch.zeros(1, 3, 48, 48)
    clean[..., :, 24:] = 0.8  # a step edge
    clean += 0.1
    g = torch.Generator().manual_seed(0)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    y = make_purification("tvd")(noisy)
    assert _tv(y) < 0.5 * _tv(noisy)
    assert float((y - clean).square().mean()) < 0.5 * float((noisy - clean).square().mean())


def test_bilateral_keeps_edges_better_than_blur():
    x = torch.zeros(1, 3, 32, 32)
    x[..., :, 16:] = 1.0
    bil = make_purification("bilateral")(x)
    blur = make_purification("blur1")(x)
    assert mad(bil, x) < 0.5 * mad(blur, x)


# ---------------------------------------------------------------------------------------------
# model-based purifications (real taef2 weights)


def test_ae_is_the_round_trip(taef2):
    p = make_purification("ae", model=taef2)
    assert p.name == "ae:taef2"
    x = textured(2, 64, 64)
    with torch.no_grad():
        ref = taef2.decode(taef2.encode(x))
    assert torch.allclose(p(x), ref, atol=1e-6)
    # odd size: padded to a multiple of 8 and cropped back
    xo = textured(1, 45, 67)
    assert p(xo).shape == xo.shape


def test_ae_by_name_loads_the_encoder(taef2):
    p = make_purification("ae:taef2", models_dir=MODELS_DIR)
    assert p.name == "ae:taef2"
    with pytest.raises(ValueError, match="taesana"):
        make_purification("ae:taesana", model=taef2)


def test_model_purifications_need_a_decoder_model():
    for name in ("ae", "impress", "impress++"):
        assert purify.needs_model(name)
        with pytest.raises(ValueError, match="needs a model"):
            make_purification(name)

    class NoDecoder:
        name = "enc-only"
        has_decoder = False

    with pytest.raises(ValueError, match="decoder"):
        make_purification("ae", model=NoDecoder())


def test_impress_reduces_consistency_loss(taef2):
    p = make_purification("impress", model=taef2, steps=IMPRESS_STEPS)
    x = textured(2, 64, 64)
    y = p(x)
    with torch.no_grad():
        before, after = p.consistency(x), p.consistency(y)
    assert (after < before).all(), (before, after)
    # Adam moves each pixel by about lr per step: the image stays close to the input
    assert float((y - x).abs().max()) <= 1.5 * IMPRESS_STEPS * p.lr
    # with no steps it is the identity
    x0 = make_purification("impress", model=taef2, steps=0)(x)
    assert torch.equal(x0, x)


def test_impress_plus_plus_noises_then_optimises_within_the_bound(taef2):
    p = make_purification("impress++", model=taef2, steps=IMPRESS_STEPS, eps=4 / 255)
    assert (p.noise, p.lr, p.lr_min) == (0.05, 0.01, 1e-5)
    x = textured(2, 64, 64)
    xn = p.noised(x)
    # step 1: Gaussian noise sigma 0.05, clipped, stored as 8 bits
    grey = torch.full((1, 3, 64, 64), 0.5)
    assert abs(float((p.noised(grey) - grey).std()) - 0.05) < 0.005
    assert torch.equal(torch.round(xn * 255) / 255, xn)
    # step 2: the consistency loss goes down, and every pixel stays within eps of the noised image
    y = p(x)
    with torch.no_grad():
        before, after = p.consistency(xn), p.consistency(y)
    assert (after < before).all(), (before, after)
    assert float((y - xn).abs().max()) <= 4 / 255 + 1e-6
    # with no steps it is the Gaussian noising alone
    assert torch.equal(make_purification("impress++", model=taef2, steps=0)(x), xn)
    assert "impress++" not in DEFAULT_PURIFICATIONS


# ---------------------------------------------------------------------------------------------
# upscale needs a pipeline


def test_upscale_without_path_raises():
    with pytest.raises(ValueError, match="needs --upscaler PATH"):
        make_purification("upscale")
    with pytest.raises(ValueError, match="needs --upscaler PATH"):
        make_purifications("jpeg75,upscale")
    assert "upscale" not in DEFAULT_PURIFICATIONS and "upscale" not in QUICK_PURIFICATIONS


# ---------------------------------------------------------------------------------------------
# registry and construction by name


def test_lists_name_registered_purifications():
    assert set(DEFAULT_PURIFICATIONS) <= set(PURIFICATIONS)
    assert set(QUICK_PURIFICATIONS) <= set(PURIFICATIONS)
    required = {"jpeg95", "jpeg75", "jpeg50", "webp", "resize0.5", "resize0.75", "blur1", "blur2"}
    required |= {"noise0.05", "median3", "bits5", "tvd", "bilateral", "ae", "impress", "upscale", "impress++"}
    assert required <= set(PURIFICATIONS)
    for key, cls in PURIFICATIONS.items():
        assert cls.name == key and cls.description


def test_make_purifications_parsing(taef2):
    ps = make_purifications(" jpeg75, resize0.5 ,,jpeg75")
    assert [p.name for p in ps] == ["jpeg75", "resize0.5"]
    assert [p.name for p in make_purifications(["blur1", "bits5,median3"])] == ["blur1", "bits5", "median3"]
    assert [p.name for p in make_purifications("quick")] == QUICK_PURIFICATIONS
    assert make_purifications("") == [] and make_purifications("none") == []
    # keywords go to the constructors that take them
    ps = make_purifications("noise0.05,jpeg75,impress", model=taef2, seed=3, steps=2)
    assert ps[0].seed == 3 and ps[2].steps == 2
    assert [p.name for p in make_purifications("ae,blur2", model=taef2)] == ["ae:taef2", "blur2"]


def test_make_purifications_unknown_name():
    with pytest.raises(ValueError) as e:
        make_purifications("jpeg75,jpeg12")
    msg = str(e.value)
    assert "jpeg12" in msg and "jpeg75" in msg and "resize0.5" in msg and "impress" in msg
    with pytest.raises(ValueError):
        make_purification("nope")
    with pytest.raises(ValueError, match="takes no"):
        make_purification("jpeg75:taef2")


def test_register_a_new_purification():
    @register_purification
    class Invert(Purification):
        name = "test-invert"
        description = "1 - x"

        def apply(self, x):
            return 1 - x

    try:
        assert PURIFICATIONS["test-invert"] is Invert
        p = make_purifications("jpeg95,test-invert")[1]
        x = textured(1, 16, 16)
        assert torch.allclose(p(x), 1 - x)
        with pytest.raises(ValueError, match="already taken"):

            @register_purification
            class Other(Purification):
                name = "test-invert"

        with pytest.raises(ValueError):

            @register_purification
            class Nameless(Purification):
                pass

    finally:
        PURIFICATIONS.pop("test-invert", None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", BUILDABLE)
def test_cuda_matches_cpu(name, request):
    p = build(name, request)
    if p.needs_model:
        p.model.to("cuda")
    try:
        x = textured(1, 45, 67)
        y = p(x.cuda())
        assert y.is_cuda and y.shape == x.shape and y.dtype == torch.float32
        assert torch.equal(p(x.cuda()), y)
        if p.needs_model:
            p.model.to("cpu")
        # same op on the CPU: equal up to float and kernel differences (JPEG/WebP decode exactly alike)
        assert math.isclose(mad(p(x), x), mad(y.cpu(), x), rel_tol=0.05, abs_tol=2e-3)
    finally:
        if p.needs_model:
            p.model.to("cpu")
