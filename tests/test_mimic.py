"""``glazeish bench mimic``: a real (toy-size) training run per protection, its metrics and its bookkeeping.

The end-to-end tests run quick mode on four 96×96 downscaled paintings (64 px crops, a 16-wide U-Net,
20 steps, 2 samples): they check mechanics, determinism and resuming, not effect size.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glazeish.bench import mimic
from glazeish.bench.mimic import (
    LatentSet, MimicConfig, TinyUNet, c2st_accuracy, colour_histogram, image_stats, run_mimic,
    set_distances, texture_histogram,
)
from glazeish.metrics import StyleFeatures, style_distance

from conftest import IMAGES


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """Four paintings downscaled to 96×96 (a multiple of 32; 64 px crops fit at several positions)."""
    folder = IMAGES / "paintings"
    if not folder.is_dir():
        pytest.skip(f"test paintings not found at {folder} (set GLAZEISH_SHARED)")
    out = tmp_path_factory.mktemp("mimic_imgs") / "paint"
    out.mkdir()
    for p in sorted(folder.glob("*.png"))[:4]:
        with Image.open(p) as im:
            im.convert("RGB").resize((96, 96), Image.LANCZOS).save(out / f"{p.stem[:5]}.png")
    return out


@pytest.fixture(scope="module")
def external_set(tmp_path_factory, small_set) -> Path:
    """A stand-in for another tool's output: each image with a faint ±3/255 checkerboard, named ``<stem>_glazed``."""
    out = tmp_path_factory.mktemp("mimic_ext")
    for p in sorted(small_set.glob("*.png")):
        rgb = np.asarray(Image.open(p).convert("RGB")).astype(np.int16)
        yy, xx = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
        rgb = np.clip(rgb + np.where((yy + xx) % 2 == 0, 3, -3)[..., None], 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(out / f"{p.stem}_glazed.png")
    return out


def _config(images: Path, out: Path, models_dir: Path, **kw) -> MimicConfig:
    return MimicConfig.quick([str(images)], str(out), **{"models_dir": str(models_dir), "steps": 20, "samples": 2,
                                                         "n_ref": 8, "bootstrap": 20, **kw})


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, small_set, external_set, models_dir):
    """One quick run with the clean set, same-budget noise and an imported external set."""
    out = tmp_path_factory.mktemp("mimic_out")
    cfg = _config(small_set, out, models_dir, protections=["none", "random", "external:tool"],
                  external={"external:tool": str(external_set)})
    return cfg, run_mimic(cfg, log=lambda s: None)


# -- the end-to-end run --------------------------------------------------------------------------------


def test_quick_run_writes_results(quick_run):
    cfg, result = quick_run
    out = Path(cfg.out)
    assert result.trained == ["none/seed0", "random/seed0", "external:tool/seed0"]
    assert result.skipped == []
    for name in ("results.csv", "units.jsonl", "summary.csv", "results.md", "samples_grid.png", "training_curves.png",
                 "samples_none.png", "samples_random.png", "samples_external_tool.png", "config.json",
                 "environment.json"):
        assert (out / name).is_file(), name
    rows = _read(out / "results.csv")
    samples = {(r["protection"], r["metric"]) for r in rows if r["stage"] == "samples"}
    assert samples == {(p, m) for p in ("none", "random", "external:tool") for m in mimic.METRICS}
    assert {r["stage"] for r in rows} == {"real", "data", "samples"}
    for r in rows:
        v = float(r["value"])
        assert np.isfinite(v) and v >= 0
        if r["metric"] in ("colour", "texture", "c2st"):
            assert v <= 1
    summary = _read(out / "summary.csv")
    none_style = next(r for r in summary if r["protection"] == "none" and r["metric"] == "style")
    assert float(none_style["ratio"]) == pytest.approx(1.0)  # clean-trained over itself
    assert float(none_style["lo"]) <= float(none_style["hi"])
    losses = _read(out / "runs" / "none" / "seed0" / "losses.csv")
    assert len(losses) == cfg.steps and all(np.isfinite(float(r["loss"])) for r in losses)
    meta = json.loads((out / "runs" / "random" / "seed0" / "metrics.json").read_text())
    assert meta["eps"] == cfg.eps_levels and meta["parameters"] > 0
    grid = np.asarray(Image.open(out / "samples_grid.png"))
    assert grid.shape[1] == 2 + 2 * (cfg.crop + 2)  # two samples a row, 2 px gaps
    assert "external:tool" in (out / "results.md").read_text()


