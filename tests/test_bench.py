"""Tests for glazeish.bench: metrics on known inputs, protections, the CSV schema, resume, external import,
the report and the CLI sub-app. Images are 64-96 px and attacks take 2-3 steps, so this file stays fast."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glazeish import metrics
from glazeish.bench import harness, peers, protections, report
from glazeish.bench.harness import Bench, BenchConfig
from glazeish.bench.protections import BenchContext, make_protection, pair_external, split_protections
from glazeish.bench.results import CSV_FIELDS, metric_info, read_rows
from glazeish.evaluation import Evaluator
from glazeish.metrics import pearson

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELS_DIR = Path(os.environ.get("GLAZEISH_MODELS") or SHARED / "models")
NEEDED = ("taef2_encoder.pth", "taef2_decoder.pth", "taesana_encoder.pth")
MIST = "mist-textural-style:decoy"  # Mist's textural attack without a --mist-target: glazeish's decoy pattern
PG = "photoguard-encoder-style"


@pytest.fixture(scope="module")
def models_dir() -> Path:
    missing = [f for f in NEEDED if not (MODELS_DIR / f).is_file()]
    if missing:
        pytest.skip(f"encoder weights not found in {MODELS_DIR} (missing {', '.join(missing)}; set GLAZEISH_MODELS)")
    return MODELS_DIR


@pytest.fixture(scope="module")
def evaluator(models_dir) -> Evaluator:
    from glazeish.encoders import load_encoder

    taef2, taesana = load_encoder("taef2", models_dir), load_encoder("taesana", models_dir)
    return Evaluator([taef2, taesana], style=metrics.StyleFeatures(taesana.encoder), extended=True)


def art(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """A picture-like ``H×W×3`` uint8 image: smooth colour field, an edge and some texture."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 4, generator=g)
    field = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    img = 0.7 * field + 0.15 + 0.1 * torch.sin(xx * 0.7 + yy * 0.3) - 0.2 * (xx > w / 2).float()
    return (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def image_dirs(tmp_path_factory) -> list[Path]:
    """Two folders like ../shared/images: paintings/ (one square image) and flat/ (one non-square)."""
    root = tmp_path_factory.mktemp("imgs")
    p, f = root / "paintings", root / "flat"
    p.mkdir(parents=True)
    f.mkdir(parents=True)
    Image.fromarray(art(64, 64, 1)).save(p / "vase.png")
    Image.fromarray(art(64, 96, 2)).save(f / "cel.png")
    return [p, f]


def config(dirs, out, **kw) -> BenchConfig:
    base = dict(images=[str(d) for d in dirs], out=str(out), protections=["none", "random", PG],
                purifications=["none", "jpeg75"], attack_steps=4, models_dir=str(MODELS_DIR), device="cpu",
                precision="fp32", batch=4)
    base.update(kw)
    return BenchConfig(**base)


# ---------------------------------------------------------------------------------------------
# metrics on known inputs


def test_psnr_of_a_known_delta():
    x = torch.full((1, 3, 32, 32), 0.5)
    y = x + 4 / 255
    assert float(metrics.psnr(y, x)) == pytest.approx(20 * math.log10(255 / 4), abs=1e-3)  # 36.09 dB
    assert math.isinf(float(metrics.psnr(x, x)))


def test_ssim_ms_ssim_of_identical_images_is_one_and_drops_with_noise():
    x = torch.from_numpy(art(64, 64)).permute(2, 0, 1)[None].float() / 255
    assert float(metrics.ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    assert float(metrics.ms_ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert float(metrics.ssim(noisy, x)) < 0.9
    assert float(metrics.ms_ssim(noisy, x)) < float(metrics.ms_ssim(x, x))


def test_relative_l2_style_distance_and_pearson_on_known_inputs():
    z = torch.ones(2, 4, 3, 3)
    assert metrics.relative_l2(1.1 * z, z).tolist() == pytest.approx([0.1, 0.1], rel=1e-5)
    feats = [torch.rand(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))]
    assert float(metrics.style_distance(feats, feats)) == 0.0
    assert float(metrics.style_distance([2 * feats[0]], feats)) > 0
    a = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    assert pearson(a, a).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert pearson(a, -3 * a).tolist() == pytest.approx([-1.0, -1.0], abs=1e-5)
    assert pearson(a, torch.zeros_like(a)).tolist() == [0.0, 0.0]  # constant: defined as 0, not nan


def test_evaluator_clean_is_exact_and_noise_is_measured(evaluator):
    x = torch.from_numpy(art(64, 96)).permute(2, 0, 1)[None].float() / 255
    d = 4 / 255
    shifted = (x + d * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))).clamp(0, 1)
    figs, clean_copy = evaluator.compare(x, {"clean": x, "noisy": shifted}, flip=("clean", "noisy"))
    clean, noisy = figs["clean"].metrics(), figs["noisy"].metrics()
    assert set(clean) == set(noisy)
    # the clean image against itself: exact, whatever the batch
    assert math.isinf(clean["psnr"]) and math.isinf(clean["view_psnr"]) and clean["flip"] == 0
    assert clean["latent:taef2"] == 0 and clean["latent:taesana"] == 0 and clean["style"] == 0
    assert clean["ssim"] == pytest.approx(1.0, abs=1e-5) and clean["decoy_corr"] == 0
    # the clean mimic view vs the original is the autoencoder's own round-trip loss: finite, the same for both
    assert 15 < clean["copy_psnr"] < 60 and clean["copy_psnr"] == pytest.approx(clean_copy, abs=1e-6)
    # ±4/255 sign noise (clipped at 0/1): L∞ 4, RMS ≤ 4, PSNR ≥ the 36.09 dB of a full-amplitude δ
    assert noisy["linf"] == pytest.approx(4.0, abs=1e-3)
    assert 3.0 < noisy["rms"] <= 4.0 + 1e-4
    assert noisy["psnr"] >= 20 * math.log10(255 / 4) - 1e-3 and 0 < noisy["flip"] < 0.2
    assert noisy["latent:taef2"] > 0 and noisy["latent:taesana"] > 0 and noisy["style"] > 0
    assert noisy["view_psnr"] < 60 and math.isfinite(noisy["view_psnr"])


