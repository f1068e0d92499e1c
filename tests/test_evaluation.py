"""The evaluation layer: baselines, figures, retention and verdicts of :func:`glazeish.evaluation.assess`.

Real taef2/taesana weights and small crops (128×96) of the shared images; skipped, saying so, without them.
"""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from glazeish.evaluation import (
    Evaluator,
    assess,
    baselines,
    build_purifications,
    judge,
    jsonable,
    load_pair,
    mse_levels,
    one_line,
    rescaled_to_mse,
    same_psnr_noise,
    uniform_noise,
)
from glazeish.evaluation.figures import retained
from glazeish.evaluation.verdicts import (
    FLIP_VISIBLE,
    NO_BETTER_DB,
    PROTECTION,
    TINT_SHARE,
    protection,
    protection_of,
    tint_share,
    visibility,
)
from glazeish.encoders import counting_passes
from glazeish.imageio import ImageError, save_image, to_tensor

EPS = 4  # 1/255 units


@pytest.fixture(scope="module")
def figures(ensemble, original, cloaked):
    return assess(original, cloaked, ensemble)


# --- baselines -------------------------------------------------------------------------------------


def test_same_psnr_noise_has_the_cloaks_energy_and_uniform_noise_has_less(original, cloaked):
    target = mse_levels(cloaked, original)
    noise = same_psnr_noise(original, target, seed=0)
    assert noise.dtype == np.uint8 and noise.shape == original.shape
    assert mse_levels(noise, original) == pytest.approx(target, rel=0.01)  # the same PSNR, after clip + round
    assert np.array_equal(noise, same_psnr_noise(original, target, seed=0))  # seeded
    assert not np.array_equal(noise, same_psnr_noise(original, target, seed=1))
    uni = uniform_noise(original, EPS, seed=0)
    assert np.abs(uni.astype(int) - original).max() <= EPS
    assert mse_levels(uni, original) < 0.8 * target  # ~3 dB less energy than a cloak that uses its budget


def test_a_sign_attacks_perturbation_rescaled_to_any_psnr(original):
    # a sign attack's δ: ±3.4 levels everywhere; plain rounding could only reach MSE 9 or 16
    sign = np.where(np.indices(original.shape).sum(0) % 3 == 0, 1.0, -1.0)
    perturbed = original.astype(np.float32) + 3.4 * sign
    for target in (2.0, 9.6, 12.5, 30.0):
        out = rescaled_to_mse(original, perturbed, target, seed=0)
        assert out.dtype == np.uint8 and out.shape == original.shape
        assert 10 * math.log10(mse_levels(out, original) / target) == pytest.approx(0, abs=0.02)  # dB
        moved = out.astype(int) - original
        assert (np.sign(moved) * sign >= 0).all()  # the same perturbation, scaled: no sign flips
    assert np.array_equal(out, rescaled_to_mse(original, perturbed, 30.0, seed=0))  # seeded
    assert np.array_equal(rescaled_to_mse(original, original, 9.0), original)  # nothing to scale


def test_baselines_leave_transparent_pixels_alone(original):
    alpha = np.zeros(original.shape[:2], np.uint8)
    alpha[:, 64:] = 255
    noise = same_psnr_noise(original, 9.0, seed=0, alpha=alpha)
    assert np.array_equal(noise[:, :64], original[:, :64]) and not np.array_equal(noise[:, 64:], original[:, 64:])
    assert mse_levels(noise, original, alpha) == pytest.approx(9.0, rel=0.02)
    uni = uniform_noise(original, EPS, seed=0, alpha=alpha)
    assert np.array_equal(uni[:, :64], original[:, :64])


# --- assess --------------------------------------------------------------------------------------