def test_external_pairs_by_stem(quick_run, external_set):
    """The imported set is read by file stem (``<stem>_glazed``), and its latents differ from the clean ones."""
    cfg, _ = quick_run
    run = mimic.MimicRun(cfg, log=lambda s: None)
    clean, ext = (run.latents(p) for p in run.protections if p.name in ("none", "external:tool"))
    assert len(clean) == len(ext) == 4
    assert all(not torch.equal(a, b) for a, b in zip(clean, ext))


def test_resume_skips_finished_versions(quick_run):
    cfg, first = quick_run
    before = (Path(cfg.out) / "runs" / "none" / "seed0" / "metrics.json").read_text()
    again = run_mimic(cfg, log=lambda s: None)
    assert again.trained == []
    assert sorted(again.skipped) == sorted(first.trained)
    assert (Path(cfg.out) / "runs" / "none" / "seed0" / "metrics.json").read_text() == before


def test_same_seed_same_losses_and_metrics(quick_run, small_set, models_dir, tmp_path):
    """A fresh run (new output and work folders) with the same seed reproduces losses and metrics exactly."""
    cfg, _ = quick_run
    cfg2 = _config(small_set, tmp_path / "again", models_dir, protections=["none"])
    run_mimic(cfg2, log=lambda s: None)
    for prot in ("none",):
        a = _read(Path(cfg.out) / "runs" / prot / "seed0" / "losses.csv")
        b = _read(tmp_path / "again" / "runs" / prot / "seed0" / "losses.csv")
        assert a == b
    pick = lambda rows: {(r["protection"], r["stage"], r["metric"]): r["value"] for r in rows  # noqa: E731
                         if r["protection"] in ("none", "(real crops)")}
    assert pick(_read(Path(cfg.out) / "results.csv")) == pick(_read(tmp_path / "again" / "results.csv"))


def test_interrupted_training_resumes_bit_for_bit(tmp_path):
    """Training interrupted after step 10 and resumed from its checkpoint equals 20 steps in one go."""
    gen = torch.Generator().manual_seed(0)
    data = LatentSet.of([torch.randn(32, 12, 12, generator=gen) for _ in range(3)])
    cfg = MimicConfig(images=[], out=str(tmp_path), crop=64, width=8, mults=(1, 2), batch=4, steps=20, ckpt_every=5)
    model, straight = mimic.train(data, cfg, seed=3)

    def interrupt(msg: str) -> None:
        if msg.startswith("step 10/"):
            raise KeyboardInterrupt

    ckpt = tmp_path / "v.ckpt"
    with pytest.raises(KeyboardInterrupt):
        mimic.train(data, cfg, seed=3, ckpt=ckpt, log=interrupt)
    assert len(torch.load(ckpt, weights_only=True)["losses"]) == 10
    resumed_model, resumed = mimic.train(data, cfg, seed=3, ckpt=ckpt)
    assert resumed == straight
    for a, b in zip(model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    # a checkpoint made with other settings is not resumed from
    other = MimicConfig(**{**cfg.__dict__, "lr": 5e-4})
    _, fresh = mimic.train(data, other, seed=3, ckpt=ckpt)
    assert len(fresh) == 20 and fresh[0] == straight[0] and fresh != straight


# -- the model ------------------------------------------------------------------------------------------


def test_unet_shapes_and_learning():
    """The U-Net keeps latent shapes, starts as zero velocity, and a few steps lower the loss on simple data."""
    net = TinyUNet(channels=32, width=8, mults=(1, 2))
    x = torch.randn(2, 32, 8, 8)
    assert net(x, torch.rand(2)).shape == x.shape
    assert torch.count_nonzero(net(x, torch.rand(2))) == 0  # zero-initialised output layer
    # three "images", each one flat colour per channel: a crop is one of three vectors, easy to learn
    gen = torch.Generator().manual_seed(0)
    data = LatentSet.of([torch.randn(32, 1, 1, generator=gen).expand(32, 12, 12).clone() for _ in range(3)])
    cfg = MimicConfig(images=[], out="unused", crop=64, width=8, mults=(1, 2), batch=8, steps=40, lr=3e-3)
    _, losses = mimic.train(data, cfg, seed=0)
    assert np.mean(losses[:5]) > 1.5  # zero velocity at the start: E|ε − x0|² ≈ 2
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])


