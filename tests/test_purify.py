"""Tests for glazeish.purify: the contract every registered purification keeps, plus per-op checks."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

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

# every registered purification: those that run a diffusers pipeline get a tiny random one built below
BUILDABLE = list(PURIFICATIONS)
IMPRESS_STEPS = 3
#: the argument a purification needs to be built (a platform re-encodes at its quality; 64 px are under its size)
SPECS = {"platform": "platform:facebook"}
# small settings for the tiny pipelines (1 denoising step; GrIDPure: one pass of 48 px tiles, 5 per 64 px image)
PIPELINE_KW = {
    "upscale": {"steps": 2, "guidance": 1.0},
    "diffpure": {"steps": 2, "strength": 0.5},
    "gridpure": {"steps": 2, "strength": 0.5, "grid": 48, "iterations": 1},
}


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


# ---------------------------------------------------------------------------------------------
# tiny randomly initialised diffusers pipelines, saved to a folder and loaded back by path (no downloads)


def _tiny_text_encoder(root: Path):
    """A CLIP tokenizer (letters only, no merges: everything else is the unknown token) and a 1-layer encoder."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=16)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
        max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=32))
    return tokenizer, text_encoder


def _unet(in_channels: int, **kw):
    import diffusers

    return diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8, **kw)


def _vae(blocks: int, **kw):
    import diffusers

    return diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16,) * blocks, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * blocks, up_block_types=("UpDecoderBlock2D",) * blocks,
        norm_num_groups=8, sample_size=32, mid_block_add_attention=False, **kw)


@pytest.fixture(scope="session")
def tiny_img2img(tmp_path_factory) -> Path:
    """A Stable-Diffusion-style pipeline folder (UNet + KL VAE at 4 px per latent + CLIP text encoder + DDIM)."""
    pytest.importorskip("transformers", reason="pipeline purifications need transformers (pip install transformers)")
    import diffusers

    root = tmp_path_factory.mktemp("tiny-sd")
    torch.manual_seed(0)
    tokenizer, text_encoder = _tiny_text_encoder(root)
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = diffusers.StableDiffusionPipeline(vae=_vae(3), text_encoder=text_encoder, tokenizer=tokenizer, unet=_unet(4),
                                             scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)
    pipe.save_pretrained(root / "pipeline")
    return root / "pipeline"


@pytest.fixture(scope="session")
def tiny_upscaler(tmp_path_factory) -> Path:
    """A Stable-Diffusion ×4-upscaler-style pipeline folder: the UNet sees latents and the low-resolution image
    (4 + 3 channels) and embeds the noise level as a class label; the VAE decodes 4 px per latent."""
    pytest.importorskip("transformers", reason="pipeline purifications need transformers (pip install transformers)")
    import diffusers

    root = tmp_path_factory.mktemp("tiny-upscaler")
    torch.manual_seed(0)
    tokenizer, text_encoder = _tiny_text_encoder(root)
    pipe = diffusers.StableDiffusionUpscalePipeline(
        vae=_vae(3, scaling_factor=0.08333), text_encoder=text_encoder, tokenizer=tokenizer,
        unet=_unet(7, num_class_embeds=1000), low_res_scheduler=diffusers.DDPMScheduler(),
        scheduler=diffusers.DDIMScheduler(prediction_type="v_prediction"), max_noise_level=350)
    pipe.save_pretrained(root / "pipeline")
    return root / "pipeline"