def test_evaluator_tiles_add_up(evaluator, models_dir):
    """A tiled measurement equals the one-pass one where sums of squares add up exactly (tiles of the same
    content), and stays close for the pixel-weighted means."""
    from glazeish.encoders import load_encoder

    x = torch.from_numpy(art(64, 128)).permute(2, 0, 1)[None].float() / 255
    v = (x + 3 / 255 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(1)))).clamp(0, 1)
    tiled = Evaluator([load_encoder("taef2", models_dir)], tile=64)
    one = Evaluator([load_encoder("taef2", models_dir)], tile=512)
    a, b = tiled.compare(x, {"v": v})[0]["v"], one.compare(x, {"v": v})[0]["v"]
    assert a.psnr == pytest.approx(b.psnr, abs=1e-6)  # pixel sums: exact
    assert a.ssim == pytest.approx(b.ssim, abs=0.02)
    assert a.view_psnr == pytest.approx(b.view_psnr, abs=2.0)  # each tile is encoded on its own, like a crop


def test_metric_info_directions():
    assert not metric_info("psnr").damage_up and metric_info("psnr").group == "visibility"
    assert metric_info("latent:taesana").damage_up and metric_info("latent:taesana").group == "latent"
    assert not metric_info("view_psnr").damage_up and metric_info("style").damage_up


# ---------------------------------------------------------------------------------------------
# protections