# -- the metrics on known inputs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def style(models_dir):
    from glazeish.encoders import load_encoder

    return StyleFeatures(load_encoder("taesana", models_dir).encoder)


@pytest.fixture(scope="module")
def crops(small_set) -> torch.Tensor:
    """Eight 64×64 crops of the small paintings, ``8×3×64×64`` in [0, 1]."""
    out = []
    for p in sorted(small_set.glob("*.png")):
        x = torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).float() / 255
        out += [x[:, :64, :64], x[:, 32:, 32:]]
    return torch.stack(out)


def test_set_distance_of_a_set_to_itself_is_zero(style, crops):
    s = image_stats(crops, style)
    assert set_distances(s, s) == {"style": 0.0, "colour": 0.0, "texture": 0.0}
    # for one image against one image, the set style distance is glazeish.metrics.style_distance
    one, two = image_stats(crops[:1], style), image_stats(crops[1:2], style)
    expected = float(style_distance(style(crops[:1]), style(crops[1:2]))[0])
    assert set_distances(one, two)["style"] == pytest.approx(expected, rel=1e-4)
    # a visibly different set (colours inverted) is far away on every statistic
    far = set_distances(image_stats(1 - crops, style), s)
    assert far["style"] > 0 and far["colour"] > 0.5 and far["texture"] >= 0


def test_histograms_on_known_images():
    flat_red = torch.zeros(1, 3, 32, 32)
    flat_red[:, 0] = 1
    h = colour_histogram(flat_red)
    assert h.shape == (1, 512) and h[0, 7 * 64] == 1  # all pixels in the (r=7, g=0, b=0) bin
    t = texture_histogram(flat_red)
    assert t[0, 0] == 1  # no gradients at all
    stripes = torch.zeros(1, 3, 32, 32)
    stripes[..., ::2] = 1
    assert texture_histogram(stripes)[0, -1] == 1  # every gradient is the maximum


def test_c2st_chance_for_identical_sets_and_high_for_different_ones():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(40, 30, generator=gen)
    assert c2st_accuracy(a, a.clone()) == 0.5
    same_dist = c2st_accuracy(a, torch.randn(40, 30, generator=gen))
    assert 0.25 <= same_dist <= 0.75
    shifted = c2st_accuracy(a, torch.randn(40, 30, generator=gen) + 1.5)
    assert shifted >= 0.95
    assert c2st_accuracy(a, a + 0.0, seed=1) == 0.5  # any fold assignment


def _units(stats: list, arm: str = "a") -> list[tuple]:
    """One unit per stats, training seeds 0, 1, ... (one draw)."""
    return [(arm, arm, 0, i, st, 0.5) for i, st in enumerate(stats)]


