"""Tests for glazeish.ui without a browser: the batch job, its error rows, the words and pictures, the page.

The job runs the real taef2 weights on small crops with 2 steps; the browser test is test_webui_browser.py.
"""

from __future__ import annotations

import os
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import crop_rgb
from PIL import Image

from glazeish import ui
from glazeish.config import PRESETS
from glazeish.imageio import read_image

STEPS = 2


# ------------------------------------------------------------------------------------------- words


def test_describe_figures_renders_the_evaluation_layers_sentences():
    text = ui.describe_figures(["Visibility: very hard to see (PSNR 38.0 dB)", "Protection: a_b", "plain"])
    assert text == "**Visibility:** very hard to see \\(PSNR 38.0 dB\\)\n\n**Protection:** a\\_b\n\nplain"
    assert ui.describe_figures([]) == ""


def test_md_escape_neutralises_markup_in_file_names():
    assert ui.md_escape("a_b*[x](y)<b>.png") == r"a\_b\*\[x\]\(y\)\<b\>.png"


# ---------------------------------------------------------------------------------------- pictures


def test_unique_names_number_collisions():
    names = ui.unique_names(["a.png", "a.jpg", "A.webp", "b.png", "noext"])
    assert names == ["a.protected.png", "a-2.protected.png", "A-3.protected.png", "b.protected.png",
                     "noext.protected.png"]


def test_make_zip_stores_files_flat(tmp_path):
    files = []
    for i in range(2):
        d = tmp_path / str(i)
        d.mkdir()
        f = d / f"x{i}.protected.png"
        f.write_bytes(b"png%d" % i)
        files.append(f)
    z = ui.make_zip(files, tmp_path / "all.zip")
    with zipfile.ZipFile(z) as zf:
        assert sorted(zf.namelist()) == ["x0.protected.png", "x1.protected.png"]
        assert zf.read("x1.protected.png") == b"png1"


def test_friendly_error_hides_temp_paths():
    err = ValueError("/tmp/gradio/abc123/scan.png: corrupt or truncated image (broken data stream)\nmore")
    msg = ui.friendly_error(err, "/tmp/gradio/abc123/scan.png", "scan.png")
    assert msg == "scan.png: corrupt or truncated image (broken data stream)"
    assert "memory" in ui.friendly_error(MemoryError(), None, "huge.png")


# ------------------------------------------------------------------------------------ settings


def test_settings_take_preset_values_and_reject_no_encoder():
    c = ui.Settings(intensity="high").config()
    p = PRESETS["high"]
    assert (c.eps_levels, c.steps, c.objective, c.robust, c.encoder) == (p.eps_levels, p.steps, p.objective, p.robust,
                                                                          "taef2")
    c2 = ui.Settings(encoders=["taef2", "taesana"], eps=2.5, steps=3).config("models")
    assert (c2.encoder, c2.eps_levels, c2.steps, c2.models_dir) == ("taef2,taesana", 2.5, 3, "models")
    with pytest.raises(ValueError, match="at least one encoder"):
        ui.Settings(encoders=[]).config()


def test_metadata_names_the_preset_only_when_its_values_are_used():
    s = ui.Settings(intensity="low", creator="  Jane  ", copyright="")
    m = s.metadata_options(s.config())
    assert (m.preset, m.creator, m.copyright, m.enabled) == ("low", "Jane", None, True)
    s2 = ui.Settings(intensity="low", eps=9)
    assert s2.metadata_options(s2.config()).preset == "custom"


def test_workspace_prunes_old_jobs_and_cleans_up(tmp_path):
    ws = ui.Workspace(tmp_path / "ws", keep_seconds=60)
    old = ws.new_job()
    (old / "f.png").write_bytes(b"x")
    past = time.time() - 120
    os.utime(old, (past, past))
    new = ws.new_job()  # prunes the old one
    assert not old.exists() and new.exists()
    ws.cleanup()
    assert not ws.root.exists()


# ---------------------------------------------------------------------------------- the real job


