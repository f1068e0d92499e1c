from __future__ import annotations

import shutil

import pytest
import torch

from glazeish import encoders, weights
from glazeish.encoders import Ensemble, LatentModel, TAESana, load_encoder, load_encoders, parse_ensemble

SANA = TAESana.weights[0]  # the declared weight file: name, sha256 and upstream URL live with the loader


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


def test_parse_ensemble_and_multiple(taef2, taesana):
    assert parse_ensemble("taef2, taesana*0.5") == [("taef2", 1.0), ("taesana", 0.5)]
    for bad in ("taef2*abc", "taef2*0", "taef2*-1", "taef2*nan", ","):
        with pytest.raises(ValueError):
            parse_ensemble(bad)
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
        weights.download(SANA, tmp_path)
    msg = str(e.value)
    assert "taesana_encoder.pth" in msg and SANA.url in msg and str(tmp_path) in msg
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
    assert weights.download(SANA, tmp_path).read_bytes() == good
    monkeypatch.setattr(weights.urllib.request, "urlopen", lambda *a, **k: Resp(good[:-10] + b"0123456789"))
    with pytest.raises(weights.WeightsError, match="sha256"):
        weights.download(SANA, tmp_path / "bad")
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
    assert rows["taef2"]["present"] and rows["taesana"]["present"] and "diffusers" not in rows
    (tmp_path / "nothing").mkdir()
    rows = {r["name"]: r for r in encoders.status(tmp_path / "nothing")}
    assert not rows["taef2"]["present"]


def test_a_model_folder_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(weights.WeightsError, match="does not exist"):
        load_encoder("taef2", tmp_path / "nonexistent")


def test_a_missing_diffusers_folder_is_one_line_and_no_network(tmp_path):
    with pytest.raises(weights.WeightsError, match="no such folder"):
        load_encoder(f"diffusers:{tmp_path / 'nonexistent'}")
    with pytest.raises(ValueError, match="needs a repo id or folder"):
        load_encoder("diffusers")


def test_register_a_new_encoder_is_one_class(tmp_path):
    torch.save(torch.nn.Conv2d(3, 4, 4, stride=4).state_dict(), tmp_path / "toy.pth")

    @encoders.register_encoder
    class Toy(encoders.EncoderLoader):
        name = "toy-test"
        description = "a 4x strided convolution"
        weights = (weights.WeightFile("toy.pth", weights.sha256_of(tmp_path / "toy.pth"), "https://example.org/"),)

        @classmethod
        def load(cls, models_dir=None):
            return LatentModel(cls.name, cls.state_into(torch.nn.Conv2d(3, 4, 4, stride=4), "toy.pth", models_dir),
                               multiple=4)

    try:
        m = load_encoder("toy-test", tmp_path)
        assert m.encode(torch.rand(1, 3, 16, 16)).shape == (1, 4, 4, 4)
        assert {r["name"] for r in encoders.status(tmp_path)} >= {"toy-test"}
        with pytest.raises(ValueError, match="already taken"):
            encoders.register_encoder(type("Other", (encoders.EncoderLoader,), {"name": "toy-test"}))
    finally:
        encoders.ENCODERS.unregister("toy-test")


def _on_threads(counts, fn):
    saved = torch.get_num_threads()
    try:
        out = []
        for n in counts:
            torch.set_num_threads(n)
            out.append(fn())
        return out
    finally:
        torch.set_num_threads(saved)


@pytest.mark.cpu_level
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_global_groupnorm_gives_the_same_bits_on_any_thread_count(dtype):
    """PyTorch's channels-last GroupNorm splits its sums over the threads (1 vs 2 threads gave other bits, and
    other cloaks); TAE's GroupNorm runs in the plain layout, whose sums do not depend on the thread count."""
    from glazeish.tae import PlainLayoutGroupNorm

    norm = PlainLayoutGroupNorm(4, 256)
    x = torch.randn(1, 256, 48, 40, generator=torch.Generator().manual_seed(0)).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)

    def run():
        xi = x.detach().clone().requires_grad_(True)
        y = norm(xi)
        return y.detach(), torch.autograd.grad(y.float().square().sum(), xi)[0]

    got = _on_threads((1, 2, 3), run)
    assert got[0][0].is_contiguous(memory_format=torch.channels_last)  # the layout the next conv wants
    assert torch.equal(got[0][0], torch.nn.GroupNorm(4, 256)(x.contiguous()).to(got[0][0].dtype))  # the same function
    for y, g in got[1:]:
        assert torch.equal(y, got[0][0]) and torch.equal(g, got[0][1])


