"""Tests for glazeish.report (the HTML report and its pictures) and the ``check`` command.

They use the real taef2 weights and small crops (128×96) of the shared test images; both are found
under ``../shared`` (or ``$GLAZEISH_MODELS``) and the tests are skipped, saying so, when absent.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from glazeish.evaluation import assess, judge
from glazeish.evaluation.verdicts import NO_BETTER_DB
from glazeish.imageio import save_image
from glazeish.report import amplified_delta, report_path, write_report

EPS = 4  # 1/255 units


@pytest.fixture(scope="module")
def cloak_figures(ensemble, original, cloaked):
    return assess(original, cloaked, ensemble)


def test_amplified_delta_is_one_picture_of_the_change(original, cloaked):
    d = amplified_delta(original, cloaked, EPS)
    assert d.dtype == np.uint8 and d.shape == original.shape
    assert d.min() <= 1 and d.max() >= 254  # ±eps is full contrast
    assert set(np.unique(amplified_delta(original, original, EPS))) == {128}


# --- the HTML report -------------------------------------------------------------------------------


def _images(text: str) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(m)))
        for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    ]


def test_write_report(tmp_path, ensemble, original, cloaked, cloak_figures):
    from glazeish.evaluation import Evaluator

    dest = report_path(tmp_path / "art.protected.png")
    assert dest.name == "art.protected.report.html"
    out = write_report(dest, original, cloaked, cloak_figures, Evaluator(ensemble))
    assert out == dest and sorted(p.name for p in tmp_path.iterdir()) == [dest.name]  # no temp file left
    text = dest.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "http" not in text  # self-contained
    for v in judge(cloak_figures).sentences:
        assert html.escape(v) in text
    pics = _images(text)
    assert len(pics) == 7 and all(p.size == (128, 96) for p in pics[:5])
    assert all(p.size == (128, 96) for p in pics[5:])  # the 1:1 details (the crop is larger than this image)
    # original and cloaked come through as-is (PNG is lossless); δ is mid-grey-centred and uses full contrast
    assert np.array_equal(np.asarray(pics[0].convert("RGB")), original)
    assert np.array_equal(np.asarray(pics[1].convert("RGB")), cloaked)
    delta = np.asarray(pics[2].convert("RGB")).astype(int)
    assert delta.min() <= 1 or delta.max() >= 255
    assert "mimic&#x27;s view vs the original&#x27;s" in text and "jpeg75" in text and "same PSNR" in text


def test_report_of_quick_figures_leaves_the_same_linf_column_empty(ensemble, original, cloaked, cloak_figures):
    """Quick figures have no same-L∞ baseline: its column says "–", the other columns are the full report's."""
    from glazeish.report import table_rows

    quick, full = table_rows(assess(original, cloaked, ensemble, figures="quick")), table_rows(cloak_figures)
    assert [r[0] for r in quick] == [r[0] for r in full if not r[0].startswith("ꟻLIP")]  # no pixels' ꟻLIP
    full = [r for r in full if not r[0].startswith("ꟻLIP")]
    assert all(q[3] == "–" for q in quick if "L∞" not in q[0]) and [q[:3] for q in quick] == [f[:3] for f in full]
    assert [q[4] for q in quick] == [f[4] for f in full]


def test_report_downscales_pictures_and_handles_identical(tmp_path, ensemble, original):
    big = np.asarray(Image.fromarray(original).resize((800, 600), Image.BICUBIC))
    f = assess(big, big.copy(), ensemble, purifications=())
    # precomputed views: the layout is under test here, not the encoder
    dest = write_report(tmp_path / "r.html", big, big, f, views=(big, big))
    pics = _images(dest.read_text(encoding="utf-8"))
    assert len(pics) == 7 and all(p.size == (512, 384) for p in pics[:5])
    assert all(p.size == (192, 192) for p in pics[5:])  # the details stay at 100 %
    assert set(np.unique(np.asarray(pics[2]))) == {128}  # no change: flat grey δ
    assert "identical to the original" in dest.read_text(encoding="utf-8")


# --- the check command -----------------------------------------------------------------------------


@pytest.fixture()
def cli():
    from glazeish.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["check", *(str(a) for a in args)])


def test_check_command_json_and_report(cli, tmp_path, models_dir, ensemble, original, cloaked):
    a = save_image(tmp_path / "a.png", original)
    b = save_image(tmp_path / "b.png", cloaked)
    res = cli(a, b, "--models", models_dir, "--device", "cpu", "--json", "--report", tmp_path)
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)
    assert row["original"] == str(a) and row["eps_inferred"] is True
    assert row["summary"]["view_gap"] > NO_BETTER_DB
    assert row["verdicts"][1].startswith("Protection: a model trained")
    assert Path(row["report"]) == tmp_path / "b.report.html" and Path(row["report"]).is_file()


def test_check_never_writes_its_report_over_an_input(cli, tmp_path, models_dir, original, cloaked):
    a = save_image(tmp_path / "a.png", original)
    b = save_image(tmp_path / "b.png", cloaked)
    before = (a.read_bytes(), b.read_bytes())
    for target in (a, b):
        res = cli(a, b, "--models", models_dir, "--report", target)
        assert res.exit_code == 2 and "one of the images being checked" in res.stderr
    assert (a.read_bytes(), b.read_bytes()) == before


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