@pytest.fixture
def uploads(tmp_path, painting_path):
    """A 96×64 painting crop, a 40×56 RGBA crop (not a multiple of 8), and a corrupt 'PNG'."""
    d = tmp_path / "uploads"
    d.mkdir()
    Image.fromarray(crop_rgb(painting_path, 96, 64, 120, 200)).save(d / "olive.png")
    rgba = np.dstack([crop_rgb(painting_path, 40, 56, 300, 60), np.zeros((56, 40), np.uint8)])
    rgba[8:48, 8:32, 3] = 255  # opaque centre, transparent frame
    Image.fromarray(rgba, "RGBA").save(d / "sticker.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return [d / "olive.png", d / "broken.png", d / "sticker.png"]


@pytest.fixture
def job(tmp_path, models_dir):
    cache = ui.ProtectorCache()
    ws = ui.Workspace(tmp_path / "work")
    yield {"cache": cache, "workspace": ws, "models_dir": str(models_dir), "device": "cpu", "precision": "fp32"}
    ws.cleanup()


def test_batch_cloaks_good_files_and_reports_the_bad_one(uploads, job):
    seen: list[tuple[float, str]] = []
    updates = list(ui.cloak_batch(uploads, ui.Settings(steps=STEPS), progress=lambda f, d: seen.append((f, d)), **job))
    assert [u.done for u in updates] == [False, False, True]
    last = updates[-1]
    olive, broken, sticker = last.results
    assert [r.ok for r in last.results] == [True, False, True]

    # the corrupt file: one readable line naming the upload, not its temp path, and no traceback
    assert broken.error.startswith("broken.png: ") and str(uploads[1]) not in broken.error
    assert "corrupt" in broken.error or "not an image" in broken.error
    assert "Traceback" not in last.status and "1 of" not in last.status and "2 of 3 images cloaked" in last.status
    assert "broken.png" in last.status

    eps = PRESETS["default"].eps_levels
    for r, src in ((olive, uploads[0]), (sticker, uploads[2])):
        assert Path(r.cloaked).name == f"{src.stem}.protected.png"
        art, out = read_image(src), read_image(r.cloaked)
        assert out.size == art.size == (r.width, r.height)
        delta = np.abs(out.rgb.astype(int) - art.rgb.astype(int))
        assert delta.max() <= eps and delta.max() > 0
        for p in (r.original, r.difference, r.view_original, r.view_cloaked):
            with Image.open(p) as im:
                assert im.size == art.size
        assert r.view_model == "taef2" and r.eps == eps
        assert r.figures["linf"] <= eps and r.figures["before"]["cloak"]["view_psnr"] is not None
        assert "jpeg75" in r.figures["purified"] and r.verdicts[0].startswith("Visibility: ")
        # the model's view of the cloaked image differs from its view of the original
        v0, v1 = read_image(r.view_original).rgb, read_image(r.view_cloaked).rgb
        assert np.abs(v0.astype(int) - v1.astype(int)).mean() > 0.5

    # RGBA: alpha kept, transparent pixels untouched
    st_in, st_out = read_image(uploads[2]), read_image(sticker.cloaked)
    assert np.array_equal(st_in.alpha, st_out.alpha)
    clear = st_in.alpha == 0
    assert np.array_equal(st_in.rgb[clear], st_out.rgb[clear])

    with zipfile.ZipFile(last.zip_path) as z:
        assert sorted(z.namelist()) == ["olive.protected.png", "sticker.protected.png"]
        assert z.read("olive.protected.png") == Path(olive.cloaked).read_bytes()

    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(f"step {STEPS}/{STEPS}" in d for _, d in seen)


def test_protectors_and_weights_are_cached(job):
    cache, md = job["cache"], job["models_dir"]
    p1 = cache.get(ui.Settings(steps=STEPS).job(md, "cpu", "fp32"))
    assert cache.get(ui.Settings(steps=STEPS).job(md, "cpu", "fp32")) is p1
    assert cache.loads == 1 and len(cache._cloakers) == 1
    # a new budget is a new Cloaker on the same loaded weights
    p2 = cache.get(ui.Settings(steps=STEPS, eps=2).job(md, "cpu", "fp32"))
    assert p2 is not p1 and p2.protector.ensemble is p1.protector.ensemble and p2.protector.config.eps_levels == 2
    assert cache.loads == 1 and len(cache._cloakers) == 2
    # the "what a model sees" decoder is the attacked taef2 itself: nothing more loaded
    assert cache.viewer(p1) is p1.evaluator and cache.loads == 1
    # an encoder without a decoder: the view comes from a separately loaded (and cached) taef2
    p3 = cache.get(ui.Settings(encoders=["taesana"], objective="texture").job(md, "cpu", "fp32"))
    view = cache.viewer(p3)
    assert view.mimic.name == "taef2" and cache.viewer(p3) is view and cache.loads == 3


def test_cancel_stops_at_the_next_step(uploads, job):
    cancel = threading.Event()
    steps_seen = []

    def progress(frac, desc):
        if "step" in desc:
            steps_seen.append(desc)
            cancel.set()  # the user presses Cancel during the first step

    with pytest.raises(ui.Cancelled):
        list(ui.cloak_batch(uploads, ui.Settings(steps=20), progress=progress, cancel=cancel, **job))
    assert len(steps_seen) == 1


def test_limits_give_readable_errors(uploads, job):
    [r] = list(ui.cloak_batch(uploads[:1], ui.Settings(steps=STEPS), max_pixels=1000, **job))[-1].results
    assert not r.ok and "over the limit" in r.error and "megapixels" in r.error and r.error.startswith("olive.png")
    [r] = list(ui.cloak_batch(uploads[:1], ui.Settings(steps=STEPS), max_bytes=100, **job))[-1].results
    assert not r.ok and "over this page's upload limit" in r.error


def test_missing_weights_fail_every_image_with_one_message(uploads, tmp_path, monkeypatch):
    monkeypatch.delenv("GLAZEISH_MODELS", raising=False)
    monkeypatch.setenv("GLAZEISH_OFFLINE", "1")
    monkeypatch.setenv("GLAZEISH_CACHE", str(tmp_path / "empty-cache"))
    ws = ui.Workspace(tmp_path / "w")
    (tmp_path / "no-models").mkdir()
    [u] = list(ui.cloak_batch(uploads, ui.Settings(), cache=ui.ProtectorCache(), workspace=ws,
                              models_dir=str(tmp_path / "no-models"), device="cpu", precision="fp32"))
    assert u.done and u.zip_path is None and u.status.startswith("Nothing was cloaked")
    assert len(u.results) == 3 and all("weights" in r.error and "not found" in r.error for r in u.results)


def test_bad_settings_become_error_rows(uploads, job):
    # the mimic objective needs a decoder; taesana has none
    [u] = list(ui.cloak_batch(uploads[:1], ui.Settings(encoders=["taesana"], objective="mimic", steps=1), **job))
    [r] = u.results
    assert not r.ok and "needs a decoder" in r.error


def test_no_files_is_a_message_not_an_error(job):
    [u] = list(ui.cloak_batch([], ui.Settings(), **job))
    assert u.done and u.results == [] and "Add one or more images" in u.status


# ----------------------------------------------------------------------------------- the page


def test_cli_arguments_default_to_localhost():
    a = ui.parse_args([])
    assert (a.host, a.port, a.share) == ("127.0.0.1", 7860, False)
    a = ui.parse_args(["--host", "0.0.0.0", "--port", "9000", "--share", "--max-pixels", "100"])
    assert (a.host, a.port, a.share, a.max_pixels) == ("0.0.0.0", 9000, True, 100)


def test_build_app_wires_one_heavy_job_and_a_cancel(tmp_path):
    gr = pytest.importorskip("gradio", reason="the page needs gradio: pip install 'glazeish[ui]'")
    demo = ui.build_app(workspace=ui.Workspace(tmp_path / "w"))
    assert isinstance(demo, gr.Blocks)
    deps = list(demo.fns.values())
    heavy = [d for d in deps if getattr(d, "concurrency_id", None) == "cloak"]
    assert len(heavy) == 1 and heavy[0].concurrency_limit == 1 and heavy[0].queue
    assert any(d.is_cancel_function and heavy[0]._id in d.cancels for d in deps)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"glz-files", "glz-run", "glz-cancel", "glz-status", "glz-zip", "glz-steps"} <= ids
    demo.glazeish_workspace.cleanup()