def test_real_cloak_changes_the_mimic_view_more_than_noise(figures):
    f, s = figures, figures.summary
    assert (f.width, f.height) == (128, 96)
    assert f.eps_inferred and f.eps_levels == f.linf and 0 < f.linf <= EPS
    b = f.before
    assert b.noise.psnr == pytest.approx(b.cloak.psnr, abs=0.05)  # the headline baseline: same PSNR
    assert b.uniform.psnr > b.cloak.psnr
    assert s.view_gap > NO_BETTER_DB and s.view_gap == pytest.approx(b.noise.view_psnr - b.cloak.view_psnr)
    assert s.view_gap_uniform > s.view_gap  # uniform noise flatters the cloak
    assert s.latent_ratio["taef2"] > 1 and 0 < b.cloak.flip < 1
    assert s.copy_psnr is not None and s.clean_copy_psnr is not None  # the model's copy of the art, both ways
    assert 30 < b.cloak.psnr < 60 and 0 < b.cloak.ssim < 1
    # JPEG q75: measured against the JPEG'd original; retained = gap after ÷ gap before
    jp = f.purified["jpeg75"]
    assert jp.retained == pytest.approx(jp.comparison.view_gap() / s.view_gap) and s.retained["jpeg75"] == jp.retained
    assert 25 < jp.cost.psnr < 60  # what JPEG alone does to the original
    assert f.warnings == []
    text = json.dumps(f.to_dict(), allow_nan=False)  # strict JSON
    assert json.loads(text)["summary"]["view_gap"] == pytest.approx(s.view_gap)


def test_real_cloak_verdicts(figures):
    v = judge(figures)
    assert v.sentences[0].startswith("Visibility: ") and f"PSNR {figures.before.cloak.psnr:.1f} dB" in v.sentences[0]
    assert v.sentences[1].startswith("Protection: a model trained on this image ")
    assert "further than with noise of the same PSNR" in v.sentences[1]
    assert v.protection == protection_of(figures.summary).key
    assert figures.summary.view_flip is not None and 0 < figures.summary.view_flip < 1  # the views' ꟻLIP, computed
    assert f"ꟻLIP {figures.summary.view_flip:.3f} between the views" in v.sentences[1]
    after = "After a platform's re-compression (JPEG q75): "
    assert any(s.startswith(after) and "% of the protection remains" in s for s in v.sentences)
    line = one_line("a.png", figures)
    assert line.startswith("a.png: PSNR") and "vs same-PSNR noise" in line and "after jpeg75" in line


def test_noise_is_no_better_than_noise(ensemble, original):
    """A "cloak" that is itself same-PSNR noise (another seed) must be called what it is."""
    fake = same_psnr_noise(original, 10.0, seed=123)
    f = assess(original, fake, ensemble)
    assert abs(f.summary.view_gap) < NO_BETTER_DB
    assert f.summary.retained["jpeg75"] is None  # no advantage to retain
    v = judge(f)
    assert v.protection == "none" and v.sentences[1].startswith("Protection: no better than random noise")
    assert any("nothing to keep" in s for s in v.sentences)


def test_identical_images(ensemble, original):
    f = assess(original, original.copy(), ensemble)
    assert f.before.cloak.psnr == math.inf and f.linf == 0 and f.eps_levels == 0
    assert f.summary.view_gap == 0 and f.summary.retained["jpeg75"] is None
    v = judge(f)
    assert v.sentences[0] == "Visibility: identical to the original (no pixel changed)"
    assert v.sentences[1].startswith("Protection: none")
    assert json.loads(json.dumps(f.to_dict(), allow_nan=False))["before"]["cloak"]["psnr"] is None


def test_stated_budget_is_used_and_overshoot_is_flagged(ensemble, original):
    fake = uniform_noise(original, 6, seed=5)
    f = assess(original, fake, ensemble, eps_levels=4, purifications=())
    assert f.eps_levels == 4 and not f.eps_inferred and f.linf == 6
    assert f.purified == {} and f.summary.retained == {}
    assert any("more than the stated budget 4/255" in w for w in f.warnings)
    assert any(s.startswith("Warning: ") for s in judge(f).sentences)


def test_visibility_counts_only_visible_pixels(ensemble, original, cloaked):
    """Transparent pixels neither hide nor add grain: an RGBA drawing is judged on what can be seen."""
    alpha = np.zeros(original.shape[:2], np.uint8)
    alpha[:, :32] = 255  # a quarter visible
    half = original.copy()
    half[:, :32] = cloaked[:, :32]  # the cloak only where it shows
    f = assess(original, half, ensemble, alpha=alpha, purifications=())
    opaque = assess(original, half, ensemble, purifications=())
    assert f.visible == pytest.approx(0.25)
    assert f.before.cloak.psnr < opaque.before.cloak.psnr - 5  # averaging in unchanged hidden pixels flatters it
    assert "over its visible pixels" in judge(f).sentences[0]


