"""Tests for glazeish.report: the "did it work?" figures, verdicts, HTML report and ``check`` command.

They use the real taef2 weights and small crops (128×96) of the shared test images; both are found
under ``../shared`` (or ``$GLAZEISH_MODELS``) and the tests are skipped, saying so, when absent.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from glazeish.imageio import ImageError, read_image, save_image
from glazeish.report import (
    NO_BETTER_DB,
    assess,
    check,
    check_files,
    evaluate,
    jsonable,
    load_pair,
    noise_image,
    report_path,
    verdicts,
    write_report,
)

EPS = 4  # 1/255 units


@pytest.fixture(scope="module")
def ensemble(taef2):
    """The real taef2 (encoder + decoder) from ../shared/models (conftest skips when it is absent)."""
    from glazeish.encoders import Ensemble

    return Ensemble([taef2]).to("cpu")


@pytest.fixture(scope="module")
def original(painting_path) -> np.ndarray:
    """A 128×96 crop of a Van Gogh painting (textured, like most art people protect)."""
    return np.ascontiguousarray(read_image(painting_path).rgb[200:296, 150:278])


@pytest.fixture(scope="module")
def protector(ensemble):
    from glazeish.protect import ProtectConfig, Protector

    return Protector(ProtectConfig(eps=EPS, steps=3, device="cpu", precision="fp32"), ensemble=ensemble)


@pytest.fixture(scope="module")
def cloaked(protector, original) -> np.ndarray:
    """A real glazeish cloak (default objective, 3 steps, ±4/255)."""
    from glazeish.imageio import Artwork

    return protector.protect(Artwork(rgb=original), evaluate=False).rgb


@pytest.fixture(scope="module")
def cloak_figures(ensemble, original, cloaked) -> dict:
    return assess(original, cloaked, ensemble)


# --- assess -----------------------------------------------------------------------------------------


def test_real_cloak_changes_the_mimic_view_more_than_noise(cloak_figures):
    f = cloak_figures
    assert (f["width"], f["height"]) == (128, 96)
    assert f["eps_inferred"] and f["eps"] == f["linf"] and 0 < f["linf"] <= EPS
    m = f["encoders"]["taef2"]["mimic_psnr"]
    assert m["cloak"] < m["random"] - NO_BETTER_DB  # the mimic's view moved further than with noise
    d = f["encoders"]["taef2"]["latent_displacement"]
    assert d["cloak"] > d["random"]
    assert f["summary"]["mimic_gap_db"] == pytest.approx(m["random"] - m["cloak"])
    assert 30 < f["psnr"]["cloak"] < 60 and 0 < f["ssim"]["cloak"] < 1
    # JPEG q75: measured against the JPEG'd original, and a retained fraction that is a real number
    jp = f["purifications"]["jpeg75"]
    r = jp["retained"]["taef2"]["mimic_psnr"]
    assert r is not None and math.isfinite(r) and r == f["summary"]["retained"]["jpeg75"]
    gap_after = jp["encoders"]["taef2"]["mimic_psnr"]["random"] - jp["encoders"]["taef2"]["mimic_psnr"]["cloak"]
    assert r == pytest.approx(gap_after / f["summary"]["mimic_gap_db"])
    assert f["warnings"] == []


def test_real_cloak_verdicts(cloak_figures):
    v = verdicts(cloak_figures)
    assert v[0].startswith("Visibility: ") and f"PSNR {cloak_figures['psnr']['cloak']:.1f} dB" in v[0]
    assert v[1].startswith("Protection: a model trained on this image reproduces something")
    assert "further from the original's than with noise of the same strength" in v[1]
    assert any(s.startswith("After a JPEG re-save (q75): ") and "% of the protection remains" in s for s in v)
    assert not any("no better" in s for s in v)


def test_evaluate_matches_protector_evaluate(ensemble, protector, original, cloaked):
    """The pure function computes what Protector.evaluate does, so that one can call the other."""
    ours = evaluate(ensemble, original, cloaked, EPS / 255, seed=0)
    theirs = protector.evaluate(original, cloaked)
    assert ours["encoders"] == theirs["encoders"]
    assert ours["psnr"] == theirs["psnr"] and ours["ssim"] == theirs["ssim"]
    assert ours["linf"] == pytest.approx(theirs["linf"], abs=1e-3)


def test_noise_is_no_better_than_noise(ensemble, original):
    """A "cloak" that is just uniform noise (another seed) must be called what it is."""
    fake = noise_image(original, EPS / 255, seed=123)
    f = assess(original, fake, ensemble)
    assert abs(f["summary"]["mimic_gap_db"]) < NO_BETTER_DB
    assert f["summary"]["retained"]["jpeg75"] is None  # no advantage to retain
    v = verdicts(f)
    assert v[1].startswith("Protection: no better than random noise of the same strength")
    assert any("nothing to keep" in s for s in v)


def test_identical_images(ensemble, original):
    f = assess(original, original.copy(), ensemble)
    assert f["psnr"]["cloak"] == math.inf and f["linf"] == 0 and f["eps"] == 0
    assert f["summary"]["mimic_gap_db"] == 0 and f["summary"]["retained"]["jpeg75"] is None
    v = verdicts(f)
    assert v[0] == "Visibility: identical to the original (no pixel changed)"
    assert v[1].startswith("Protection: none")
    # strict JSON: infinities become null
    text = json.dumps(jsonable(f), allow_nan=False)
    assert json.loads(text)["psnr"]["cloak"] is None


def test_stated_budget_is_used_and_overshoot_is_flagged(ensemble, original):
    fake = noise_image(original, 6 / 255, seed=5)
    f = assess(original, fake, ensemble, eps=4, purifications=())
    assert f["eps"] == 4 and not f["eps_inferred"] and f["linf"] == 6
    assert f["purifications"] == {} and f["summary"]["retained"] == {}
    assert any("more than the stated budget 4/255" in w for w in f["warnings"])
    assert any(s.startswith("Warning: ") for s in verdicts(f))


def test_assess_rejects_bad_input(ensemble, original):
    with pytest.raises(ValueError, match="differ in size: original 128x96, cloaked 120x96"):
        assess(original, original[:, :120].copy(), ensemble)
    with pytest.raises(ValueError, match="uint8"):
        assess(original, original.astype(np.float32), ensemble)


def test_encoder_without_decoder(tmp_path, taesana, original, cloaked):
    """taesana has no decoder: no mimic's view, the verdict rests on the latent; the report refuses clearly."""
    from glazeish.encoders import Ensemble

    ens = Ensemble([taesana]).to("cpu")
    f = assess(original, cloaked, ens)
    assert f["mimic_model"] is None and "mimic_psnr" not in f["encoders"]["taesana"]
    assert f["summary"]["mimic_gap_db"] is None
    v = verdicts(f)
    assert v[1].startswith("Protection (no decoder, latent only): the taesana latent moved")
    with pytest.raises(ValueError, match="decoder"):
        write_report(tmp_path / "r.html", original, cloaked, f, ens)
    assert not (tmp_path / "r.html").exists()


