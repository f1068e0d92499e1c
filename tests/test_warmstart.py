"""The learned start (glazeish.warmstart): tiling, file round trip, the attack's first iterate, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from glazeish.attack import PGD, project
from glazeish.config import ProtectConfig
from glazeish.encoders import Ensemble
from glazeish.imageio import Artwork
from glazeish.objectives import make_objective
from glazeish.protect import Protector
from glazeish.warmstart import StartPattern, available, fit_pattern, resolve_start, shipped_path


def _pattern(period: int = 16, seed: int = 0) -> StartPattern:
    g = torch.Generator().manual_seed(seed)
    return StartPattern(torch.rand(3, period, period, generator=g) * 2 - 1)


def test_field_tiles_from_the_image_corner_and_windows_continue_each_other():
    p = _pattern(16)
    whole = p.field(40, 56)
    assert whole.shape == (1, 3, 40, 56)
    assert torch.equal(whole[..., 16:32, 16:32], p.pattern.unsqueeze(0))  # period 16, phase 0 at the corner
    assert torch.equal(p.field(24, 20, top=10, left=30), whole[..., 10:34, 30:50])


def test_save_and_load_round_trip_to_8_bits(tmp_path):
    p = _pattern(16)
    p.save(tmp_path / "p.png", note={"steps": 3})
    q = StartPattern.load(tmp_path / "p.png")
    assert q.period == (16, 16) and (q.pattern - p.pattern).abs().max() <= 1 / 127.5 + 1e-6
    assert '"steps": 3' in (tmp_path / "p.json").read_text()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        StartPattern.load(tmp_path / "bad.png")


def test_config_checks_the_start_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="start must be"):
        ProtectConfig(start="nowhere.png")
    with pytest.raises(ValueError, match="no learned start for encoder 'taesana'"):
        ProtectConfig(start="learned", encoder="taesana", objective="texture")
    _pattern().save(tmp_path / "p.png")
    fp = ProtectConfig(start=str(tmp_path / "p.png")).fingerprint()
    assert fp["start"].startswith("sha256:")  # a pattern file is named by its bytes, not its path


def test_the_shipped_pattern_is_found_by_the_default_encoder_and_objective():
    assert "taef2-mimic-away" in available()
    cfg = ProtectConfig(start="learned")
    assert cfg.fingerprint()["start"].startswith("learned:sha256:")
    p = resolve_start("learned", cfg.encoder, cfg.objective)
    assert p.pattern.abs().max() <= 1 and p.period[0] % 16 == 0
    assert resolve_start("random", "taef2", "mimic-away") is None
    note = shipped_path("taef2", "mimic-away").with_suffix(".json").read_text()
    assert "heldout_images" in note and "train_images" in note  # says what it was and was not trained on


def test_pgd_from_a_start_begins_at_its_projection_and_stays_in_budget(taef2):
    ens = Ensemble([taef2])
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    start = _pattern(16).field(32, 32)
    eps = 6 / 255
    pgd0 = PGD(ens, make_objective("untargeted"), eps=eps, steps=0, rms=3 / 255)
    first = pgd0(x, start=start)
    assert torch.allclose(first, project(x + start * eps, x, eps, 3 / 255))
    adv = PGD(ens, make_objective("untargeted"), eps=eps, steps=2, rms=3 / 255)(x, start=start)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert (adv - x).square().mean().sqrt() <= 3 / 255 + 1e-6


def test_protector_with_the_learned_start_is_deterministic_and_differs_from_random(models_dir):
    rng = np.random.default_rng(0)
    art = Artwork(rgb=(rng.random((64, 96, 3)) * 255).astype(np.uint8))
    base = dict(models_dir=str(models_dir), steps=1, precision="fp32")
    a = Protector(ProtectConfig(start="learned", **base)).protect(art).rgb
    b = Protector(ProtectConfig(start="learned", **base)).protect(art).rgb
    r = Protector(ProtectConfig(**base)).protect(art).rgb
    assert np.array_equal(a, b) and not np.array_equal(a, r)
    assert np.abs(a.astype(int) - art.rgb).max() <= 12


def test_fit_pattern_lowers_the_objective_on_its_training_crops(taef2):
    ens = Ensemble([taef2])
    obj = make_objective("mimic-away")
    g = torch.Generator().manual_seed(0)
    crops = torch.rand(2, 3, 32, 32, generator=g)
    budget = ProtectConfig(intensity="fast")
    seen: list[float] = []
    pattern = fit_pattern(ens, obj, [crops] * 6, budget, period=16, lr=0.2, log=lambda i, loss: seen.append(loss))
    assert len(seen) == 6 and pattern.period == (16, 16) and pattern.pattern.abs().max() <= 1
    with pytest.raises(ValueError, match="multiple"):
        fit_pattern(ens, obj, [crops], budget, period=12)

    def loss(p: StartPattern) -> float:
        e = budget.eps_map(crops)
        x0 = project(crops + p.field(32, 32) * e, crops, e, budget.rms)
        return float(obj.setup(ens.models[0], crops)(x0).mean())

    first = StartPattern(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1)  # its seeded start
    assert loss(pattern) < loss(first) - 1e-3 and loss(first) < loss(StartPattern(torch.zeros(3, 16, 16)))


def test_cli_refuses_a_start_it_cannot_use_in_one_line_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from glazeish.cli import app

    art = tmp_path / "art.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(art)
    r = CliRunner().invoke(app, ["protect", str(art), "-o", str(tmp_path / "out"), "--start", "nowhere.png"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "start must be" in r.stderr
    assert not (tmp_path / "out").exists()


def test_cli_cloaks_from_the_learned_start(tmp_path, models_dir):
    from typer.testing import CliRunner

    from glazeish.cli import app

    art = tmp_path / "art.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(art)
    r = CliRunner().invoke(app, ["protect", str(art), "-o", str(tmp_path / "out"), "--start", "learned", "--steps", "0",
                                 "--no-eval", "--json", "--quiet", "--models", str(models_dir)])
    assert r.exit_code == 0, r.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "art.protected.png").convert("RGB"))
    assert 0 < np.abs(out.astype(int) - np.asarray(Image.open(art))).max() <= 12