def test_assess_rejects_bad_input(ensemble, original):
    with pytest.raises(ValueError, match="differ in size: original 128x96, cloaked 120x96"):
        assess(original, original[:, :120].copy(), ensemble)
    with pytest.raises(ValueError, match="uint8"):
        assess(original, original.astype(np.float32), ensemble)
    with pytest.raises(ValueError, match="unknown purification"):
        assess(original, original, ensemble, purifications="jpeg75,nope")


def test_encoder_without_decoder(taesana, original, cloaked):
    """taesana has no decoder: no mimic's view, the verdict rests on the latent."""
    f = assess(original, cloaked, Evaluator([taesana]))
    assert f.mimic_model is None and f.before.cloak.view_psnr is None and f.summary.view_gap is None
    assert judge(f).sentences[1].startswith("Protection (no decoder, latent only): the taesana latent moved")


# --- one pass: each image encoded once; precision -----------------------------------------------------


counting = counting_passes  # the images through a model's encoder and decoder while open


def test_assess_encodes_each_distinct_image_once(ensemble, original, cloaked):
    """original, cloak, 2 baselines, and per purification the 4 purified ones: nothing twice, and the artwork
    that the purified views' copies are judged against is never encoded. Without a cache: 4 + 4 per
    purification; with one kept between calls on the same original, the original and its purified copies are
    passed once for all the calls (the benchmark's protections)."""
    ev = Evaluator(ensemble)
    for purifications, distinct in (((), 4), ("jpeg75", 8), ("jpeg75,resize0.5", 12)):
        with counting(ensemble.models[0]) as n:
            assess(original, cloaked, ev, purifications=purifications)
        assert n == {"encode": distinct, "decode": distinct}, purifications
    cache: dict = {}
    # the original (4 → 3), then the JPEG copy (8 → 7 → 6) and the resized one (12 → 10 → 9) come from the cache
    for purifications, distinct in (((), 4), ("jpeg75", 7), ("jpeg75,resize0.5", 10), ("jpeg75,resize0.5", 9)):
        with counting(ensemble.models[0]) as n:
            assess(original, cloaked, ev, purifications=purifications, cache=cache)
        assert n == {"encode": distinct, "decode": distinct}, purifications
    x = to_tensor(original)
    with counting(ensemble.models[0]) as n:  # a version that is the reference itself (the benchmark's clean row)
        ev.compare(x, {"x": x})
    assert n == {"encode": 1, "decode": 1}


def test_one_pass_gives_the_figures_of_separate_comparisons(ensemble, original, cloaked):
    """assess measures all its comparisons in one pass, sharing the purified originals' encodings; the figures
    are those of the comparisons made one by one (each image is encoded alone, so to the last bit)."""
    ev = Evaluator(ensemble)
    f = assess(original, cloaked, ev, purifications="jpeg75,resize0.5")
    noise, uniform = baselines(original, cloaked, f.eps_levels, 0)
    x, xc, xn, xu = (to_tensor(a) for a in (original, cloaked, noise, uniform))
    before, clean_copy = ev.compare(x, {"cloak": xc, "noise": xn, "uniform": xu}, flip=("cloak",))
    assert f.before.clean_copy_psnr == pytest.approx(clean_copy, abs=1e-6)
    for k in ("cloak", "noise", "uniform"):
        assert getattr(f.before, k).metrics() == pytest.approx(before[k].metrics(), abs=1e-6), k
    for p in build_purifications("jpeg75,resize0.5"):
        px, pc, pn, pu = p(torch.cat([x, xc, xn, xu])).split(1)
        after, copy = ev.compare(px, {"cloak": pc, "noise": pn, "uniform": pu}, artwork=x)
        got = f.purified[p.name]
        assert got.comparison.clean_copy_psnr == pytest.approx(copy, abs=1e-6)
        for k in ("cloak", "noise", "uniform"):
            assert getattr(got.comparison, k).metrics() == pytest.approx(after[k].metrics(), abs=1e-6), (p.name, k)
        assert got.cost.metrics() == pytest.approx(ev.compare(x, {"p": px})[0]["p"].metrics(), abs=1e-6)