def test_verdicts_take_protector_figures(protector, original, cloaked):
    """The web UI and ``protect`` have Protector.evaluate's smaller figures: verdicts work on them too."""
    v = verdicts(protector.evaluate(original, cloaked))
    assert v[0].startswith("Visibility: ") and v[1].startswith("Protection: a model trained on this image")
    assert not any(s.startswith("After ") for s in v)


# --- files ------------------------------------------------------------------------------------------


def test_load_pair_resizes_same_aspect_and_refuses_other(tmp_path, original, cloaked):
    a = save_image(tmp_path / "a.png", original)
    b = save_image(tmp_path / "b.png", np.asarray(Image.fromarray(cloaked).resize((256, 192), Image.LANCZOS)))
    o, c, warns = load_pair(a, b)
    assert o.shape == c.shape == original.shape
    assert len(warns) == 1 and "256x192" in warns[0] and "resized" in warns[0]
    crop = save_image(tmp_path / "crop.png", cloaked[:, :100].copy())
    with pytest.raises(ImageError, match="different aspect ratio"):
        load_pair(a, crop)


def test_check_files(tmp_path, ensemble, original, cloaked):
    a = save_image(tmp_path / "a.png", original)
    b = save_image(tmp_path / "a.protected.png", cloaked)
    f = check_files(a, b, ensemble)
    assert f["original"] == str(a) and f["cloaked"] == str(b)
    assert f["verdicts"] == verdicts(f) and f["verdicts"][1].startswith("Protection: a model trained")