def test_registry_and_name_lists():
    for name in ("none", "random", "photoguard-encoder-style", "mist-textural-style", "psnr-matched", "glazeish-low",
                 "glazeish-default", "glazeish-high", "external"):
        assert name in protections.PROTECTIONS
    assert split_protections("default") == protections.DEFAULT_PROTECTIONS
    assert split_protections("none,random", {"external:glaze": "/x"}) == ["none", "random", "external:glaze"]
    with pytest.raises(ValueError, match="unknown protection"):
        split_protections("nope")
    with pytest.raises(ValueError, match="--external"):
        make_protection("external", BenchContext())


def test_random_protection_is_in_budget_and_not_the_baseline_draw():
    rgb = art(48, 40)
    ctx = BenchContext(eps_levels=4, seed=3)
    p = make_protection("random", ctx)
    out = p.protect(rgb, "f/a")
    diff = out.astype(int) - rgb.astype(int)
    assert np.abs(diff).max() == 4 and (diff != 0).mean() > 0.5
    assert np.array_equal(out, p.protect(rgb, "f/a"))  # seeded
    assert not np.array_equal(out, p.protect(rgb, "f/b"))  # per-image seed
    from glazeish.evaluation import uniform_noise

    baseline = uniform_noise(rgb, 4, protections.image_seed(3, "f/a"))
    assert not np.array_equal(out, baseline)
    assert make_protection("none", ctx).protect(rgb, "f/a").tobytes() == rgb.tobytes()


def test_presets_keep_their_own_budget_and_caches_follow_every_setting():
    ctx = BenchContext(eps_levels=8)
    from glazeish.config import PRESETS

    assert make_protection("glazeish-low", ctx).eps_levels == PRESETS["low"].eps_levels == 10.5
    assert make_protection("glazeish-high", ctx).eps_levels == PRESETS["high"].eps_levels == 15
    # the peers keep their authors' budgets, whatever --eps says
    assert make_protection("mist-textural-style", ctx).eps_levels == 16
    assert make_protection("photoguard-encoder-style", ctx).eps_levels == pytest.approx(7.65)
    a, b = make_protection("mist-textural-style", ctx), make_protection("photoguard-encoder-style", ctx)
    assert a.cache_key != b.cache_key
    assert a.cache_key == make_protection("mist-textural-style", BenchContext(eps_levels=4)).cache_key
    assert a.cache_key != make_protection("mist-textural-style", BenchContext(attack_steps=3)).cache_key
    # the key is the config's fingerprint: a setting nobody listed by hand still changes it
    from glazeish.config import ProtectConfig

    assert ProtectConfig(tile=256).key() != ProtectConfig().key() and ProtectConfig().key() == ProtectConfig().key()


def test_pair_external_by_stem(tmp_path):
    for n in ("a.png", "b_glazed.png", "c.protected.png", "zz.png", "notes.txt"):
        (tmp_path / n).write_bytes(b"x")
    found = pair_external(tmp_path, ["a", "b", "c", "d"])
    assert {k: v.name for k, v in found.items()} == {"a": "a.png", "b": "b_glazed.png", "c": "c.protected.png"}


# ---------------------------------------------------------------------------------------------
# the peers: published settings, their targets, equal PSNR, and no glazeish preset anywhere


@pytest.fixture(scope="module")
def peer_ctx(models_dir) -> BenchContext:
    from glazeish.encoders import Ensemble, load_encoder

    return BenchContext(attack_steps=6, device="cpu", precision="fp32", models_dir=str(models_dir),
                        ensemble=Ensemble([load_encoder("taef2", models_dir)]))