def test_the_cache_and_the_view_memo_change_no_bit(ensemble, original, cloaked):
    """Passes reused from a cache kept between calls, or from the views an evaluator keeps, give the very bits
    a fresh evaluator computes: a cached second call's figures, and the views shown after the figures (the
    report, the web page), which cost no pass."""
    other = np.clip(cloaked.astype(int) + 1, 0, 255).astype(np.uint8)
    fresh = assess(original, other, Evaluator(ensemble), purifications="jpeg75,resize0.5").to_dict()
    ev, cache = Evaluator(ensemble), {}
    assess(original, cloaked, ev, purifications="jpeg75,resize0.5", cache=cache)
    assert assess(original, other, ev, purifications="jpeg75,resize0.5", cache=cache).to_dict() == fresh
    with counting(ensemble.models[0]) as n:
        views = ev.views(original, other)
    assert n == {"encode": 0, "decode": 0}
    for got, want in zip(views, Evaluator(ensemble).views(original, other)):
        assert np.array_equal(got, want)


def _without(d, keys: set[str]):
    """``d`` (JSON-like) with every entry named in ``keys`` left out, at any depth."""
    if isinstance(d, dict):
        return {k: _without(v, keys) for k, v in d.items() if k not in keys}
    return [_without(v, keys) for v in d] if isinstance(d, list) else d


def test_quick_figures_are_the_full_ones_without_the_uniform_baseline(ensemble, original, cloaked, figures):
    """Quick leaves out the same-L∞ baseline and the pixels' ꟻLIP, in 6 passes instead of 8; every figure it
    gives, and so every word, is the full figures' to the bit."""
    with counting(ensemble.models[0]) as n:
        quick = assess(original, cloaked, ensemble, figures="quick")
    assert n == {"encode": 6, "decode": 6}
    assert quick.before.uniform is None and quick.purified["jpeg75"].comparison.uniform is None
    assert quick.before.cloak.flip is None and quick.before.cloak.view_flip == figures.before.cloak.view_flip
    assert quick.summary.view_gap_uniform is None and quick.summary.latent_ratio_uniform == {}
    uniform = {"uniform", "view_gap_uniform", "latent_ratio_uniform"}
    full = _without(figures.to_dict(), uniform)
    full["before"]["cloak"]["flip"] = None
    assert _without(json.loads(json.dumps(quick.to_dict(), allow_nan=False)), uniform) == full
    vq, vf = judge(quick), judge(figures)
    assert (vq.visibility, vq.protection, vq.survival) == (vf.visibility, vf.protection, vf.survival)
    with pytest.raises(ValueError, match="figures must be one of"):
        assess(original, cloaked, ensemble, figures="fast")


@pytest.mark.cpu_level
def test_bf16_figures_are_close_to_fp32(ensemble, original, cloaked, figures):
    """bf16 autocast of the encoder and decoder: the pixel figures are the same, the cloak's view and latent
    close; the noise baselines' views (35-45 dB from the original's, near bf16's own rounding) move most,
    which is why the figures of a protect run stay fp32 (benchmarks/figures_precision/RESULTS.md)."""
    from glazeish.device import native_precisions

    if "bf16" not in native_precisions("cpu"):
        pytest.skip("this CPU does not compute bf16 natively (refused: test_device)")
    f = assess(original, cloaked, Evaluator(ensemble, precision="bf16"))
    for k in ("cloak", "noise", "uniform"):
        a, b = getattr(figures.before, k), getattr(f.before, k)
        assert (a.psnr, a.ssim) == (b.psnr, b.ssim)  # pixels only
        assert b.latent["taef2"] == pytest.approx(a.latent["taef2"], rel=0.1)
        assert b.copy_psnr == pytest.approx(a.copy_psnr, abs=0.1)
        assert b.view_psnr == pytest.approx(a.view_psnr, abs=0.3 if k == "cloak" else 3.0)
    assert f.before.cloak.flip == figures.before.cloak.flip
    assert f.summary.view_gap > NO_BETTER_DB
    jp, jp32 = f.purified["jpeg75"].comparison, figures.purified["jpeg75"].comparison
    assert jp.cloak.view_psnr == pytest.approx(jp32.cloak.view_psnr, abs=0.3)
    with pytest.raises(ValueError, match="precision must be one of"):
        Evaluator(ensemble, precision="int8")


@pytest.mark.cpu_level
def test_protect_figures_stay_fp32_whatever_the_cloak_precision(ensemble):
    from glazeish.config import ProtectConfig
    from glazeish.device import native_precisions
    from glazeish.job import Cloaker, Job
    from glazeish.protect import Protector

    if "bf16" not in native_precisions("cpu"):
        pytest.skip("this CPU computes only fp32 natively")
    config = ProtectConfig(precision="bf16", device="cpu")
    cloaker = Cloaker(Job(config=config), Protector(config, ensemble=ensemble))
    assert cloaker.protector.precision == "bf16" and cloaker.evaluator.precision == "fp32"


