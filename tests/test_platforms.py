"""Platform profiles: sizes and chains as data, the real chain as a purification measured at the posted size,
the differentiable chain the cloak is optimised through, and ``--platform`` / ``--max-side`` on the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import assert_same_bits_on_threads
from glazeish.cli import app
from glazeish.platforms import PLATFORMS, Platform, for_platforms, get_platform, parse_platforms, post, posting_size

runner = CliRunner()

#: a platform small enough for a test: 48 px wide, JPEG q70
TINY = Platform("tiny", "Tiny", 48, None, None, "lanczos", "jpeg", 70, "4:2:0", "png", True, "for tests")


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(PLATFORMS, "tiny", TINY)
    return TINY


def test_posted_sizes_keep_the_aspect_and_never_grow():
    assert get_platform("instagram").posted_size(2048, 1024) == (1080, 540)
    assert get_platform("Instagram").posted_size(1080, 1350) == (1080, 1350)  # portrait: 1080 wide
    assert get_platform("x").posted_size(8192, 4096) == (4096, 2048)
    assert get_platform("x").posted_size(800, 600) == (800, 600)
    w, h = get_platform("mastodon").posted_size(4000, 4000)
    assert w == h and w * h <= 3840 * 2160 and w > 2800
    assert get_platform("pixiv").posted_size(9000, 100) == (9000, 100)


def test_names_are_checked_and_listed_once():
    with pytest.raises(ValueError, match="unknown platform 'myspace'; known: instagram, x"):
        parse_platforms("instagram,myspace")
    assert [p.name for p in parse_platforms("x, instagram,x")] == ["x", "instagram"]
    assert parse_platforms(None) == [] and parse_platforms("") == []


def test_posting_size_is_the_largest_served_and_max_side_caps_it():
    both = parse_platforms("instagram,facebook")
    assert posting_size(4096, 2048, both) == (2048, 1024)
    assert posting_size(4096, 2048, both, max_side=1500) == (1500, 750)
    assert posting_size(600, 400, both) == (600, 400)
    assert posting_size(600, 400, [], max_side=300) == (300, 200)


def test_every_profile_describes_itself_and_says_where_its_values_come_from():
    for p in PLATFORMS.values():
        assert p.describe().startswith(p.title) and p.note
    assert "estimate" in get_platform("instagram").describe()
    assert get_platform("discord").keeps_metadata("png") and not get_platform("discord").keeps_metadata("jpeg")


def test_the_real_chain_scales_and_reencodes(tiny):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    out = post(rgb, tiny)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert np.array_equal(post(rgb, get_platform("pixiv")), rgb)  # served as uploaded
    smooth = np.asarray(Image.fromarray(rgb).resize((200, 160)).resize((96, 64)))
    assert not np.array_equal(post(smooth, get_platform("facebook")), smooth)  # re-encoded at its size


def test_platform_purification_gives_the_posted_size(tiny):
    from glazeish.purify import make_purifications

    (p,) = make_purifications("platform:tiny")
    assert p.name == "platform:tiny" and not p.keeps_size
    x = torch.rand(2, 3, 64, 96)
    assert p(x).shape == (2, 3, 32, 48) and p.resized(x).shape == (2, 3, 32, 48)
    with pytest.raises(ValueError, match="platform:NAME"):
        make_purifications("platform")
    everyone = [q.name for q in make_purifications("platforms")]
    assert "platform:instagram" in everyone and "platform:pixiv" not in everyone  # pixiv serves the upload as is


def test_differentiable_chain_keeps_the_shape_and_passes_gradients(tiny):
    from glazeish.transforms import make_transforms

    (t,) = make_transforms("platform:tiny")
    x = torch.rand(1, 3, 64, 96, requires_grad=True)
    y = t(x, random.Random(0))
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert torch.equal(y, t(x, random.Random(1)))  # deterministic
    y.sum().backward()
    assert x.grad.abs().sum() > 0
    t.upload = (960, 640)  # a tile of a 960×640 upload: scaled by 48/960 like the whole picture
    assert t(x, random.Random(0)).shape == x.shape


def test_config_is_optimised_through_the_chains():
    from glazeish.config import ProtectConfig

    c = for_platforms(ProtectConfig(models_dir=None), parse_platforms("instagram,x"))
    assert c.robust == "platform:instagram,platform:x" and c.eot_reference == "transformed"
    assert for_platforms(c, []) is c


def test_figures_after_a_platform_are_measured_at_its_size(tiny, taef2, painting_path):
    from glazeish.evaluation import Evaluator, assess

    from conftest import crop_rgb

    x = crop_rgb(painting_path, 96, 64, 120, 160)
    rng = np.random.default_rng(1)
    cloak = np.clip(x.astype(int) + rng.integers(-3, 4, x.shape), 0, 255).astype(np.uint8)
    fig = assess(x, cloak, Evaluator([taef2]), eps_levels=3, purifications="jpeg75,platform:tiny", flip=())
    after = fig.purified["platform:tiny"]
    assert after.comparison.cloak.view_psnr is not None and after.cost.psnr is not None
    assert set(fig.purified) == {"jpeg75", "platform:tiny"}


def test_protect_for_a_platform_writes_the_posted_size(tiny, small_painting, tmp_path, models_dir):
    big = tmp_path / "big.png"
    Image.open(small_painting).resize((96, 72)).save(big)
    r = runner.invoke(app, ["protect", str(big), "-o", str(tmp_path / "o"), "--models", str(models_dir), "--steps",
                            "1", "--platform", "tiny", "--json", "--purify", "none"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert (row["width"], row["height"], row["resized_from"]) == (48, 36, [96, 72])
    assert row["robust"] == "platform:tiny" and "platform:tiny" in row["figures"]["purified"]
    with Image.open(row["output"]) as im:
        assert im.size == (48, 36)

    # check compares it with the original scaled down the same way, and says what the platform does to its notice
    r = runner.invoke(app, ["check", str(big), row["output"], "--models", str(models_dir), "--purify", "none",
                            "--platform", "tiny,instagram", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["width"], out["height"]) == (48, 36)
    assert any("scaled down to the cloak's size" in w for w in out["warnings"])
    assert out["platform_metadata"]["tiny"]["kept"] is True  # a PNG on a platform that keeps PNG metadata
    assert out["platform_metadata"]["instagram"]["kept"] is False
    assert "stripped" in out["platform_metadata"]["instagram"]["sentence"]


def test_max_side_scales_before_cloaking_and_keys_the_job(small_painting, tmp_path, models_dir):
    from glazeish.job import Job

    assert Job(max_side=64).fingerprint() != Job().fingerprint()
    assert Job(platforms=("x",)).fingerprint() != Job().fingerprint()
    r = runner.invoke(app, ["protect", str(small_painting), "-o", str(tmp_path / "o"), "--models", str(models_dir),
                            "--steps", "1", "--max-side", "68", "--no-eval", "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert (row["width"], row["height"], row["resized_from"]) == (68, 52, [136, 104])


def test_check_takes_purifications_with_settings(small_painting, tmp_path, models_dir):
    """``check --purify jpeg:60,resize:0.5``: a setting is an argument, named in the figures as before."""
    cloaked = tmp_path / "cloaked.png"
    rgb = np.asarray(Image.open(small_painting).convert("RGB")).astype(int)
    Image.fromarray(np.clip(rgb + np.random.default_rng(0).integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
                    ).save(cloaked)
    r = runner.invoke(app, ["check", str(small_painting), str(cloaked), "--models", str(models_dir), "--json",
                            "--purify", "jpeg:60,resize:0.5"])
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.stdout)["purified"]) == {"jpeg60", "resize0.5"}


def test_a_deterministic_chain_sets_its_reference_up_once_with_the_same_bytes(taef2, painting_path):
    """PGD keeps the platform-chained original's reference for the whole run instead of recomputing it each step:
    the same cloak, to the bit, with one pass of the reference fewer per step."""
    from conftest import crop_rgb
    from glazeish.attack import PGD
    from glazeish.encoders import Ensemble
    from glazeish.imageio import to_tensor
    from glazeish.objectives import make_objective
    from glazeish.transforms import make_transforms

    x = to_tensor(crop_rgb(painting_path, 64, 64, 200, 200))
    out = []
    for cached in (True, False):
        (t,) = make_transforms("platform:facebook")
        t.deterministic = cached
        calls = []
        setup = make_objective("mimic-away").setup

        class Counting:
            name, needs_decoder = "mimic-away", True

            def setup(self, model, ref):
                calls.append(1)
                return setup(model, ref)

        adv = PGD(Ensemble([taef2]), Counting(), eps=4 / 255, steps=3, seed=0, precision="fp32", transforms=[t],
                  reference="transformed")(x)
        out.append((adv, len(calls)))
    assert torch.equal(out[0][0], out[1][0])
    assert out[0][1] == 2 and out[1][1] == 4  # the clean setup, then the reference once vs every step


@pytest.mark.cpu_level
def test_the_scaling_chain_gives_the_same_bits_on_any_number_of_threads():
    """The contract test of transforms runs ``platform`` on an image no platform scales; here the chain scales
    (a 256×288 tile of a 2048² upload for a 1080-px platform): forward and gradient on 1, 2 and 3 threads."""
    from glazeish.transforms import make_transforms

    (t,) = make_transforms("platform:instagram")
    t.upload = (2048, 2048)
    x0 = torch.rand(1, 3, 256, 288, generator=torch.Generator().manual_seed(0))
    x0 = x0.contiguous(memory_format=torch.channels_last)
    gy = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    assert_same_bits_on_threads(t, x0, gy)