def test_peers_keep_their_authors_settings():
    from glazeish.attack import step_sizes

    pg, grey = make_protection("photoguard-encoder-style", BenchContext()), \
        make_protection("photoguard-encoder-style:grey", BenchContext())
    # PhotoGuard's img2img notebook: eps 0.06, step 0.02, 1000 iterations on [-1, 1]; toward the zero latent
    assert (pg.settings.eps, pg.settings.alpha, pg.settings.steps) == (0.03, 0.01, 1000)
    assert (pg.settings.schedule, pg.settings.target, pg.settings.squared) == ("photoguard", "zero", False)
    # their demo app: a grey target, eps 0.12, step 0.01, 200 iterations
    assert (grey.settings.eps, grey.settings.alpha, grey.settings.steps, grey.settings.target) == (0.06, 0.005, 200,
                                                                                                   "grey")
    assert grey.name == "photoguard-encoder-style:grey" and grey.cache_key != pg.cache_key
    # their step: step_size - (step_size - step_size / 100) / iters * i
    assert step_sizes(0.01, 1000, "photoguard")[0] == 0.01
    assert step_sizes(0.01, 1000, "photoguard")[500] == pytest.approx(0.01 - 0.0099 / 2)
    # Mist (mist_v3.py, mode 1 = textural): 16/255, constant 1/255 steps, 100 iterations, summed squared distance
    mist = make_protection("mist-textural-style", BenchContext())
    assert (mist.settings.eps, mist.settings.alpha, mist.settings.steps) == (16 / 255, 1 / 255, 100)
    assert (mist.settings.schedule, mist.settings.squared, mist.settings.random_start) == ("constant", True, True)
    # --attack-steps replaces the iteration counts only (smoke runs), and says so in the cache key
    short = make_protection("photoguard-encoder-style", BenchContext(attack_steps=10))
    assert short.settings.steps == 10 and short.settings.eps == 0.03 and short.cache_key != pg.cache_key
    with pytest.raises(ValueError, match="known: photoguard-encoder-style:grey"):
        make_protection("photoguard-encoder-style:gray", BenchContext())


def _latent_distance(ctx, rgb, target) -> float:
    from glazeish.imageio import to_tensor

    (model, _), = list(ctx.ensemble)
    with torch.no_grad():
        z = model.encode(to_tensor(rgb))
        return float((z - (torch.zeros_like(z) if target is None else model.encode(target))).norm())


def test_photoguard_pulls_the_latent_to_its_target(peer_ctx):
    rgb = art(48, 48, 3)
    for spec, target in (("photoguard-encoder-style", None),
                         ("photoguard-encoder-style:grey", torch.full((1, 3, 48, 48), peers.GREY))):
        p = make_protection(spec, peer_ctx)
        out = p.protect(rgb, "f/a")
        assert np.abs(out.astype(int) - rgb).max() <= p.eps_levels
        from glazeish.evaluation import uniform_noise

        noise = uniform_noise(rgb, p.eps_levels, 0)
        before, after = _latent_distance(peer_ctx, rgb, target), _latent_distance(peer_ctx, out, target)
        assert after < 0.9 * before and after < _latent_distance(peer_ctx, noise, target), spec


def test_mist_pulls_toward_the_users_target_resized_to_the_image(peer_ctx, tmp_path):
    from dataclasses import replace

    from PIL import Image as PILImage

    from glazeish.imageio import to_tensor

    decoy = make_protection("mist-textural-style", peer_ctx)
    assert decoy.name == MIST and make_protection("mist-textural-style:decoy", peer_ctx).cache_key == decoy.cache_key
    path = tmp_path / "MIST.png"
    stripes = np.zeros((30, 30, 3), np.uint8)
    stripes[::4] = 255
    PILImage.fromarray(stripes).save(path)
    ctx = replace(peer_ctx, mist_target=str(path))
    p = make_protection("mist-textural-style", ctx)
    assert p.name == "mist-textural-style" and p.cache_key != decoy.cache_key
    rgb = art(48, 64, 4)
    target = p.target_image(rgb)
    resized = PILImage.fromarray(stripes).resize((64, 48), resample=PILImage.BICUBIC)
    assert torch.equal(target, to_tensor(np.array(resized)))  # resized, as Mist resizes MIST.png, not tiled
    out = p.protect(rgb, "f/a")
    assert np.abs(out.astype(int) - rgb).max() <= 16
    assert _latent_distance(ctx, out, target) < 0.95 * _latent_distance(ctx, rgb, target)
    PILImage.fromarray(255 - stripes).save(path)
    assert make_protection("mist-textural-style", ctx).cache_key != p.cache_key  # the target's bytes count
    with pytest.raises(ValueError, match="--mist-target"):
        make_protection("mist-textural-style", replace(peer_ctx, mist_target=str(tmp_path / "missing.png")))