# --- the HTML report -------------------------------------------------------------------------------


def _images(text: str) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(m)))
        for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    ]


def test_write_report(tmp_path, ensemble, original, cloaked, cloak_figures):
    dest = report_path(tmp_path / "art.protected.png")
    assert dest.name == "art.protected.report.html"
    out = write_report(dest, original, cloaked, cloak_figures, ensemble)
    assert out == dest and sorted(p.name for p in tmp_path.iterdir()) == [dest.name]  # no temp file left
    text = dest.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "http" not in text  # self-contained
    for v in verdicts(cloak_figures):
        assert html.escape(v) in text
    pics = _images(text)
    assert len(pics) == 5 and all(p.size == (128, 96) for p in pics)
    # original and cloaked come through as-is (PNG is lossless); δ is mid-grey-centred and uses full contrast
    assert np.array_equal(np.asarray(pics[0].convert("RGB")), original)
    assert np.array_equal(np.asarray(pics[1].convert("RGB")), cloaked)
    delta = np.asarray(pics[2].convert("RGB")).astype(int)
    assert delta.min() <= 1 or delta.max() >= 255
    assert "mimic view PSNR" in text and "jpeg75" in text


def test_report_downscales_pictures_and_handles_identical(tmp_path, ensemble, original):
    big = np.asarray(Image.fromarray(original).resize((800, 600), Image.BICUBIC))
    f = assess(original, original.copy(), ensemble, purifications=())
    f = {**f, "width": 800, "height": 600}
    # precomputed views: the layout is under test here, not the encoder
    dest = write_report(tmp_path / "r.html", big, big, f, views=(big, big))
    pics = _images(dest.read_text(encoding="utf-8"))
    assert len(pics) == 5 and all(p.size == (512, 384) for p in pics)
    assert set(np.unique(np.asarray(pics[2]))) == {128}  # no change: flat grey δ
    assert "identical to the original" in dest.read_text(encoding="utf-8")


# --- the check command -----------------------------------------------------------------------------


@pytest.fixture()
def cli():
    app = typer.Typer()
    app.command()(check)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_check_command_json_and_report(cli, tmp_path, models_dir, ensemble, original, cloaked):
    a = save_image(tmp_path / "a.png", original)
    b = save_image(tmp_path / "b.png", cloaked)
    res = cli(a, b, "--models", models_dir, "--device", "cpu", "--json", "--report", tmp_path)
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)
    assert row["original"] == str(a) and row["eps_inferred"] is True
    assert row["summary"]["mimic_gap_db"] > NO_BETTER_DB
    assert row["verdicts"][1].startswith("Protection: a model trained")
    assert Path(row["report"]) == tmp_path / "b.report.html" and Path(row["report"]).is_file()


def test_check_command_text(cli, tmp_path, models_dir, original):
    a = save_image(tmp_path / "a.png", original)
    res = cli(a, a, "--models", models_dir, "--device", "cpu", "--purify", "none")
    assert res.exit_code == 0, res.output
    assert "Visibility: identical to the original" in res.stdout


def test_check_command_bad_input(cli, tmp_path, models_dir, original):
    a = save_image(tmp_path / "a.png", original)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    for args in [(a, bad), (a, tmp_path / "missing.png"), (a, a, "--encoder", "nope")]:
        res = cli(*args, "--models", models_dir, "--device", "cpu")
        assert res.exit_code == 2, (args, res.output)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("glazeish: error: "), res.stderr
        assert res.stdout == ""
    res = cli(a, bad, "--models", models_dir)
    assert "broken.png" in res.stderr  # the message names the file