def test_a_purification_that_gives_the_view_is_compared_as_it_is(ensemble, original, cloaked):
    """CAT-style purifiers hand back the adapted model's copy: its figures must not go through the mimic's view
    again. With an identity that says so, the 'view' after it is the picture itself."""
    from glazeish.purify import Purification

    class AsView(Purification):
        name = "as-view"
        gives_view = True

        def apply(self, x):
            return x

    f = assess(original, cloaked, Evaluator(ensemble), purifications=[AsView()], flip=())
    after = f.purified["as-view"].comparison
    assert after.cloak.view_psnr == pytest.approx(f.before.cloak.psnr, abs=0.01)  # the pixels' own PSNR
    assert after.noise.view_psnr == pytest.approx(f.before.noise.psnr, abs=0.01)
    assert f.before.cloak.view_psnr < after.cloak.view_psnr  # the mimic's view, for the cloak itself


def test_retained_is_one_definition():
    assert retained(1.0, 2.0) == 0.5 and retained(-1.0, 2.0) == -0.5
    assert retained(1.0, 0.1, least=0.5) is None and retained(1.0, math.inf) is None
    assert retained(math.nan, 2.0) is None


def test_verdict_tables_are_monotone():
    assert visibility(45).key == "invisible" and visibility(20).key == "clearly visible"
    # never strong when the views look alike, however large the gap over noise
    assert protection(29.0, 15.0).key == "subtle" and protection(35.0, 20.0).key == "faint"
    assert protection(18.0, 10.0).key == "strong" and protection(18.0, 1.0).key == "subtle"
    assert protection(18.0, 0.1) is None


def test_protection_words_look_past_a_tint_and_at_what_a_person_sees():
    # mostly colour (88 % of the squared error) and subtle beyond it: a tint, not "visible"
    assert protection(24.3, 17.0, detinted=33.4).key == "tint"
    assert tint_share(24.3, 33.4) > TINT_SHARE
    # a fifth colour: as strong as what is left beyond the colours
    assert protection(24.3, 14.0, detinted=25.4).key == "subtle"
    assert protection(22.0, 14.0, detinted=22.5).key == "visible"
    # a colour change as large as a navy sky turned grey stays strong
    assert protection(17.8, 17.0, detinted=26.5).key == "strong"
    # a change that texture hides (low ꟻLIP between the views) is at most subtle, whatever its dB
    assert protection(22.0, 14.0, detinted=22.5, view_flip=FLIP_VISIBLE / 2).key == "subtle"
    assert protection(22.0, 14.0, detinted=22.5, view_flip=FLIP_VISIBLE * 2).key == "visible"
    assert protection(32.0, 14.0, detinted=32.0, view_flip=0.0).key == "faint"  # never raised
    assert protection(24.3, 17.0, detinted=33.4, view_flip=FLIP_VISIBLE / 2).key == "faint"  # an unseen tint
    # the scale runs strongest to faintest, "tint" between visible and subtle, and no dB reaches "tint"
    assert [lv.key for lv in PROTECTION] == ["strong", "visible", "tint", "subtle", "faint"]
    assert all(protection(db, 10.0).key != "tint" for db in range(10, 40))


# --- two files -----------------------------------------------------------------------------------


def test_load_pair_resizes_same_aspect_and_refuses_others(tmp_path, original, cloaked):
    a = save_image(tmp_path / "a.png", original)
    b = save_image(tmp_path / "b.png", np.asarray(Image.fromarray(cloaked).resize((256, 192), Image.LANCZOS)))
    o, c, alpha, warns = load_pair(a, b)
    assert o.shape == c.shape == original.shape and alpha is None
    assert len(warns) == 1 and "256x192" in warns[0] and "resized" in warns[0]
    crop = save_image(tmp_path / "crop.png", cloaked[:, :100].copy())
    with pytest.raises(ImageError, match="different aspect ratio"):
        load_pair(a, crop)
    mirror = save_image(tmp_path / "mirror.png", original[:, ::-1].copy())
    with pytest.raises(ImageError, match="too different .* to be a cloak"):
        load_pair(a, mirror)


# --- the refactor kept the figures --------------------------------------------------------------------