def test_psnr_matched_peers_have_the_default_psnr(peer_ctx):
    from glazeish.evaluation import mse_levels
    from glazeish.imageio import to_tensor

    for rgb in (art(48, 40, 5), art(64, 48, 6)):
        default = make_protection("glazeish-default", peer_ctx).protect(rgb, "f/a")
        want = metrics.psnr(to_tensor(rgb), to_tensor(default))
        for inner in ("photoguard-encoder-style", "mist-textural-style"):
            p = make_protection(f"psnr-matched:{inner}", peer_ctx)
            out = p.protect(rgb, "f/a")
            got = metrics.psnr(to_tensor(rgb), to_tensor(out))
            assert abs(float(got) - float(want)) < 0.1, (inner, got, want)
            assert np.array_equal(out, p.protect(rgb, "f/a"))
            # the attack at that budget, not its published one: far less change than the peer itself
            assert mse_levels(out, rgb) < 0.7 * mse_levels(make_protection(inner, peer_ctx).protect(rgb, "f/a"), rgb)
    assert p.name == f"psnr-matched:{MIST}" and p.eps_levels is None
    assert p.cache_key not in (p.inner.cache_key, p.reference.cache_key)


def test_peers_never_inherit_glazeish_presets(peer_ctx, monkeypatch):
    from glazeish import config as cfg

    rgb = art(48, 48, 7)
    specs = ("photoguard-encoder-style", "photoguard-encoder-style:grey", "mist-textural-style")
    before = {s: (make_protection(s, peer_ctx).cache_key, make_protection(s, peer_ctx).protect(rgb, "f/a")) for s in specs}
    for name in list(cfg.PRESETS):  # every preset changed: budget, steps, objective, JPEG simulation
        monkeypatch.setitem(cfg.PRESETS, name, cfg.Preset(9, 3, "untargeted", "jpeg", "changed"))
    assert make_protection("glazeish-default", peer_ctx).eps_levels == 9  # the presets did change
    for s in specs:
        p = make_protection(s, peer_ctx)
        assert p.cache_key == before[s][0] and np.array_equal(p.protect(rgb, "f/a"), before[s][1]), s


# ---------------------------------------------------------------------------------------------
# the run: CSV schema, effect/retained arithmetic, resume, external import


def _by_key(rows):
    return {(r["image"], r["protection"], r["purification"], r["metric"]): r for r in rows}


@pytest.fixture(scope="module")
def base_run(image_dirs, models_dir, tmp_path_factory) -> tuple[Bench, Path]:
    """One small run shared by the schema and resume tests: 2 images × 3 protections × 2 purifications."""
    out = tmp_path_factory.mktemp("run") / "out"
    bench = Bench(config(image_dirs, out))
    bench.run(progress=False)
    return bench, out


