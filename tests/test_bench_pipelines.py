"""The diffusers img2img and LoRA paths of the bench, end to end, with a tiny randomly initialised
Stable-Diffusion-style pipeline built here (UNet2DConditionModel + AutoencoderKL + CLIPTextModel + a byte-level
CLIP tokenizer with no merges), saved to disk and loaded back by path as a user's pipeline would be."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

transformers = pytest.importorskip("transformers", reason="pipeline tests need transformers (pip install transformers)")
pytest.importorskip("peft", reason="the LoRA test needs peft (pip install peft)")

from glazeish.bench import harness  # noqa: E402
from glazeish.bench.harness import Bench, BenchConfig, read_rows  # noqa: E402
from glazeish.bench.pipelines import (  # noqa: E402
    Img2ImgMeasurer,
    PipelineConfig,
    load_pipeline,
    lora_metrics,
    lora_mimic,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELS_DIR = Path(os.environ.get("GLAZEISH_MODELS") or SHARED / "models")


def _byte_vocab() -> dict[str, int]:
    """CLIP's byte-to-unicode alphabet, each symbol alone and word-final, plus the two special tokens."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory) -> Path:
    """A tiny SD pipeline folder: 32×32 images, 4-channel latents at 16×16, random weights (seeded)."""
    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("tiny-sd")
    vocab = _byte_vocab()
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=16)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=16, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"], projection_dim=32))
    unet = diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=32, sample_size=32)
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        clip_sample=False, set_alpha_to_one=False)
    pipe = diffusers.StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                             scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)
    out = root / "pipeline"
    pipe.save_pretrained(out)
    return out


def _cfg(path: Path, **kw) -> PipelineConfig:
    base = dict(pipeline=str(path), prompt="a painting", strengths=(0.5,), steps=2, guidance=1.5, seed=0,
                lora_steps=3, lora_samples=2, resolution=32)
    base.update(kw)
    return PipelineConfig(**base)


def _img(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def test_img2img_measurer_is_seeded_and_reports_per_strength(tiny_pipeline):
    m = Img2ImgMeasurer(_cfg(tiny_pipeline, strengths=(0.3, 0.6)))
    assert sorted(m.metric_names) == sorted(f"img2img@{s}:{k}" for s in ("0.3", "0.6")
                                             for k in ("psnr", "ssim", "psnr_orig", "decoy_corr"))
    x = _img(32, 48, 0)  # non-square, like the flat images
    g = m.generate(x, 0.6)
    assert g.shape == x.shape and 0 <= float(g.min()) and float(g.max()) <= 1
    cache: dict = {}
    clean, other = m.measure(x, torch.cat([x, _img(32, 48, 1)]), cache)
    assert set(cache["img2img"]) == {0.3, 0.6}  # the original's generations, kept for the next versions
    # same input, same seed: the generated image is identical to the reference generation
    assert math.isinf(clean["img2img@0.6:psnr"]) and clean["img2img@0.6:decoy_corr"] == 0
    assert math.isfinite(other["img2img@0.6:psnr"]) and other["img2img@0.6:psnr"] > 0


def test_lora_trains_only_the_adapter_and_restores_the_base(tiny_pipeline):
    cfg = _cfg(tiny_pipeline)
    pipe = load_pipeline(cfg)
    base = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    sets = {"clean": [_img(32, 32, i) for i in range(2)], "noisy": [(_img(32, 32, i) + 0.2).clamp(0, 1) for i in range(2)]}
    results = lora_mimic(pipe, sets, cfg)
    assert set(results) == {"clean", "noisy"}
    for r in results.values():
        assert len(r.losses) == cfg.lora_steps and all(math.isfinite(v) for v in r.losses)
        assert r.samples.shape == (cfg.lora_samples, 3, 32, 32)
    # adapters deleted (peft leaves its wrappers: the base weights live on as "<layer>.base_layer.*")
    after = {k.replace(".base_layer", ""): v for k, v in pipe.unet.state_dict().items()}
    assert set(after) == set(base) and not any("lora" in k for k in after)
    assert all(torch.equal(base[k], after[k]) for k in base)  # base weights untouched
    rows = lora_metrics(results["noisy"], results["clean"], sets["clean"])
    assert len(rows) == cfg.lora_samples and {"lora:psnr", "lora:ssim", "lora:decoy_corr"} <= set(rows[0])
    same = lora_metrics(results["clean"], results["clean"], sets["clean"])
    assert math.isinf(same[0]["lora:psnr"])


@pytest.mark.slow
def test_bench_run_with_pipeline_end_to_end(tiny_pipeline, tmp_path):
    missing = [f for f in ("taef2_encoder.pth", "taef2_decoder.pth", "taesana_encoder.pth") if not (MODELS_DIR / f).is_file()]
    if missing:
        pytest.skip(f"encoder weights not found in {MODELS_DIR} (missing {', '.join(missing)}; set GLAZEISH_MODELS)")
    d = tmp_path / "imgs" / "paintings"
    d.mkdir(parents=True)
    for i in range(2):
        a = (_img(32, 32, i)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(a).save(d / f"p{i}.png")
    out = tmp_path / "out"
    cfg = BenchConfig(images=[str(d)], out=str(out), protections=["none", "random"], purifications=["none", "jpeg75"],
                      models_dir=str(MODELS_DIR), device="cpu", precision="fp32",
                      pipeline=_cfg(tiny_pipeline, lora_steps=2, lora_samples=1))
    Bench(cfg).run(progress=False)
    rows = read_rows(out / harness.CSV_NAME)
    metrics_by_pur: dict[str, set[str]] = {}
    for r in rows:
        metrics_by_pur.setdefault(r["purification"], set()).add(r["metric"])
    # img2img only after the purifications asked for (default: none)
    assert "img2img@0.5:psnr" in metrics_by_pur["none"] and "img2img@0.5:psnr" not in metrics_by_pur["jpeg75"]
    i2i = [r for r in rows if r["metric"] == "img2img@0.5:psnr" and r["protection"] == "random"]
    assert len(i2i) == 2 and all(math.isfinite(float(r["value"])) and r["clean"] == "inf" for r in i2i)
    lora = [r for r in rows if r["image"].startswith("lora:")]
    assert {r["protection"] for r in lora} == {"random"} and {r["metric"] for r in lora} >= {"lora:psnr", "lora:style"}
    assert all(r["clean"] == "inf" for r in lora if r["metric"] == "lora:psnr")
    # resumed: nothing recomputed, nothing duplicated
    n = len(rows)
    Bench(cfg).run(progress=False)
    assert len(read_rows(out / harness.CSV_NAME)) == n