#: a ``glazeish protect --json`` row (136×104 crop of the test painting at (100, 150), default preset,
#: 3 steps, seed 1, fp32). First pinned before the evaluation layer existed (the layer kept pixels and figures);
#: re-pinned when the kernels were made thread-count independent (<0.002 dB), when the default became the
#: masked, energy-bounded mimic-away cloak (issue 15), and when the 1×1 and first convolutions went to one
#: thread (issue 26: figures moved < 0.005 dB). A change here means the output of ``protect`` changed.
REFERENCE = {
    "psnr": {"cloak": 38.70508900818032, "random": 31.326452253679022},
    "ssim": {"cloak": 0.9931127429008484, "random": 0.9518570899963379},
    "latent_displacement": {"cloak": 0.1763328943628432, "random": 0.16195586079640917},
    "mimic_psnr": {"cloak": 27.37554333696704, "random": 31.15076006515551},
}
#: the pixels' sha256 per CPU class (glazeish.device.cpu_class): other kinds of CPU round the last bits of some
#: kernels differently, and a cloak follows them. On a class not listed the figures are checked, to within
#: what two CPUs can differ by (the Xeon with AMX this was first pinned on gave 38.7011 / 27.3738 dB).
PIXELS_SHA256 = {
    "AMD EPYC [avx512-bf16] · AVX512 · fp32,bf16": "78511bdd08ee2290e24608758f60b82afc06d35ec2ad8112cc83c0c2a717c597",
    "AMD EPYC [avx512-bf16] · AVX2 · fp32": "78511bdd08ee2290e24608758f60b82afc06d35ec2ad8112cc83c0c2a717c597",
}


@pytest.mark.cpu_level
def test_outputs_and_figures_unchanged_by_the_evaluation_layer(tmp_path, painting_path, models_dir):
    import hashlib

    from typer.testing import CliRunner

    from conftest import crop_rgb
    from glazeish.cli import app
    from glazeish.device import cpu_class

    src = tmp_path / "painting.png"
    Image.fromarray(crop_rgb(painting_path, 136, 104, 100, 150)).save(src)
    res = CliRunner().invoke(app, ["protect", str(src), "-o", str(tmp_path / "out"), "--precision", "fp32",
                                   "--steps", "3", "--seed", "1", "--json", "--no-metadata", "--purify", "none",
                                   "--figures", "full", "--models", str(models_dir)])  # full: the uniform baseline
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)
    rgb = np.asarray(Image.open(row["output"]).convert("RGB"))
    pinned = PIXELS_SHA256.get(cpu_class())
    exact = pinned is not None
    if exact:
        assert hashlib.sha256(rgb.tobytes()).hexdigest() == pinned
    b = row["figures"]["before"]
    ref = REFERENCE
    for new, old in ((b["cloak"], "cloak"), (b["uniform"], "random")):  # the old baseline is today's "uniform"
        assert new["psnr"] == pytest.approx(ref["psnr"][old], abs=1e-4 if exact else 0.02)
        assert new["ssim"] == pytest.approx(ref["ssim"][old], abs=1e-5 if exact else 1e-4)
        assert new["latent"]["taef2"] == pytest.approx(ref["latent_displacement"][old], rel=1e-4 if exact else 1e-2)
        assert new["view_psnr"] == pytest.approx(ref["mimic_psnr"][old], abs=1e-3 if exact else 0.05)
    assert jsonable(row) == row


def test_sampled_tiles_spread_over_the_layout():
    from glazeish.evaluation.measure import sampled_tiles
    from glazeish.tiling import plan_tiles

    grid = plan_tiles(2048, 2048, 512, 0)
    assert len(grid) == 16
    diag = sampled_tiles(grid, 4)
    assert [(t.top, t.left) for t in diag] == [(i * 512, i * 512) for i in range(4)]  # every row and column
    assert sampled_tiles(grid, 0) == grid and sampled_tiles(grid, 16) == grid and sampled_tiles(grid, 99) == grid
    assert sampled_tiles(grid, 1) == [grid[8]]
    assert len(set(sampled_tiles(grid, 7))) == 7