@pytest.mark.cpu_level
def test_stride2_conv_is_nn_conv2d_with_a_thread_count_free_gradient():
    from glazeish.tae import Stride2Conv

    conv = Stride2Conv(64, 64, bias=True)
    x = torch.randn(1, 64, 64, 72, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn(1, 64, 32, 36, generator=torch.Generator().manual_seed(1))

    def run():
        xi = x.clone().requires_grad_(True)
        y = conv(xi)
        return y.detach(), torch.autograd.grad(y, xi, g)[0]

    got = _on_threads((1, 2, 3, 5), run)  # oneDNN's strided gradient: 3 and 5 threads gave other bits than 1
    for y, gx in got[1:]:
        assert torch.equal(y, got[0][0]) and torch.equal(gx, got[0][1])
    xi = x.clone().requires_grad_(True)
    ref = torch.nn.functional.conv2d(xi, conv.weight, conv.bias, stride=2, padding=1)
    assert torch.equal(ref, got[0][0])
    assert torch.allclose(torch.autograd.grad(ref, xi, g)[0], got[0][1], atol=1e-5)
    # odd sizes, and the weight gradient (never needed to cloak) still right
    xo = torch.randn(1, 64, 15, 21, requires_grad=True)
    a = torch.autograd.grad(conv(xo).square().sum(), [xo, conv.weight, conv.bias])
    b = torch.autograd.grad(torch.nn.functional.conv2d(xo, conv.weight, conv.bias, stride=2, padding=1).square().sum(),
                            [xo, conv.weight, conv.bias])
    assert all(torch.allclose(u, v, atol=1e-3, rtol=1e-4) for u, v in zip(a, b))


@pytest.mark.cpu_level
@pytest.mark.parametrize("shape", [(64, 256, 1), (256, 64, 1), (3, 64, 3)])
def test_serial_conv_is_nn_conv2d_with_thread_count_free_bits(shape):
    """The 1×1 convolutions over 256 channels and the 3-channel first layer: oneDNN split their sums across
    threads on an AVX-512 and an AVX2 EPYC (1 and 3 threads gave other bits, forward or input gradient)."""
    from glazeish.tae import SerialConv2d

    n_in, n_out, k = shape
    conv = SerialConv2d(n_in, n_out, k, padding=k // 2, bias=k == 3).requires_grad_(False)
    plain = torch.nn.Conv2d(n_in, n_out, k, padding=k // 2, bias=k == 3).requires_grad_(False)
    plain.load_state_dict(conv.state_dict())  # the same keys
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, n_in, 48, 72, generator=gen).contiguous(memory_format=torch.channels_last)
    g = torch.randn(1, n_out, 48, 72, generator=gen)

    def run(layer):
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        return y.detach(), torch.autograd.grad(y, xi, g)[0]

    got = _on_threads((1, 2, 3), lambda: run(conv))
    for y, gx in got[1:]:
        assert torch.equal(y, got[0][0]) and torch.equal(gx, got[0][1])
    ref = _on_threads((1,), lambda: run(plain))[0]
    assert torch.equal(ref[0], got[0][0]) and torch.equal(ref[1], got[0][1])  # nn.Conv2d's own one-thread bits
    trained = SerialConv2d(n_in, n_out, k, padding=k // 2)  # a weight that trains takes nn.Conv2d's path
    assert trained(x).grad_fn is not None and "SerialConv" not in type(trained(x).grad_fn).__name__


@pytest.mark.cpu_level
@pytest.mark.parametrize("name", ["taef2", "taesana"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_encoder_gradients_are_the_same_bits_on_any_thread_count(name, dtype, request):
    """What the cloak follows (the gradient through the encoder, and taef2's decoder) must not depend on the
    thread count: 1 thread in a Ray worker, all cores in a local run."""
    model = request.getfixturevalue(name)
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0))  # big enough to be split up
    x = x.contiguous(memory_format=torch.channels_last)

    def run():
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            y = model.round_trip(xi) if model.has_decoder else model.encode(xi)
        y = y.float()
        return y.detach(), torch.autograd.grad(y.square().sum(), xi)[0]

    got = _on_threads((1, 3), run)  # with nn.Conv2d's strided gradient, fp32 differed here
    for y, g in got[1:]:
        assert torch.equal(y, got[0][0]) and torch.equal(g, got[0][1])


@pytest.mark.cpu_level
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_fused_conv_relu_is_the_same_bits_as_conv_then_relu(dtype, layout):
    """tae.conv_relu (one oneDNN call under bf16 autocast on a CPU, channels-last) gives the bits of the two
    modules, forward and input gradient, on maps of the encoders' sizes; fp32 and other layouts take the
    plain path."""
    from glazeish.device import native_precisions
    from glazeish.tae import conv_relu

    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Conv2d(64, 64, 3, padding=1).requires_grad_(False)
    x = torch.randn(1, 64, 13, 17, generator=g).contiguous(memory_format=layout)  # where fp32 would differ
    up = torch.randn(1, 64, 13, 17, generator=g)

    def run(fn):
        xi = x.clone(memory_format=layout).requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            y = fn(xi)
        return y.detach(), torch.autograd.grad((y.float() * up).sum(), xi)[0], type(y.grad_fn).__name__

    fused, plain = run(lambda v: conv_relu(layer, v)), run(lambda v: torch.relu(layer(v)))
    assert fused[0].dtype == plain[0].dtype == dtype
    assert torch.equal(fused[0], plain[0]) and torch.equal(fused[1], plain[1])
    native = "bf16" in native_precisions("cpu")  # elsewhere bf16 is emulated, and oneDNN has no fused kernel
    assert ("ConvReLU" in fused[2]) == (layout == torch.channels_last and dtype == torch.bfloat16 and native)


def test_sharing_passes_keeps_a_clean_pass_only_while_open_and_only_for_the_same_bits():
    """Inside the block a clean pass of the same pixels, layout and precision is made once; a different layout
    or thread count is a new pass; nested blocks keep the memo until the last one closes; outside, every call
    passes the model."""
    from glazeish.encoders import LatentModel, counting_passes, sharing_passes

    torch.manual_seed(0)
    model = LatentModel("tiny", torch.nn.Conv2d(3, 4, 3, stride=8), torch.nn.ConvTranspose2d(4, 3, 8, stride=8))
    x = torch.rand(1, 3, 16, 16)
    with counting_passes(model) as n:
        with sharing_passes([model]):
            z, view = model.clean_passes(x)
            with sharing_passes([model]):
                again = model.clean_passes(x.clone())  # the same bits in a new tensor
            assert again[0] is z and again[1] is view and model.memo is not None
            model.clean_passes(x.contiguous(memory_format=torch.channels_last))  # another layout: another pass
        assert model.memo is None
        model.clean_passes(x)
    assert n == {"encode": 3, "decode": 3}
    assert torch.equal(model.clean_passes(x)[1], view)