@pytest.fixture
def one_thread():
    """Run the tiny pipelines on one thread: as fast as two on an idle machine, and they do not slow to a crawl
    (thread hand-offs between many tiny kernels) when other jobs keep the cores busy."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def build(name: str, request: pytest.FixtureRequest, **kw) -> Purification:
    """Build ``name``: the model for those that need one, a tiny pipeline (by path) for those that run one."""
    cls = PURIFICATIONS[name]
    if cls.needs_model:
        kw["model"] = request.getfixturevalue("taef2")
        if name in ("impress", "impress++", "cat"):
            kw.setdefault("steps", IMPRESS_STEPS)
    if cls.needs_pipeline:
        request.getfixturevalue("one_thread")
        key = "upscaler" if cls.needs_pipeline == "upscaler" else "pipeline"
        kw.setdefault(key, str(request.getfixturevalue(f"tiny_{cls.needs_pipeline}")))
        for k, v in PIPELINE_KW.get(name, {}).items():
            kw.setdefault(k, v)
    return make_purification(SPECS.get(name, name), **kw)


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


@pytest.mark.parametrize("name", ["noise0.05", "impress++"])
def test_random_purifications_purify_a_batch_alike(name):
    """The figures purify original, cloak and baselines in one batch: one noise draw for all of them (a paired
    comparison), and a single image gets the draw it gets alone."""
    from glazeish.encoders import LatentModel

    ae = LatentModel("fake", torch.nn.AvgPool2d(4), torch.nn.Upsample(scale_factor=4, mode="bilinear"), multiple=4)
    p = make_purification(name, model=ae, **({"steps": 0} if name == "impress++" else {}))
    x = textured(b=1).expand(3, -1, -1, -1).contiguous()
    y = p(x)
    assert torch.equal(y[0], y[1]) and torch.equal(y[0], y[2])
    assert torch.equal(p(x[:1])[0], y[0])
    assert float((y - x).abs().max()) > 0.05


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
    for name in ("ae", "impress", "impress++", "cat"):
        assert PURIFICATIONS[name].needs_model
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


def test_webp_takes_its_quality_as_a_setting():
    assert make_purification("webp").name == "webp" and make_purification("webp:80").name == "webp"
    p = make_purification("webp:50")
    assert p.name == "webp50" and p.value == 50 and "quality 50" in p.description
    x = textured(1, 48, 48)
    assert mad(p(x), x) > mad(make_purification("webp:95")(x), x)  # lower quality, larger change
    with pytest.raises(ValueError, match=r"\[1, 100\]"):
        make_purification("webp:0")


def test_cat_trains_adapters_until_the_autoencoder_reproduces_the_image(taef2):
    x = textured(2, 64, 64)
    before = {k: v.clone() for k, v in taef2.state_dict().items()}
    # no steps: the adapters start at zero (B = 0), so the output is the model's own round trip
    with torch.no_grad():
        assert torch.allclose(make_purification("cat", model=taef2, steps=0)(x), taef2.round_trip(x), atol=1e-6)
    p = make_purification("cat", model=taef2, steps=8, lr=1e-3, rank=8)
    y = p(x)
    with torch.no_grad():  # the adapted round trip is closer to each image than the model's own
        own = (taef2.round_trip(x) - x).square().flatten(1).mean(1)
    assert ((y - x).square().flatten(1).mean(1) < own).all()
    # each image its own adapter, from the same seeded start: the output of one does not depend on the batch
    assert torch.allclose(p(x[:1]), y[:1], atol=1e-5) and torch.equal(p(x), y)
    # the model it was given is untouched (a copy is adapted)
    assert all(torch.equal(v, before[k]) for k, v in taef2.state_dict().items())
    with pytest.raises(ValueError, match="target"):
        make_purification("cat", model=taef2, target="unet")


# ---------------------------------------------------------------------------------------------
# purifications that run a diffusers pipeline (tiny random ones, loaded by path)


def test_pipeline_purifications_need_a_pipeline():
    with pytest.raises(ValueError, match="needs --upscaler PATH"):
        make_purification("upscale")
    with pytest.raises(ValueError, match="needs --upscaler PATH"):
        make_purifications("jpeg75,upscale")
    for name in ("diffpure", "gridpure"):
        with pytest.raises(ValueError, match="needs pipeline=PATH"):
            make_purification(name)
    piped = {n for n, c in PURIFICATIONS.items() if c.needs_pipeline}
    assert piped == {"upscale", "diffpure", "gridpure"}
    assert not piped & (set(DEFAULT_PURIFICATIONS) | set(QUICK_PURIFICATIONS))


def _unet_calls(pipe) -> list[dict]:
    """Record the keyword arguments of every UNet forward call."""
    calls: list[dict] = []
    pipe.unet.register_forward_pre_hook(lambda mod, args, kwargs: calls.append(kwargs), with_kwargs=True)
    return calls


@pytest.mark.usefixtures("one_thread")
def test_upscale_conditions_on_320_but_adds_no_noise(tiny_upscaler, monkeypatch):
    p = make_purification("upscale", upscaler=str(tiny_upscaler), steps=2)
    assert (p.noise, p.noise_level, p.added_noise_level, p.guidance) == (0.1, 320, 0, 9.0)
    assert make_purification("upscale", upscaler=str(tiny_upscaler)).steps == 75
    sched = p.pipe.low_res_scheduler
    levels = []
    real = sched.add_noise
    monkeypatch.setattr(sched, "add_noise", lambda img, noise, t: levels.append(t.tolist()) or real(img, noise, t))
    calls = _unet_calls(p.pipe)
    x = textured(1, 40, 24)
    y = p(x)
    assert y.shape == x.shape
    # the authors' fork: noise_level=320, noise_level_sub=320 -> the image is noised at level 0, the UNet told 320
    assert levels == [[0]]
    assert len(calls) == 2 and all(c["class_labels"].tolist() == [320, 320] for c in calls)  # CFG: batch of 2
    assert sched.add_noise.__name__ == "<lambda>"  # our wrapper is gone, the caller's is back
    # stock diffusers behaviour on request: noised at noise_level
    levels.clear()
    make_purification("upscale", upscaler=p.pipe, steps=2, added_noise_level=None)(x)
    assert levels == [[320]]
    # the Gaussian noise is part of it, and it is seeded
    assert not torch.equal(make_purification("upscale", upscaler=p.pipe, steps=2, noise=0.0)(x), y)
    assert not torch.equal(make_purification("upscale", upscaler=p.pipe, steps=2, seed=1)(x), y)


@pytest.mark.usefixtures("one_thread")
def test_upscale_prompt_can_be_a_captioner(tiny_upscaler):
    seen = []

    def caption(img):
        seen.append(img.size)
        return "an illustration of stripes"

    p = make_purification("upscale", upscaler=str(tiny_upscaler), steps=2, prompt=caption)
    x = textured(2, 24, 32)
    p(x)
    assert seen == [(32, 24), (32, 24)]  # called on each input image (PIL: width, height)


@pytest.mark.usefixtures("one_thread")
def test_diffpure_runs_int_steps_times_strength(tiny_img2img):
    p = make_purification("diffpure", pipeline=str(tiny_img2img), steps=4, strength=0.5, guidance=1.0)
    calls = _unet_calls(p.pipe)
    x = textured(2, 40, 56)
    y = p(x)
    assert len(calls) == 2 * 2  # 2 images, int(4 * 0.5) steps each, no classifier-free guidance
    # one pipeline call per image, each seeded alike: a batch is its images one at a time
    assert torch.equal(p(x[1:]), y[1:])
    # the defaults: Hoenig et al.'s strength 0.2 and the pipeline's own 50 steps
    d = make_purification("diffpure", pipeline=p.pipe)
    assert (d.strength, d.steps, d.guidance, d.prompt) == (0.2, 50, None, "")
    with pytest.raises(ValueError, match="no denoising step"):
        make_purification("diffpure", pipeline=p.pipe, steps=3, strength=0.2)
    with pytest.raises(ValueError, match="strength"):
        make_purification("diffpure", pipeline=p.pipe, strength=0)


@pytest.mark.usefixtures("one_thread")
def test_diffpure_needs_an_img2img_pipeline(tiny_upscaler):
    import diffusers

    up = diffusers.DiffusionPipeline.from_pretrained(str(tiny_upscaler))
    with pytest.raises(ValueError, match="img2img"):
        make_purification("diffpure", pipeline=up)


@pytest.mark.usefixtures("one_thread")
def test_gridpure_tiles_merge_and_blend(tiny_img2img, monkeypatch):
    p = make_purification("gridpure", pipeline=str(tiny_img2img), steps=2, strength=0.5, grid=32, iterations=3)
    d = make_purification("gridpure", pipeline=p.pipe)
    assert (d.strength, d.steps, d.iterations, d.gamma, d.grid, d.stride, d.guidance) == (
        0.01, 1000, 20, 0.1, 256, 128, 1.0)
    # tiles every half tile, the last flush with the edge (GrIDPure's 256/128 grid on a 512 image: 3 per axis)
    assert p.starts(512, 256, 128) == [0, 128, 256]
    assert p.starts(600, 256, 128) == [0, 128, 256, 344]
    assert p.starts(20, 20, 10) == [0]
    # with a purifier that returns each tile as it is, merging gives the image back exactly
    shapes = []

    def same(a, gen, prompt):
        shapes.append(a.shape)
        return a.astype(np.float32) / 255

    monkeypatch.setattr(p, "purify_array", same)
    a = (textured(1, 45, 67, seed=4)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.allclose(p.grid_pass(a, None, ""), a / 255, atol=1e-6)
    # 45x67 with 32 px tiles at stride 16: rows at 0, 13; columns at 0, 16, 32, 35; plus the corners tile
    assert shapes == [(32, 32, 3)] * 8 + [(32, 32, 3)]
    # with a purifier that returns black, each iteration keeps gamma of what it was given (8 bits between)
    monkeypatch.setattr(p, "purify_array", lambda a, gen, prompt: np.zeros(a.shape, np.float32))
    x = torch.full((1, 3, 45, 67), 200 / 255)
    expect = 200.0
    for _ in range(3):
        expect = round(0.1 * expect)
    assert torch.allclose(p(x), torch.full_like(x, expect / 255))


@pytest.mark.usefixtures("one_thread")
def test_make_purifications_passes_the_pipeline(tiny_img2img):
    ps = make_purifications("jpeg75,diffpure,gridpure", pipeline=str(tiny_img2img), steps=2, strength=0.5, seed=3)
    assert [p.name for p in ps] == ["jpeg75", "diffpure", "gridpure"]
    assert ps[1].seed == ps[2].seed == 3 and ps[1].steps == ps[2].steps == 2 and ps[2].strength == 0.5


@pytest.mark.usefixtures("one_thread")
def test_gridpure_real_pass_is_seeded(tiny_img2img):
    p = make_purification("gridpure", pipeline=str(tiny_img2img), steps=2, strength=0.5, grid=32, iterations=2)
    x = textured(1, 48, 40, seed=5)
    y = p(x)
    assert y.shape == x.shape and torch.equal(torch.round(y * 255) / 255, y)
    assert torch.equal(p(x), y)
    assert not torch.equal(make_purification("gridpure", pipeline=p.pipe, steps=2, strength=0.5, grid=32,
                                             iterations=2, seed=1)(x), y)


# ---------------------------------------------------------------------------------------------
# registry and construction by name


def test_lists_name_registered_purifications():
    assert all(n in PURIFICATIONS for n in DEFAULT_PURIFICATIONS + QUICK_PURIFICATIONS)
    required = {"jpeg95", "jpeg75", "jpeg50", "webp", "resize0.5", "resize0.75", "blur1", "blur2"}
    required |= {"noise0.05", "median3", "bits5", "tvd", "bilateral", "ae", "impress", "upscale"}
    required |= {"impress++", "diffpure", "gridpure"}
    assert all(n in PURIFICATIONS for n in required)  # the old setting names are aliases of jpeg:Q, resize:F, ...


def test_settings_are_arguments_and_the_old_names_aliases():
    ps = make_purifications("jpeg:60,resize:0.5,blur:2,noise:0.1,jpeg75,resize0.5")
    assert [p.name for p in ps] == ["jpeg60", "resize0.5", "blur2", "noise0.1", "jpeg75"]  # resize0.5 once
    x = textured(1, 32, 32)
    assert torch.equal(make_purification("jpeg75")(x), make_purification("jpeg:75")(x))
    assert make_purification("jpeg").name == "jpeg75"  # the default setting
    for bad, phrase in [("jpeg:0", "must lie in [1, 100]"), ("resize:1.5", "must lie in (0, 1]"),
                        ("blur:0", "must be above 0"), ("jpeg:high", "'high' is not a number (e.g. jpeg:75)"), ("jpeg:7.5", "must be a whole number, not 7.5")]:
        with pytest.raises(ValueError, match=re.escape(phrase)):
            make_purification(bad)
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
        PURIFICATIONS.unregister("test-invert")


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
