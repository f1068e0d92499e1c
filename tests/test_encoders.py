from __future__ import annotations

import shutil

import pytest
import torch

from glazeish import encoders, weights
from glazeish.encoders import Ensemble, LatentModel, load_encoder, load_encoders, parse_spec


def test_taef2_shapes_range_and_gradients(taef2):
    x = torch.rand(2, 3, 64, 96, requires_grad=True)
    z = taef2.encode(x)
    assert z.shape == (2, 32, 8, 12)
    y = taef2.decode(z)
    assert y.shape == x.shape and 0 <= float(y.detach().min()) and float(y.detach().max()) <= 1
    y.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_taef2_round_trip_is_a_real_autoencoder(taef2, flat_path):
    from conftest import crop_rgb
    from glazeish.imageio import to_tensor
    from glazeish.metrics import psnr

    x = to_tensor(crop_rgb(flat_path, 128, 128, 200, 150))
    with torch.no_grad():
        rt = taef2.decode(taef2.encode(x))
    assert float(psnr(rt, x)) > 22  # random weights give ~8 dB


def test_taesana_downscales_32x(taesana):
    z = taesana.encode(torch.rand(1, 3, 64, 128))
    assert z.shape == (1, 32, 2, 4)
    assert not taesana.has_decoder
    with pytest.raises(ValueError, match="no decoder"):
        taesana.decode(z)


def test_parse_spec_and_ensemble_multiple(taef2, taesana):
    assert parse_spec("taef2, taesana*0.5") == [("taef2", 1.0), ("taesana", 0.5)]
    with pytest.raises(ValueError):
        parse_spec("taef2*abc")
    ens = Ensemble([taef2, taesana], [1.0, 0.5])
    assert ens.multiple == 32 and ens.names == ["taef2", "taesana"]


def test_load_encoders_ensemble(models_dir):
    ens = load_encoders("taef2,taesana*0.25", models_dir)
    assert ens.names == ["taef2", "taesana"] and ens.weights == [1.0, 0.25]


def test_unknown_encoder_names_the_choices():
    with pytest.raises(ValueError, match="taef2"):
        load_encoder("nope")


def test_missing_weights_offline_message(tmp_path, monkeypatch):
    monkeypatch.setenv("GLAZEISH_OFFLINE", "1")
    monkeypatch.setenv("GLAZEISH_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("GLAZEISH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(weights.WeightsError) as e:
        load_encoder("taef2")
    msg = str(e.value)
    assert "taef2_encoder.pth" in msg and "https://github.com/madebyollin/taesd" in msg and "\n" not in msg


def test_download_failure_message_names_file_url_and_folder(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(weights.urllib.request, "urlopen", boom)
    with pytest.raises(weights.WeightsError) as e:
        weights.download("taesana_encoder.pth", tmp_path)
    msg = str(e.value)
    assert "taesana_encoder.pth" in msg and weights.WEIGHTS["taesana_encoder.pth"].url in msg and str(tmp_path) in msg
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_download_verifies_sha256(tmp_path, monkeypatch, models_dir):
    import io

    good = (models_dir / "taesana_encoder.pth").read_bytes()

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(weights.urllib.request, "urlopen", lambda *a, **k: Resp(good))
    assert weights.download("taesana_encoder.pth", tmp_path).read_bytes() == good
    monkeypatch.setattr(weights.urllib.request, "urlopen", lambda *a, **k: Resp(good[:-10] + b"0123456789"))
    with pytest.raises(weights.WeightsError, match="sha256"):
        weights.download("taesana_encoder.pth", tmp_path / "bad")
    assert not (tmp_path / "bad" / "taesana_encoder.pth").exists()


def test_corrupt_weights_are_refused(tmp_path, models_dir):
    shutil.copy(models_dir / "taesana_encoder.pth", tmp_path / "taesana_encoder.pth")
    with open(tmp_path / "taesana_encoder.pth", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    with pytest.raises(weights.WeightsError, match="sha256"):
        load_encoder("taesana", tmp_path)


def test_status_reports_presence(models_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("GLAZEISH_MODELS", raising=False)
    monkeypatch.setenv("GLAZEISH_CACHE", str(tmp_path))
    rows = {r["name"]: r for r in encoders.status(models_dir)}
    assert rows["taef2"]["present"] and rows["taesana"]["present"]
    rows = {r["name"]: r for r in encoders.status(tmp_path / "nothing")}
    assert not rows["taef2"]["present"]


def test_register_a_new_encoder():
    @encoders.register_encoder("toy-test", "a 4x average-pool encoder")
    def _toy(models_dir=None):
        return LatentModel("toy-test", torch.nn.AvgPool2d(4), None, multiple=4)

    try:
        m = load_encoder("toy-test")
        assert m.encode(torch.rand(1, 3, 16, 16)).shape == (1, 3, 4, 4)
    finally:
        encoders.REGISTRY.pop("toy-test")