def test_run_csv_schema_and_arithmetic(base_run):
    bench, out = base_run
    path = out / harness.CSV_NAME
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_FIELDS
        rows = list(reader)
    assert len(rows) == 2 * 3 * (len(bench.metric_names("none")) + len(bench.metric_names("jpeg75")))
    keys = _by_key(rows)
    assert len(keys) == len(rows)  # one row per (image, protection, purification, metric)
    assert {r["folder"] for r in rows} == {"paintings", "flat"}
    assert {(r["image"], r["width"], r["height"]) for r in rows} == {("paintings/vase", "64", "64"),
                                                                    ("flat/cel", "96", "64")}
    from glazeish.bench.results import to_float

    for r in rows:
        value, noise = to_float(r["value"]), to_float(r["noise"])
        if math.isfinite(value) and math.isfinite(noise):
            # the CSV keeps 6 significant digits of each column
            tol = 2e-5 * max(1.0, abs(value), abs(noise))
            assert to_float(r["effect"]) == pytest.approx(value - noise, abs=tol)
        if r["purification"] == "jpeg75" and r["retained"]:
            base = to_float(keys[(r["image"], r["protection"], "none", r["metric"])]["effect"])
            assert to_float(r["retained"]) == pytest.approx(to_float(r["effect"]) / base, rel=1e-3)
            assert metric_info(r["metric"]).group != "visibility"
    linf = keys[("flat/cel", PG, "none", "linf")]
    assert 0 < float(linf["value"]) <= 7 and float(linf["uniform"]) == 7 and linf["eps"] == "7.65"  # 7.65/255, in levels
    # the same-PSNR noise has the cloak's PSNR (within rounding), the same-L∞ noise more PSNR
    ps = keys[("flat/cel", PG, "none", "psnr")]
    assert float(ps["noise"]) == pytest.approx(float(ps["value"]), abs=0.05) and float(ps["uniform"]) > float(ps["value"])
    # the none protection is the clean image, and its noise baselines are the clean image too
    none = keys[("paintings/vase", "none", "none", "view_psnr")]
    assert none["value"] == none["clean"] == none["noise"] == none["uniform"] == "inf" and none["eps"] == "0"
    # after JPEG, "clean" is the purified original measured against the original: no longer exact
    jp = keys[("paintings/vase", "random", "jpeg75", "psnr")]
    assert 25 < float(jp["clean"]) < 60
    # the retained column is the evaluation layer's: the view gap after JPEG ÷ before
    from glazeish.evaluation.figures import retained

    v0, v1 = keys[("paintings/vase", PG, "none", "view_psnr")], keys[("paintings/vase", PG, "jpeg75", "view_psnr")]
    want = retained(-to_float(v1["effect"]), -to_float(v0["effect"]))
    assert (v1["retained"] == "") if want is None else to_float(v1["retained"]) == pytest.approx(want, rel=1e-3)
    # the attack moves the attacked latent more than same-budget noise
    lat = keys[("paintings/vase", PG, "none", "latent:taef2")]
    assert float(lat["effect"]) > 0
    env = (out / harness.ENV_NAME).read_text()
    assert '"seed": 0' in env and '"torch"' in env and '"cpu"' in env