def test_unit_rows_give_the_set_distances_of_the_samples(style, crops):
    """The rows of ``units.jsonl`` keep exactly what the set distances need: any multiset of units (the arm, a
    bootstrap draw) is as far from the reference, from its rows, as the pooled samples' statistics say."""
    ref = image_stats(crops[:4], style)
    sets = [image_stats(crops[i:i + 2], style) for i in (2, 4, 6)]
    rows = mimic.unit_rows(_units(sets), ref, mimic.histogram_pixels(64, 64))
    assert rows[0]["arm"] == mimic.units.REFERENCE and len(rows) == 4
    assert all(len(r["style"]) == 3 and len(r["colour"]) == 512 and len(r["texture"]) == 16 for r in rows[1:])
    units = mimic.UnitSet.of(rows[1:])
    for times, pooled in (([1, 1, 1], sets), ([2, 0, 1], [sets[0], sets[0], sets[2]])):
        got = units.distances(np.array([times]), rows[0])[0]
        want = set_distances(mimic.ImageStats.cat(pooled), ref)
        assert got == pytest.approx([want["style"], want["colour"], want["texture"]], rel=1e-6, abs=1e-9)


def test_bootstrap_ratio_of_a_set_to_itself_is_one(style, crops):
    ref = image_stats(crops[:3], style)
    sets = [image_stats(crops[2:5], style), image_stats(crops[5:], style)]
    rows = mimic.unit_rows(_units(sets, "none") + _units(sets, "random"), ref, mimic.histogram_pixels(64, 64))
    summary = mimic.summarise(rows[0], rows[1:], resamples=20)
    style_row = next(r for r in summary if r["protection"] == "random" and r["metric"] == "style")
    # paired draws (the same units drawn for both): a version against itself is exactly 1 in every draw
    assert (style_row["ratio"], style_row["ratio_lo"], style_row["ratio_hi"]) == (1.0, 1.0, 1.0)
    assert 0 <= style_row["lo"] <= style_row["value"] <= style_row["hi"]
    times = mimic.resample_counts(2, 20, seed=0)
    assert times.shape == (20, 2) and (times.sum(1) == 2).all()


def _synthetic_rows(seed: int = 0) -> list[dict]:
    """A reference row and units of three arms (clean: 2 seeds; a cloak and its same-PSNR noise: 2 draws × 2
    seeds), with random style coordinates and histogram counts: what a run writes, without a run."""
    rng = np.random.default_rng(seed)
    rows = [{"arm": mimic.units.REFERENCE, "n": 8, "colour": rng.integers(0, 50, 512).tolist(),
             "texture": rng.integers(0, 50, 16).tolist()}]
    for arm, draws, shift in (("none", 1, 0.0), ("cloak", 2, 0.5), ("same-psnr:cloak", 2, 0.1)):
        for draw in range(draws):
            for seed_ in (0, 1):
                rows.append({"arm": arm, "version": f"{arm}#{draw}", "draw": draw, "seed": seed_, "n": 4,
                             "c2st": float(rng.choice([0.75, 1.0])),
                             "style": (rng.normal(size=10) * 0.1 + shift).round(9).tolist(),
                             "colour": rng.integers(0, 30, 512).tolist(), "texture": rng.integers(0, 30, 16).tolist()})
    return rows