def test_sampled_figures_are_the_sampled_tiles_figures(ensemble, original, cloaked):
    """With ``sample`` the pixel figures still cover every pixel (the same numbers as a full run) and the model
    figures are exactly those of the sampled tile measured on its own; the share measured is reported."""
    noise, uniform = baselines(original, cloaked, 4.0, 0)
    x, xc, xn = (to_tensor(a) for a in (original, cloaked, noise))  # 96×128: 2×2 tiles of 48×64
    full = Evaluator(ensemble, tile=64)
    one = Evaluator(ensemble, tile=64, sample=1)
    (f_full, _), (f_one, copy_one) = full.compare(x, {"c": xc, "n": xn}), one.compare(x, {"c": xc, "n": xn})
    tiles, sampled = one.tiles(96, 128)
    assert len(tiles) == 4 and sampled == [tiles[2]] and one.measured_share(96, 128) == 0.25
    t = sampled[0]
    crop = Evaluator(ensemble, tile=64)
    f_crop, copy_crop = crop.compare(t.slice(x), {"c": t.slice(xc), "n": t.slice(xn)})
    for k in ("c", "n"):
        assert (f_one[k].psnr, f_one[k].ssim) == (f_full[k].psnr, f_full[k].ssim)  # pixels: every tile
        assert f_one[k].view_psnr == pytest.approx(f_crop[k].view_psnr, abs=1e-9)
        assert f_one[k].copy_psnr == pytest.approx(f_crop[k].copy_psnr, abs=1e-9)
        assert f_one[k].latent == pytest.approx(f_crop[k].latent, abs=1e-12)
    assert copy_one == pytest.approx(copy_crop, abs=1e-9)
    assert f_one["c"].view_psnr != f_full["c"].view_psnr
    figs = assess(original, cloaked, one, purifications=())
    assert figs.measured == 0.25 and figs.to_dict()["measured"] == 0.25
    assert any(s.startswith("Measured on: 25% of the picture") for s in judge(figs).sentences)
    assert "model figures on 25% of the image" in one_line("x", figs)
    assert assess(original, cloaked, full, purifications=()).measured == 1.0
    with pytest.raises(ValueError, match="sample must be"):
        Evaluator(ensemble, sample=-1)


def test_job_checks_its_figure_tiles():
    from glazeish.job import Job

    assert Job().figure_tiles == 4
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="figure tiles must be"):
            Job(figure_tiles=bad)


def test_job_figures_mode_reaches_assess_and_keeps_earlier_keys(models_dir, ensemble, original):
    """``Job(figures="quick")`` is checked, changes the job's key (its rows differ), and gives quick figures;
    the default ``full`` leaves the key of a job as it was before the choice existed."""
    from glazeish.config import ProtectConfig
    from glazeish.imageio import Artwork
    from glazeish.job import Cloaker, Job
    from glazeish.protect import Protector

    with pytest.raises(ValueError, match="figures must be one of"):
        Job(figures="fast")
    assert "figures" not in Job().fingerprint() and Job(figures="quick").fingerprint()["figures"] == "quick"
    config = ProtectConfig(steps=1, device="cpu", precision="fp32", models_dir=str(models_dir))
    cloaker = Cloaker(Job(config=config, figures="quick"), Protector(config, ensemble=ensemble))
    art = Artwork(rgb=original[:64, :64].copy())
    figs = cloaker.figures(art, cloaker.cloak(art))
    assert figs.before.uniform is None and figs.before.cloak.view_flip is not None


# --- grain on flat fills, the change beyond a tint (issue 27) --------------------------------------


def test_grain_is_the_high_pass_of_the_change_on_flat_fills_only():
    from glazeish.metrics import flat_mask, high_pass

    x = torch.full((1, 3, 64, 96), 0.2)
    x[..., 48:] = torch.linspace(0, 1, 48)  # the right half a steep ramp: not flat
    m = flat_mask(x)
    assert m[..., :, :44].min() == 1 and m[..., :, 50:].max() == 0  # within 2 px of the ramp counts as not flat
    smooth = 0.01 * torch.linspace(-1, 1, 96).expand(1, 3, 64, 96)  # a shading field: no grain
    assert float(high_pass(smooth)[..., 4:-4, 4:-4].abs().max()) < 1e-6
    checker = 0.004 * (torch.arange(96)[None, :] + torch.arange(64)[:, None]).remainder(2).float().mul(2).sub(1)
    hp = high_pass(checker.expand(1, 3, 64, 96))  # a crosshatch of ±1 level keeps (almost) all its energy
    assert float(hp[..., 4:-4, 4:-4].square().mean().sqrt()) == pytest.approx(0.004, rel=0.05)