def test_resume_skips_finished_rows_and_reuses_the_cache(base_run, image_dirs, tmp_path, monkeypatch):
    import shutil

    bench, done_out = base_run
    out = tmp_path / "out"
    shutil.copytree(done_out, out)  # the CSV and the protected-image cache
    cfg = config(image_dirs, out)
    path = out / harness.CSV_NAME
    full = path.read_text()
    # a run killed while writing: the last group is cut mid-line
    lines = full.splitlines(keepends=True)
    n_metrics = len(bench.metric_names("jpeg75"))
    path.write_text("".join(lines[: -n_metrics // 2]) + lines[-n_metrics // 2][:7])
    # the attack must come from the cache, not be recomputed
    calls = []
    orig = peers.PhotoGuardEncoder.protect
    monkeypatch.setattr(peers.PhotoGuardEncoder, "protect", lambda self, *a: calls.append(a) or orig(self, *a))
    Bench(cfg).run(progress=False)
    assert calls == []
    again, before = _by_key(read_rows(path)), _by_key(read_rows_from_text(full))
    assert again.keys() == before.keys()  # the torn group is complete again, nothing duplicated
    for k, r in before.items():  # same numbers (seeded); only float noise of a different batch makeup
        for col in ("value", "clean", "noise", "uniform"):
            from glazeish.bench.results import to_float

            a, b = to_float(again[k][col]), to_float(r[col])
            assert a == b or (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-3, abs=1e-6), (k, col)
    # a finished run resumed adds nothing
    Bench(cfg).run(progress=False)
    assert len(read_rows(path)) == len(before)
    assert calls == []


def read_rows_from_text(text: str) -> list[dict]:
    return list(csv.DictReader(text.splitlines()))


def test_external_import(image_dirs, tmp_path, models_dir):
    ext = tmp_path / "glazed"
    ext.mkdir()
    src = image_dirs[0] / "vase.png"
    rgb = np.asarray(Image.open(src).convert("RGB")).astype(int)
    pattern = np.where((np.indices(rgb.shape[:2]).sum(0) % 2 == 0)[..., None], 3, -3)
    Image.fromarray(np.clip(rgb + pattern, 0, 255).astype(np.uint8)).save(ext / "vase_glazed.png")
    out = tmp_path / "out"
    cfg = config(image_dirs, out, protections=["none"], purifications=["none"], external={"external:tool": str(ext)})
    bench = Bench(cfg)
    assert [p.name for p in bench.protections] == ["none", "external:tool"]
    bench.run(progress=False)
    keys = _by_key(read_rows(out / harness.CSV_NAME))
    r = keys[("paintings/vase", "external:tool", "none", "linf")]
    assert r["eps"] == "3" and r["value"] == "3" and float(r["uniform"]) == pytest.approx(3.0)
    expected = -10 * math.log10(float(np.mean(((np.clip(rgb + pattern, 0, 255) - rgb) / 255.0) ** 2)))
    assert float(keys[("paintings/vase", "external:tool", "none", "psnr")]["value"]) == pytest.approx(expected, abs=1e-3)
    # the flat image has no cloaked counterpart: reported, not fatal
    assert ("flat/cel", "external:tool", "none", "psnr") not in keys
    env = (out / harness.ENV_NAME).read_text()
    assert "no cloaked file" in env
    # from the command line, NAME=DIR, and through the same table as every protection, at equal PSNR too
    from typer.testing import CliRunner

    from glazeish.bench.cli import app

    out2 = tmp_path / "cli"
    res = CliRunner().invoke(app, ["run", "--images", str(image_dirs[0]), "--external", f"tool={ext}", "--out",
                                   str(out2), "--protections", "none,glazeish-default,psnr-matched:external:tool",
                                   "--purifications", "none", "--models", str(models_dir), "--precision", "fp32",
                                   "--device", "cpu", "--no-grid", "--no-report", "--quiet"])
    assert res.exit_code == 0, res.output
    keys = _by_key(read_rows(out2 / harness.CSV_NAME))
    assert keys[("paintings/vase", "external:tool", "none", "psnr")]["value"] == f"{expected:.6g}"
    matched = float(keys[("paintings/vase", "psnr-matched:external:tool", "none", "psnr")]["value"])
    assert matched == pytest.approx(float(keys[("paintings/vase", "glazeish-default", "none", "psnr")]["value"]), abs=0.1)


# ---------------------------------------------------------------------------------------------
# report and CLI


def test_stats_and_ratio_of_means():
    s = report.Stat.of([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.n == 3 and s.ci == pytest.approx(4.303 / math.sqrt(3), rel=1e-3)
    assert report.Stat.of([float("inf")] * 3).mean == float("inf")
    assert report.Stat.of([float("nan"), 1.0]).n == 1
    r = report.ratio_of_means(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert r.mean == pytest.approx(0.5) and r.ci == pytest.approx(0.0, abs=1e-9)
    assert report.t975(1) == 12.706 and report.t975(1000) == pytest.approx(1.962, abs=0.003)


def test_cli_run_and_report(image_dirs, tmp_path, models_dir):
    from typer.testing import CliRunner

    from glazeish.bench.cli import app

    out = tmp_path / "out"
    args = ["run", "--images", str(image_dirs[0]), "--images", str(image_dirs[1]), "--out", str(out),
            "--protections", "none,random,mist-textural-style", "--attack-steps", "1", "--purifications", "none,jpeg75",
            "--models", str(models_dir), "--precision", "fp32", "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    for name in ("results.csv", "results.md", "frontier.png", "retained.png", "environment.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.glob("grid_*.png")) == ["grid_flat_cel.png", "grid_paintings_vase.png"]
    md = (out / "results.md").read_text()
    assert f"## Headline: {MIST} vs noise of the same PSNR" in md  # no glazeish preset: the first cloak
    assert "retained after jpeg75" in md and f"| {MIST} | 16 |" in md
    (out / "results.md").unlink()
    (out / "frontier.png").unlink()
    res = CliRunner().invoke(app, ["report", str(out), "--headline", "none"])
    assert res.exit_code == 0, res.output
    assert (out / "frontier.png").stat().st_size > 1000
    assert "## Headline: none vs noise" in (out / "results.md").read_text()
    bad = CliRunner().invoke(app, ["run", "--images", str(image_dirs[0]), "--out", str(out), "--protections", "nope"])
    assert bad.exit_code == 2 and "unknown protection" in bad.output


# -- hostile options and inputs: one line, exit 2 before any work (1 for a run whose images failed) -------------


def _bench(*args: str):
    from typer.testing import CliRunner

    from glazeish.bench.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line(res, code: int) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == code and len(lines) == 1 and lines[0].startswith("glazeish bench: error: "), res.output
    return lines[0]


@pytest.mark.parametrize("command,args,phrase", [
    ("run", ["--images", "/nonexistent"], "--images /nonexistent: no such folder"),
    ("mimic", ["--images", "/nonexistent"], "--images /nonexistent: no such folder"),
    ("run", ["--eps", "nan"], "--eps must be between 0 and 64 (in 1/255 units), not nan"),
    ("run", ["--eps", "-5"], "--eps must be between 0 and 64 (in 1/255 units), not -5"),
    ("run", ["--limit", "-1"], "--limit must be at least 1, not -1"),
    ("run", ["--precision", "fp8"], "precision must be one of"),
    ("run", ["--batch", "0"], "--batch must be at least 1, not 0"),
    ("mimic", ["--eps", "nan"], "--eps must be between 0 and 64"),
    ("mimic", ["--limit", "-1"], "--limit must be at least 1, not -1"),
    ("mimic", ["--bootstrap", "0"], "--bootstrap must be at least 1, not 0"),
    ("mimic", ["--sample-steps", "0"], "--sample-steps must be at least 1, not 0"),
    ("mimic", ["--batch", "0"], "batch ≥ 1"),
])
def test_bad_bench_options_are_one_line_before_any_work(image_dirs, tmp_path, models_dir, command, args, phrase):
    images = [] if "--images" in args else ["--images", image_dirs[0]]
    res = _bench(command, *images, *args, "--out", tmp_path / "out", "--models", models_dir, "--quick")
    assert phrase in _one_line(res, 2)
    assert not (tmp_path / "out").exists()


def test_a_run_whose_every_image_is_bad_says_each_and_exits_1(tmp_path, models_dir):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "text.png").write_bytes(b"not an image")
    (d / "empty.jpg").write_bytes(b"")
    os.mkfifo(d / "fifo.png")
    res = _bench("run", "--images", d, "--out", tmp_path / "out", "--models", models_dir, "--protections", "none",
                 "--purifications", "none", "--quiet")
    assert res.exit_code == 1, res.output
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert sorted(errors) == [f"glazeish bench: error: {d / 'empty.jpg'}: empty file (0 bytes)",
                              f"glazeish bench: error: {d / 'fifo.png'}: not a regular file",
                              f"glazeish bench: error: {d / 'text.png'}: not an image Pillow can read (unknown or "
                              "corrupt format)"]
    assert "Traceback" not in res.output and (d / "fifo.png").is_fifo() and (d / "text.png").read_bytes() == b"not an image"