def _write_rows(folder: Path, rows: list[dict]) -> None:
    """The three rows files a report reads: ``config.json``, ``units.jsonl`` and ``results.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"images": ["x"], "out": str(folder), "seeds": [0, 1], "draws": 2, "crop": 64, "samples": 4, "bootstrap": 50,
           "images_used": ["a", "b", "c"]}
    (folder / "config.json").write_text(json.dumps(cfg))
    mimic.write_units(folder / "units.jsonl", rows)
    (folder / "results.csv").write_text("protection,stage,seed,metric,value,n\n" + "".join(
        f"(real crops),real,,{m},0.25,4\n" for m in mimic.METRICS))


def test_the_summary_recomputes_from_its_rows_byte_for_byte(tmp_path):
    """``summary.csv`` and ``results.md`` are a function of the rows alone: written twice, from a copy of the
    rows in another folder, the bytes are the same; a RESULTS.md beside them gets the new results.md."""
    rows = _synthetic_rows()
    _write_rows(tmp_path / "a", rows)
    _write_rows(tmp_path / "b", rows)
    (tmp_path / "b" / "RESULTS.md").write_text("# prose\n\n<!-- generated: results.md -->\nold\n<!-- end generated -->\n")
    first = mimic.report_from_rows(tmp_path / "a")
    again = mimic.report_from_rows(tmp_path / "b")
    assert set(first) == {"summary", "markdown"} and set(again) == {"summary", "markdown", "RESULTS"}
    for name in ("summary.csv", "results.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    text = (tmp_path / "b" / "RESULTS.md").read_text()
    assert "old" not in text and "#### Mimicry by training" in text and "| cloak | style | 4 |" in text
    summary = _read(tmp_path / "a" / "summary.csv")
    style = {r["protection"]: r for r in summary if r["metric"] == "style"}
    assert style["none"]["ratio"] == "1" and style["cloak"]["noise_ratio"] and not style["none"]["noise_ratio"]
    # the arm's distance is the squared norm of its sample-weighted mean coordinates (all units weigh 4)
    mean = np.mean([r["style"] for r in rows if r.get("arm") == "cloak"], 0)
    assert float(style["cloak"]["value"]) == pytest.approx(float(mean @ mean), rel=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match="crop"):
        MimicConfig(images=[], out="x", crop=48)
    with pytest.raises(ValueError, match="seed"):
        MimicConfig(images=[], out="x", seeds=[])
    q = MimicConfig.quick(["a"], "b", steps=7)
    assert (q.crop, q.steps, q.limit) == (64, 7, 4)


def test_cli_quick_run(small_set, models_dir, tmp_path):
    """``glazeish bench mimic`` runs and reports what it did."""
    from typer.testing import CliRunner

    from glazeish.bench.cli import app

    args = ["mimic", "--images", str(small_set), "--out", str(tmp_path / "o"), "--quick",
            "--protections", "none", "--steps", "5", "--samples", "2", "--bootstrap", "10", "--models",
            str(models_dir)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "trained 1, skipped 0" in res.output
    assert (tmp_path / "o" / "results.csv").is_file()
    # --report: the summary and results.md again from the rows alone, the same bytes
    written = {n: (tmp_path / "o" / n).read_bytes() for n in ("summary.csv", "results.md")}
    for n in written:
        (tmp_path / "o" / n).unlink()
    rep = CliRunner().invoke(app, ["mimic", "--out", str(tmp_path / "o"), "--report"])
    assert rep.exit_code == 0, rep.output
    assert {n: (tmp_path / "o" / n).read_bytes() for n in written} == written
    missing = CliRunner().invoke(app, ["mimic", "--out", str(tmp_path / "nothing"), "--report"])
    assert missing.exit_code == 2 and "--report" in missing.output
    bad = CliRunner().invoke(app, args[:-2] + ["--seeds", "a,b", "--models", str(models_dir)])
    assert bad.exit_code == 2 and "--seeds" in bad.output


def test_a_corrupt_cache_file_is_said_deleted_and_rebuilt(small_set, models_dir, tmp_path):
    """A torn latents file or a foreign samples file: one line that says so (not torch's advice to load it with
    weights_only=False), the file deleted, and what it held computed again."""
    cfg = _config(small_set, tmp_path / "o", models_dir, protections=["none"], steps=2, limit=2)
    run_mimic(cfg, log=lambda s: None)
    work = tmp_path / "o" / "work"
    [latents], [samples] = list((work / "latents").glob("*.pt")), list((work / "samples").rglob("*.pt"))
    good_latents = torch.load(latents, weights_only=True)
    latents.write_bytes(latents.read_bytes()[:100])
    torch.save({"not": "samples"}, samples)
    seen: list[str] = []
    result = run_mimic(cfg, log=seen.append)
    said = [m for m in seen if "corrupt cache file" in m]
    assert said[0] == f"{samples}: corrupt cache file (not what this run wrote); deleted, it will be rebuilt"
    assert len(said) == 2 and said[1].startswith(f"{latents}: corrupt cache file (") and "weights_only" not in said[1]
    assert result.trained == ["none/seed0"]
    assert all(torch.equal(a, b) for a, b in zip(torch.load(latents, weights_only=True), good_latents))
    assert torch.load(samples, weights_only=True).dtype == torch.uint8


class _Planted:
    """What an attacker plants as a checkpoint: unpickling it would run code (here: touch a file)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_checkpoint_is_never_run(tmp_path):
    cfg = MimicConfig(images=[], out=str(tmp_path), crop=64, width=8, mults=(1, 2), batch=4, steps=3, ckpt_every=5)
    data = mimic.LatentSet.of([torch.randn(32, 12, 12)])
    ckpt = tmp_path / "v.ckpt"
    marker = tmp_path / "pwned"
    torch.save({"key": cfg.train_key(), "payload": _Planted(str(marker))}, ckpt)
    seen: list[str] = []
    _, losses = mimic.train(data, cfg, seed=0, ckpt=ckpt, log=seen.append)
    assert not marker.exists()  # the pickle's code did not run
    assert len(losses) == cfg.steps and any("ignoring checkpoint" in m for m in seen)