def test_grain_and_detinted_views_in_the_figures(ensemble, flat_path):
    """On a flat drawing: noise of the same PSNR has grain, a smooth tint of the image has none; a view moved
    only by a global tint reads far from the original's view yet close once its colours are matched."""
    from conftest import crop_rgb

    x = crop_rgb(flat_path, 128, 96, 40, 40)
    ev = Evaluator(ensemble)
    noise = np.clip(x + np.random.default_rng(0).normal(0, 3, x.shape).round(), 0, 255).astype(np.uint8)
    tinted = np.clip(x.astype(int) + [6, -4, 3], 0, 255).astype(np.uint8)  # a colour cast, no grain at all
    figs, _ = ev.compare(to_tensor(x), {"noise": to_tensor(noise), "tint": to_tensor(tinted)})
    assert figs["noise"].grain == pytest.approx(3 * 0.95, rel=0.1)  # a 5×5 box keeps 24/25 of white noise
    assert figs["tint"].grain < 0.05
    assert figs["tint"].view_psnr < 40 and figs["tint"].view_psnr_detinted > figs["tint"].view_psnr + 5
    assert figs["noise"].metrics()["grain"] == figs["noise"].grain and "view_psnr_detinted" in figs["noise"].metrics()


def test_grain_on_flat_fills_caps_the_visibility_words(figures):
    assert visibility(39.0).key == "very hard to see"
    assert visibility(39.0, grain=0.4).key == "very hard to see"
    assert visibility(39.0, grain=1.4).key == "faint grain"  # the crosshatch seen at 1:1 in a navy sky
    assert visibility(30.0, grain=1.4).key == "visible"  # never better than the PSNR says
    s = judge(figures).sentences
    b = figures.before
    if b.cloak.grain is None:  # a painting crop with no flat fill: nothing said about one
        assert "flat fills" not in s[0]
    assert figures.summary.view_psnr_detinted == b.cloak.view_psnr_detinted is not None
    assert "once its colours are matched to the original view's" in s[1]
    assert figures.to_dict()["summary"]["view_gap_detinted"] == pytest.approx(b.view_gap("noise", detinted=True))


def test_a_change_that_is_mostly_colour_is_called_a_colour_shift(ensemble, original):
    """A copy whose change is the overall colour (a haze, a tint) is said to be that, with what is left beyond it."""
    from glazeish.evaluation.verdicts import TINT_SHARE, tint_share

    assert tint_share(24.3, 33.4) == pytest.approx(0.877, abs=1e-3) and tint_share(24.7, 24.8) < TINT_SHARE
    assert tint_share(None, 30.0) is None and tint_share(30.0, 29.0) == 0.0
    tinted = np.clip(original.astype(int) + np.array([6, 0, -6]), 0, 255).astype(np.uint8)
    f = assess(original, tinted, ensemble, eps_levels=6)
    s = f.summary
    v = judge(f)
    assert v.protection == "faint" and tint_share(s.view_psnr, s.view_psnr_detinted) >= TINT_SHARE
    assert any(x.startswith("Colour shift: ") and "beyond it, the copy" in x for x in v.sentences)
    assert "% of the change is colour" in one_line("a.png", f)


def test_the_attacks_clean_passes_serve_the_figures_without_changing_a_bit(ensemble, original, tmp_path,
                                                                            monkeypatch):
    """A cloak in fp32 passes the original through the encoder and decoder to know what to push away from;
    ``cloak_file``'s figures then take that pass instead of making it again: one encoder and one decoder pass
    fewer, the very same figures, and nothing kept once the file is done."""
    from glazeish import job as job_module
    from glazeish.config import ProtectConfig
    from glazeish.job import Cloaker, Job
    from glazeish.protect import Protector

    art = tmp_path / "art.png"
    Image.fromarray(original).save(art)
    config = ProtectConfig(steps=1, precision="fp32", device="cpu")
    cloaker = Cloaker(Job(config=config), Protector(config, ensemble=ensemble))
    model = ensemble.models[0]
    with counting(model) as shared:
        a = cloaker.cloak_file(art, tmp_path / "a.png")
    assert model.memo is None
    monkeypatch.setattr(job_module, "sharing_passes", lambda models: contextlib.nullcontext())
    with counting(model) as alone:
        b = cloaker.cloak_file(art, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert a.figures.to_dict() == b.figures.to_dict()
    assert {k: alone[k] - shared[k] for k in alone} == {"encode": 1, "decode": 1}
