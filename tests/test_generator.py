"""The generator start (glazeish.generator): shapes and range at any size, the weights file and its sha256,
determinism, the attack's first iterate within the budget, the config's checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from glazeish import generator as gen
from glazeish.config import ProtectConfig
from glazeish.encoders import Ensemble
from glazeish.generator import Generator, StartNetwork, fit_generator, first_iterate
from glazeish.imageio import Artwork
from glazeish.objectives import make_objective
from glazeish.protect import Protector
from glazeish.warmstart import StartPattern
from glazeish.weights import WeightsError

SMALL = (4, 8, 8, 8)


def _generator(seed: int = 0, period: int = 16) -> Generator:
    """A small generator whose every layer is non-zero (a fresh one's last layer is zero: a pattern)."""
    torch.manual_seed(seed)
    g = Generator(SMALL, period=period)
    with torch.no_grad():
        for p in (g.code, g.out.weight, g.out.bias):
            p.normal_(0, 0.5)
    return g.eval().requires_grad_(False)


@pytest.fixture
def network_models(tmp_path, models_dir, monkeypatch) -> str:
    """A model folder holding the real weights and a generator for taef2/mimic-away, its sha256 pinned as the
    known one (generator weights are never committed: a user makes them with train.py --network)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for f in models_dir.glob("taef2_*.pth"):
        (folder / f.name).symlink_to(f)
    g = _generator(period=64)
    sha = g.save(folder / gen.file_name("taef2", "mimic-away"))
    monkeypatch.setitem(gen.SHIPPED, "taef2-mimic-away", sha)
    return str(folder)


@pytest.mark.parametrize("size", [(64, 64), (72, 40), (37, 100), (8, 8)])
def test_output_has_the_input_size_and_lies_in_minus_one_one(size):
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    u = _generator()(x)
    assert u.shape == x.shape and u.abs().max() <= 1 and u.std() > 0.05
    assert not torch.equal(u[0], u[1])  # it looks at each image


def test_a_fresh_generator_is_its_pattern_and_the_code_continues_across_windows():
    p = StartPattern(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    g = Generator.from_pattern(p, SMALL)
    x = torch.rand(1, 3, 48, 32)
    assert torch.allclose(g(x), p.field(48, 32) * 0.95, atol=1e-6)
    whole = g.code_field(48, 56)
    assert torch.equal(g.code_field(24, 20, top=10, left=30), whole[..., 10:34, 30:50])
    with pytest.raises(ValueError, match="multiple of 8"):
        Generator(SMALL, period=12)


def test_saved_weights_load_to_the_same_outputs_and_the_same_bytes_twice(tmp_path):
    g = _generator()
    sha = g.save(tmp_path / "g.safetensors", note={"steps": 3})
    assert _generator().save(tmp_path / "again.safetensors") == sha
    assert (tmp_path / "g.safetensors").read_bytes() == (tmp_path / "again.safetensors").read_bytes()
    assert f'"sha256": "{sha}"' in (tmp_path / "g.json").read_text()
    h = Generator.load(tmp_path / "g.safetensors", sha)
    x = torch.rand(1, 3, 40, 24)
    assert torch.equal(h(x, 8, 16), g(x, 8, 16)) and h.widths == SMALL and h.period == 16


def test_a_damaged_weights_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "g.safetensors"
    sha = _generator().save(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one weight's bits
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 .* does not match") as e:
        Generator.load(path, sha)
    assert str(path) in str(e.value) and len(str(e.value).splitlines()) == 1
    path.write_bytes(b"not weights")
    with pytest.raises(WeightsError, match="not a generator") as e:
        Generator.load(path)
    assert len(str(e.value).splitlines()) == 1


def test_the_start_is_the_same_bits_on_any_thread_count():
    x = torch.rand(1, 3, 96, 64, generator=torch.Generator().manual_seed(2))
    start, saved, got = StartNetwork(_generator()), torch.get_num_threads(), []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            got.append(start.start_for(x, 0, 64))
    finally:
        torch.set_num_threads(saved)
    assert all(torch.equal(got[0], g) for g in got[1:])


def test_training_is_deterministic_and_lowers_the_objective(taef2):
    ens, obj = Ensemble([taef2]), make_objective("mimic-away")
    crops = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    budget = ProtectConfig()
    seen: list[float] = []

    def train(log=None) -> Generator:
        torch.manual_seed(0)
        g = Generator.from_pattern(StartPattern(torch.zeros(3, 16, 16) + 0.3), SMALL)
        return fit_generator(g, ens, obj, [crops] * 5, budget, lr=0.01, code_lr=0.1, log=log)

    def loss(g: Generator) -> float:
        return float(obj.setup(taef2, crops)(first_iterate(g, crops, budget)).mean())

    a, b = train(lambda step, loss: seen.append(loss)), train()
    assert len(seen) == 5 and all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    first = Generator.from_pattern(StartPattern(torch.zeros(3, 16, 16) + 0.3), SMALL)
    assert loss(a) < loss(first) - 1e-3


def test_first_iterate_is_within_the_budget():
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    budget = ProtectConfig()
    x0 = first_iterate(_generator(), x, budget)
    d = x0 - x
    assert (d.abs() <= budget.eps_map(x) + 1e-6).all() and x0.min() >= 0 and x0.max() <= 1
    assert (d.square().flatten(1).mean(1).sqrt() <= budget.rms + 1e-6).all()


def test_config_refuses_what_it_cannot_use_before_any_work(network_models, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="start must be random, zero, learned, network"):
        ProtectConfig(start="netwrok")
    with pytest.raises(ValueError, match="no network start for encoder 'taesana'"):
        ProtectConfig(start="network", encoder="taesana", objective="texture")
    with pytest.raises(ValueError, match="unknown encoder 'nosuch'"):  # said as such, not as no network
        ProtectConfig(start="network", encoder="nosuch")
    monkeypatch.delenv("GLAZEISH_MODELS", raising=False)
    monkeypatch.setenv("GLAZEISH_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ValueError, match="the network start needs glazeish-generator-taef2-mimic-away.safetensors") as e:
        ProtectConfig(start="network")  # a model folder without the weights: said, with how to make them
    assert len(str(e.value).splitlines()) == 1
    fp = ProtectConfig(start="network", models_dir=network_models).fingerprint()["start"]
    assert fp == "network:sha256:" + gen.SHIPPED["taef2-mimic-away"]
    monkeypatch.setitem(gen.SHIPPED, "taef2-mimic-away", "0" * 64)  # as if the file were damaged
    with pytest.raises(WeightsError, match="does not match") as e:
        ProtectConfig(start="network", models_dir=network_models)
    assert len(str(e.value).splitlines()) == 1


def test_the_known_generator_has_its_note():
    assert "taef2-mimic-away" in gen.available()
    note = gen.note_path("taef2", "mimic-away").read_text()
    assert "heldout_images" in note and "train_images" in note and gen.SHIPPED["taef2-mimic-away"] in note
    assert 4 * json.loads(note)["parameters"] <= 1 << 20  # its fp32 weights stay under 1 MB


@pytest.mark.parametrize("tile", [512, 64])  # one tile, and 2×2 tiles (each from its own clean pixels)
def test_protector_from_the_network_stays_in_budget_and_is_deterministic(network_models, tile):
    rng = np.random.default_rng(0)
    art = Artwork(rgb=(rng.random((96, 112, 3)) * 255).astype(np.uint8))
    base = dict(models_dir=network_models, precision="fp32", tile=tile, overlap=16)
    alone = Protector(ProtectConfig(start="network", steps=0, **base)).protect(art).rgb
    again = Protector(ProtectConfig(start="network", steps=0, **base)).protect(art).rgb
    one = Protector(ProtectConfig(start="network", steps=1, **base)).protect(art).rgb
    pattern = Protector(ProtectConfig(start="learned", steps=0, **base)).protect(art).rgb
    assert np.array_equal(alone, again) and not np.array_equal(alone, pattern) and not np.array_equal(alone, one)
    for out in (alone, one):
        d = out.astype(float) - art.rgb
        assert 0 < np.abs(d).max() <= 12 and np.sqrt(np.mean(d**2)) <= 2.95 + 0.6  # + the 8-bit rounding


def test_cli_cloaks_from_the_network_start(tmp_path, network_models):
    from PIL import Image
    from typer.testing import CliRunner

    from glazeish.cli import app

    art = tmp_path / "art.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(art)
    r = CliRunner().invoke(app, ["protect", str(art), "-o", str(tmp_path / "out"), "--start", "network", "--steps",
                                 "0", "--no-eval", "--json", "--quiet", "--models", network_models])
    assert r.exit_code == 0, r.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "art.protected.png").convert("RGB"))
    assert 0 < np.abs(out.astype(int) - np.asarray(Image.open(art))).max() <= 12


def test_a_generator_file_is_a_start_as_it_is(network_models, tmp_path):
    """Your own generator (train.py --network --out mine.safetensors) by its path: no pinned sha256, the same
    cloak as the pinned one with the same bytes, fingerprinted by its bytes; a damaged file is one line."""
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes((tmp_path / "models" / gen.file_name("taef2", "mimic-away")).read_bytes())
    art = Artwork(rgb=(np.random.default_rng(1).random((64, 80, 3)) * 255).astype(np.uint8))
    base = dict(models_dir=network_models, precision="fp32", steps=0)
    by_path = ProtectConfig(start=str(mine), **base)
    pinned = ProtectConfig(start="network", **base).fingerprint()["start"]
    assert by_path.fingerprint()["start"] == pinned.removeprefix("network:")  # "sha256:<the same bytes'>"
    assert np.array_equal(Protector(by_path).protect(art).rgb,
                          Protector(ProtectConfig(start="network", **base)).protect(art).rgb)
    (tmp_path / "bad.safetensors").write_bytes(b"not weights")
    with pytest.raises(WeightsError, match="bad.safetensors: not a generator saved by glazeish") as e:
        ProtectConfig(start=str(tmp_path / "bad.safetensors"))
    assert len(str(e.value).splitlines()) == 1