class _Counting:
    """A protection with a cache key that counts its calls (and inverts the image)."""

    name, cache_key = "stub", "k1"

    def __init__(self):
        self.calls = 0

    def protect(self, rgb: np.ndarray, key: str) -> np.ndarray:
        self.calls += 1
        return 255 - rgb


def test_arms_draws_and_the_statistics_null(small_set, models_dir, tmp_path):
    """The evidence a sceptic asks for: several draws of each seeded arm, a same-PSNR noise arm paired with its
    cloak unit by unit, a JPEG arm, and a null that only moves the latents' per-channel statistics."""
    cfg = _config(small_set, tmp_path / "o", models_dir, steps=4, protections=[
        "none", "random", "same-psnr:random", "jpeg75:random", "statnull:random"], draws=2, seeds=[0, 1])
    run = mimic.MimicRun(cfg)
    names = [v.name for v in run.versions]
    assert names == ["none", "random#0", "random#1", "same-psnr:random#0", "same-psnr:random#1", "jpeg75:random#0",
                     "jpeg75:random#1", "statnull:random#0", "statnull:random#1"]
    # two draws differ; the null has the clean image's structure and the arm's per-channel statistics
    a, b = run.protected(run.versions[1], 0), run.protected(run.versions[2], 0)
    assert not np.array_equal(a, b)
    clean, moved, null = run.latents(run.versions[0]), run.latents(run.versions[1]), run.latents(run.versions[7])
    assert torch.allclose(null[0].mean((1, 2)), moved[0].mean((1, 2)), atol=1e-4)
    assert torch.allclose(null[0].std((1, 2)), moved[0].std((1, 2)), atol=1e-4)
    assert torch.corrcoef(torch.stack([null[0].flatten(), clean[0].flatten()]))[0, 1] > 0.99
    run.run()
    # a wrapping arm reads what it wraps through the run's cache (a cloak with a cache key: made once)
    assert isinstance(run.versions[3].prot.inner, mimic.run._CachedInner)
    stub = _Counting()
    wrapped = mimic.run._CachedInner(run, stub, 1)
    first = wrapped.protect(run.originals[0], run.keys[0])
    assert np.array_equal(wrapped.protect(run.originals[0], run.keys[0]), first) and stub.calls == 1
    assert (run.work / "cache" / "stub-k1-d1" / f"{run.keys[0]}.png").is_file()
    summary = _read(tmp_path / "o" / "summary.csv")
    style = {r["protection"]: r for r in summary if r["metric"] == "style"}
    assert set(style) == {"none", "random", "same-psnr:random", "jpeg75:random", "statnull:random"}
    assert style["random"]["units"] == "4" and style["none"]["units"] == "2"  # 2 draws × 2 seeds
    assert style["random"]["ratio"] and style["random"]["noise_ratio"]  # paired with clean and with same-PSNR noise
    assert float(style["none"]["ratio"]) == pytest.approx(1.0)
    assert "vs same-PSNR noise" in (tmp_path / "o" / "results.md").read_text()
