"""The ``diffusers:<path>`` encoder path, with tiny randomly initialised models saved in the test."""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from glazeish.attack import PGD  # noqa: E402
from glazeish.encoders import load_encoder  # noqa: E402
from glazeish.objectives import Untargeted  # noqa: E402

TINY = {
    "AutoencoderKL": dict(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, layers_per_block=1,
        scaling_factor=0.18215,
    ),
    "AutoencoderTiny": dict(
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1), latent_channels=4,
    ),
    "AutoencoderKLFlux2": dict(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, layers_per_block=1,
    ),
    "AutoencoderDC": dict(
        latent_channels=4, encoder_block_types="ResBlock", decoder_block_types="ResBlock",
        encoder_block_out_channels=(8, 16), decoder_block_out_channels=(8, 16),
        encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1),
        encoder_qkv_multiscales=((), ()), decoder_qkv_multiscales=((), ()),
        decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.5,
    ),
}


@pytest.mark.parametrize("cls_name", list(TINY))
def test_tiny_diffusers_vae_loads_encodes_decodes_and_is_attackable(tmp_path, cls_name):
    torch.manual_seed(0)
    cls = getattr(diffusers, cls_name)
    vae = cls(**TINY[cls_name]).eval()
    vae.save_pretrained(tmp_path / "vae")
    model = load_encoder(f"diffusers:{tmp_path / 'vae'}")
    assert model.name.startswith("diffusers:")
    m = model.multiple
    assert m in (2, 4, 8, 16)
    x = torch.rand(1, 3, 4 * m, 4 * m)
    z = model.encode(x)
    assert z.shape[-1] == 4
    y = model.decode(z)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    adv = PGD(model, Untargeted(), eps=8 / 255, steps=2, precision="fp32")(x)
    assert float((adv - x).abs().max()) <= 8 / 255 + 1e-6
    with torch.no_grad():
        assert not torch.allclose(model.encode(adv), z)


def test_scaling_and_input_convention(tmp_path):
    """The wrapper feeds [-1, 1] to the VAE and scales the latent mean by scaling_factor."""
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(**TINY["AutoencoderKL"]).eval()
    vae.save_pretrained(tmp_path / "vae")
    model = load_encoder(f"diffusers:{tmp_path / 'vae'}")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = vae.encode(x * 2 - 1).latent_dist.mean * 0.18215
        assert torch.allclose(model.encode(x), expected, atol=1e-5)


def test_pipeline_folder_uses_its_vae_subfolder(tmp_path):
    torch.manual_seed(0)
    vae = diffusers.AutoencoderTiny(**TINY["AutoencoderTiny"]).eval()
    vae.save_pretrained(tmp_path / "pipe" / "vae")
    (tmp_path / "pipe" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    model = load_encoder(f"diffusers:{tmp_path / 'pipe'}")
    assert model.encode(torch.rand(1, 3, 64, 64)).shape[1] == 4


def test_bad_diffusers_path_is_one_clear_error(tmp_path):
    from glazeish.weights import WeightsError

    with pytest.raises(WeightsError, match="missing: no such folder"):  # a local path: no network attempt
        load_encoder(f"diffusers:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="could not load a diffusers autoencoder"):
        load_encoder(f"diffusers:{tmp_path / 'empty'}")
