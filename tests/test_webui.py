"""Tests for glazeish.ui and glazeish.webpage without a browser: the upload check, the progress, the batch job, its
error rows and cancel, the HTML it renders, and the page's wiring (including a Gradio-level cancel of a running
job).

The job runs the real taef2 weights on small crops with 2 steps; the browser test is test_webui_browser.py.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import crop_rgb
from PIL import Image

from glazeish import ui, webpage
from glazeish.config import PRESETS
from glazeish.estimate import DEFAULT_RATES, Estimate, SpeedBook, work
from glazeish.evaluation import verdicts
from glazeish.imageio import read_image
from glazeish.protect import Step

STEPS = 2


def _text(markup: str) -> str:
    """The visible text of some HTML (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


@pytest.fixture(autouse=True)
def speed_file(tmp_path, monkeypatch):
    """Each test's measured speed in its own file (never the user's cache)."""
    monkeypatch.setenv("GLAZEISH_SPEED_FILE", str(tmp_path / "speed.json"))
    return tmp_path / "speed.json"


# ---------------------------------------------------------------------------------------- files


def test_unique_names_number_collisions():
    names = ui.unique_names(["a.png", "a.jpg", "A.webp", "b.png", "noext"])
    assert names == ["a.protected.png", "a-2.protected.png", "A-3.protected.png", "b.protected.png",
                     "noext.protected.png"]


def test_unique_names_shorten_what_would_not_fit_a_file_name():
    """A 240-byte CJK name: the download keeps its start, gains the command line's ~hash, and every name written
    beside it (``<stem>.model-view-original.png`` the longest) fits 255 bytes; two such names stay apart."""
    long = "画" * 80  # 240 bytes in UTF-8
    names = ui.unique_names([f"{long}.png", f"{long}x.png", f"{long}.jpg"])
    assert len(set(names)) == 3 and all(n.startswith("画" * 70) and "~" in n for n in names)
    for n in names:
        stem = n.removesuffix(".protected.png")
        assert len(f"{stem}{ui.LONGEST_BESIDE}".encode()) <= 255


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


def test_friendly_error_hides_temp_paths_and_library_names():
    err = ui.ImageError("/tmp/gradio/abc123/scan.png: not an image Pillow can read (unknown or corrupt format)")
    assert ui.friendly_error(err, "/tmp/gradio/abc123/scan.png", "scan.png") == \
        "scan.png: this file is not a picture or is damaged"
    err = ValueError("/tmp/gradio/abc123/scan.png: something else\nmore")
    assert ui.friendly_error(err, "/tmp/gradio/abc123/scan.png", "scan.png") == "scan.png: something else"
    assert "memory" in ui.friendly_error(MemoryError(), None, "huge.png")


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


def flipped_idat(src: Path, dest: Path) -> Path:
    """``src`` with one byte flipped inside its pixel data: a PNG that Pillow cannot fully decode."""
    data = bytearray(src.read_bytes())
    i = data.find(b"IDAT")
    data[i + 40] ^= 0x55
    dest.write_bytes(bytes(data))
    return dest


def test_check_upload_gives_a_thumbnail_or_one_plain_line(uploads, tmp_path):
    olive, broken, sticker = uploads
    good = ui.check_upload(olive)
    assert good.ok and (good.width, good.height, good.alpha) == (96, 64, False)
    assert good.bytes == olive.stat().st_size and good.thumb.startswith("data:image/png;base64,")
    assert ui.check_upload(sticker).alpha
    bad = ui.check_upload(broken)
    assert bad.error == "broken.png: this file is not a picture or is damaged"
    damaged = ui.check_upload(flipped_idat(olive, tmp_path / "damaged.png"))
    assert damaged.error == "damaged.png: this file is not a picture or is damaged"
    big = ui.check_upload(olive, max_pixels=1000)
    assert big.error.startswith("olive.png: ") and "megapixels" in big.error and str(olive.parent) not in big.error
    assert "over this page's limit" in ui.check_upload(olive, max_bytes=100).error
    # rendered: a thumbnail per picture, the bad file named once, in red
    markup = webpage.render_checks([good, bad])
    assert markup.count("<img") == 1 and 'class="glz-check glz-bad"' in markup
    assert _text(markup).count("broken.png") == 1 and "Pillow" not in markup


# ------------------------------------------------------------------------------------ settings


def test_settings_take_preset_values_and_reject_no_encoder():
    c = ui.Settings(intensity="high").config()
    p = PRESETS["high"]
    assert (c.eps_levels, c.steps, c.objective, c.robust, c.encoder) == (p.eps_levels, p.steps, p.objective, p.robust,
                                                                          "taef2")
    c2 = ui.Settings(encoders=["taef2", "taesana"], eps=2.5, steps=3).config("models")
    assert (c2.encoder, c2.eps_levels, c2.steps, c2.models_dir) == ("taef2,taesana", 2.5, 3, "models")
    with pytest.raises(ValueError, match="at least one image model"):
        ui.Settings(encoders=[]).config()


def test_the_jpeg_switch_sets_the_robustness():
    assert ui.Settings(intensity="low").config().robust == PRESETS["low"].robust
    posted = ui.Settings(platforms=("instagram",))
    assert posted.config().robust == "platform:instagram" and posted.job().platforms == ("instagram",)
    assert "platform:instagram" in posted.job().purify
    assert ui.Settings(intensity="low", robust=True).config().robust == ui.JPEG_ROBUST == PRESETS["default"].robust
    assert ui.Settings(intensity="default", robust=False).config().robust == ""
    assert ui.Settings(intensity="low", robust=False).preset(ui.Settings(intensity="low", robust=False).config()) == \
        "custom"


def test_metadata_names_the_preset_only_when_its_values_are_used():
    s = ui.Settings(intensity="low", creator="  Jane  ", copyright="")
    m = s.metadata_options(s.config())
    assert (m.preset, m.creator, m.copyright, m.enabled, m.note) == ("low", "Jane", None, True, True)
    s2 = ui.Settings(intensity="low", eps=9, note=False)
    m2 = s2.metadata_options(s2.config())
    assert (m2.preset, m2.note) == ("custom", False)


def test_render_written_says_what_goes_into_the_file():
    text = _text(ui.written(ui.Settings(creator="Jane Doe", copyright="© Jane")))
    assert "Written into each cloaked file" in text and "Prohibited for AI/ML training" in text
    assert "“Jane Doe”" in text and "© Jane" in text and "Protected with glazeish" in text
    assert "glazeish" not in _text(ui.written(ui.Settings(note=False)))
    off = _text(ui.written(ui.Settings(metadata=False, creator="Jane")))
    assert "Nothing is added" in off and "Jane" not in off and "kept from your file" in off


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


# ------------------------------------------------------------------------------------ progress


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_names_phases_counts_steps_per_image_and_estimates_time():
    clock = Clock()
    # a.png: 4 s of cloak, 4 s of figures; b.png in 3 tiles: 12 s and 6 s; 5 s to load the models
    pr = ui.Progress(["a.png", "b.png"], [Estimate(4, 4), Estimate(12, 6)], load=5, tiles=[1, 3], clock=clock)
    assert pr.snapshot()["phase"].startswith("Waiting") and pr.fraction() == 0
    assert pr.seconds_left() == 31  # what a job behind this one waits
    pr.set_phase("load")
    clock.t += 2
    snap = pr.snapshot()
    assert snap["phase"] == "Loading the models…" and 0 < snap["fraction"] < 5 / 31 and snap["left"] == "29 s"
    clock.t += 3
    pr.set_phase("cloak", 0)
    assert "getting ready" in pr.snapshot()["phase"]  # the first step also warms up: said, and the bar moves
    clock.t += 0.5
    assert pr.fraction() > 5 * 0.9 / 31 - 1e-9
    seen = []
    for k in range(1, 5):  # twice as slow as planned: 2 s a step
        clock.t += 2 - (0.5 if k == 1 else 0)
        pr.on_step(Step(k, 4, 1, 1, 0.0))
        seen.append(pr.snapshot())
    assert seen[0]["phase"] == "Cloaking 1 of 2: a.png, step 1 of 4" and seen[-1]["phase"].endswith("step 4 of 4")
    fr = [s["fraction"] for s in seen]
    assert fr == sorted(fr) and 0 < fr[0] < fr[-1] < 1
    # the image's own speed (2× the plan) stretches what is left of it; the next image keeps its plan until replanned
    assert seen[-1]["left"] == f"{4 * 2 + 18} s"
    pr.set_phase("figures", 0)
    assert pr.snapshot()["phase"].startswith("Checking the result of 1 of 2: a.png")
    lefts, fracs = [], []
    for _ in range(30):  # 8 s expected; they overrun to 30 s: the bar moves, never ends, time left never grows
        clock.t += 1
        snap = pr.snapshot()
        lefts.append(snap["left"])
        fracs.append(snap["fraction"])
    assert fracs == sorted(fracs) and fracs[-1] > fracs[10] and fracs[-1] < (5 + 8) / 31
    seconds = [int(s.split()[0]) for s in lefts]
    assert seconds == sorted(seconds, reverse=True) and seconds[-1] == 18  # then only b.png is left
    pr.image_done(seconds=40)
    assert pr.snapshot()["last_image"] == "40 s"
    pr.replan([Estimate(8, 30), Estimate(24, 40)])  # the measured speed: b.png takes 64 s
    pr.set_phase("cloak", 1)
    clock.t += 1
    pr.on_step(Step(2, 4, 2, 3, 0.0))  # b.png is cloaked in 3 tiles: the count is over the whole picture
    snap = pr.snapshot()
    assert snap["phase"] == "Cloaking 2 of 2: b.png, step 6 of 12 (tile 2 of 3)" and snap["fraction"] > fracs[-1]
    pr.set_phase("done")
    assert pr.fraction() == 1.0 and pr.snapshot()["phase"].startswith("Done: 2 pictures in ")
    markup = webpage.render_progress(pr.snapshot())
    assert markup.count('role="progressbar"') == 1 and 'aria-valuenow="100"' in markup


def test_the_speed_book_starts_from_a_guess_learns_and_keeps_what_it_learnt(tmp_path):
    path = tmp_path / "speed.json"
    book = SpeedBook(path)
    assert book.rate("cpu/fp32/taef2/eot", "step") == DEFAULT_RATES["step"] and book.measured("cpu/fp32/taef2/eot") == 0
    book.record("cpu/fp32/taef2/eot", "step", 2.0, 3.0)  # the first measurement replaces the guess
    assert book.rate("cpu/fp32/taef2/eot", "step") == 1.5
    book.record("cpu/fp32/taef2/eot", "step", 1.0, 2.5)
    assert book.rate("cpu/fp32/taef2/eot", "step") == pytest.approx(2.0)
    again = SpeedBook(path)  # kept for the next start of the page
    assert again.rate("cpu/fp32/taef2/eot", "step") == pytest.approx(2.0) and again.measured("cpu/fp32/taef2/eot") == 2
    assert again.rate("cuda/bf16/taef2/eot", "step") == DEFAULT_RATES["step"]  # another machine key: its own
    path.write_text("{not json")
    assert SpeedBook(path).rate("cpu/fp32/taef2/eot", "step") == DEFAULT_RATES["step"]  # damaged: the guess


def test_work_counts_overlapping_tiles_and_sampled_figures():
    small = work(256, 256, 8)
    assert small.tiles == 1 and small.cloak_mpx == pytest.approx(256 * 256 / 1e6)
    big = work(3000, 2000, 8)
    assert big.tiles > 24 and big.cloak_mpx > 6.0  # overlaps cost more than the picture's own pixels
    assert big.figure_mpx < 2 * 6.0  # the model figures look at 4 tiles, the visibility at every pixel
    with pytest.raises(ValueError, match="at least 1×1"):
        work(0, 10, 8)


def test_a_large_upload_gets_its_time_and_posting_sizes_before_cloak(tmp_path):
    book = SpeedBook(tmp_path / "speed.json")
    settings = ui.Settings()
    job = settings.job()
    big = webpage.Upload(path="/x/big.png", name="big.png", width=3000, height=2000, bytes=9_000_000, thumb="data:,")
    small = webpage.Upload(path="/x/s.png", name="s.png", width=64, height=64, bytes=9_000, thumb="data:,")
    fc = ui.forecasts([big, small], settings, job, book, ui.speed_key(job.config))
    f = fc["/x/big.png"]
    assert f.seconds > 60 and not f.measured
    assert [o.value for o in f.offers] == ["2048"] and f.offers[0].size == (2048, 1365)  # 4096 is not smaller
    assert f.offers[0].seconds < f.seconds / 2
    assert fc["/x/s.png"].offers == [] and fc["/x/s.png"].seconds < 60
    text = _text(webpage.render_checks([big, small], fc, preset="default"))
    assert "big.png" in text and "on this computer with default" in text and "Over a minute" in text
    assert "long side 2048 px (2048×1365): about" in text and "first guess" in text
    at_2048 = ui.Settings(max_side=2048)
    job2 = at_2048.job()
    g = ui.forecasts([big], at_2048, job2, book, ui.speed_key(job2.config))["/x/big.png"]
    assert g.size == (2048, 1365) and g.seconds == pytest.approx(f.offers[0].seconds)
    assert job.figures == "quick"  # as the CLI's: the same words as full, fewer passes
    on_insta = ui.Settings(platforms=("instagram",))
    job3 = on_insta.job()
    h = ui.forecasts([big], on_insta, job3, book, ui.speed_key(job3.config))["/x/big.png"]
    assert h.platform and max(h.size) <= 1080 and "site size" in _text(webpage.render_checks([big], {big.path: h}))


def test_the_line_tells_a_waiting_job_its_place_and_wait():
    jobs = ui.Jobs()
    first = ui.Progress(["a.png"], [Estimate(30, 10)])
    second = ui.Progress(["b.png"], [Estimate(20, 5)])
    jobs.join(first)
    jobs.join(second)
    assert jobs.ahead(first) == (0, 0) and jobs.ahead(second) == (1, 40)
    stop = threading.Event()
    stop.set()
    assert not jobs.wait_turn(second, stop)  # cancelled while waiting: never runs
    assert jobs.wait_turn(first, threading.Event())
    jobs.leave(first)
    assert jobs.ahead(second) == (0, 0) and jobs.wait_turn(second, threading.Event())
    words = ui.waiting_words(1, 40, 25)
    assert words.startswith("Waiting: 1 job ahead of yours") and "about 40 s" in words and "about 25 s" in words
    assert ui.ordinal(2) == "2nd" and ui.ordinal(11) == "11th"


def test_preset_cards_are_plain_distinct_and_say_why_default():
    html = webpage.render_presets("default")
    cards = re.findall(r'<div class="glz-preset[^"]*" data-preset="(\w+)"[^>]*role="button"', html)
    assert cards == list(PRESETS)
    for key in PRESETS:
        card = _text(html.split(f'data-preset="{key}"')[1].split('<details')[0])
        assert not re.search(r"dB|RMS|EOT|PSNR", card), key  # numbers only behind "The numbers"
    assert html.count("<summary>The numbers</summary>") == len(PRESETS)
    text = _text(html)
    assert "Why default over fast" in text and "on flat colour" in text
    assert "changes your picture about" in text and "less than default" in text and "more than default" in text


# ---------------------------------------------------------------------------------- the real job


@pytest.fixture
def job(tmp_path, models_dir):
    cache = ui.ProtectorCache()
    ws = ui.Workspace(tmp_path / "work")
    yield {"cache": cache, "workspace": ws, "models_dir": str(models_dir), "device": "cpu", "precision": "fp32"}
    ws.cleanup()


def test_batch_cloaks_good_files_and_reports_the_bad_one(uploads, job):
    names = [p.name for p in uploads]
    tracker = ui.Progress(names)
    seen: list[dict] = []
    tracker_step = tracker.on_step
    tracker.on_step = lambda s: (tracker_step(s), seen.append(tracker.snapshot()))
    updates = list(ui.cloak_batch(uploads, ui.Settings(steps=STEPS), progress=tracker, **job))
    assert [u.done for u in updates] == [False, False, True]
    last = updates[-1]
    olive, broken, sticker = last.results
    assert [r.ok for r in last.results] == [True, False, True]

    # the corrupt file: one readable line naming the upload, not its temp path, and no traceback
    assert broken.error == "broken.png: this file is not a picture or is damaged"
    assert last.status == "2 of 3 images cloaked. 1 image could not be cloaked (see below)."

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
        assert r.view_model == "taef2" and r.eps == eps and r.preset == "custom"
        assert r.figures["linf"] <= eps and r.figures["before"]["cloak"]["view_psnr"] is not None
        assert "jpeg75" in r.figures["purified"] and r.verdicts[0].startswith("Visibility: ")
        assert r.visibility in {lv.key for lv in verdicts.VISIBILITY} and r.survival in {lv.key for lv in
                                                                                         verdicts.SURVIVAL}
        assert r.output_bytes == Path(r.cloaked).stat().st_size and r.input_bytes == src.stat().st_size
        # the model's view of the cloaked image differs from its view of the original
        v0, v1 = read_image(r.view_original).rgb, read_image(r.view_cloaked).rgb
        assert np.abs(v0.astype(int) - v1.astype(int)).mean() > 0.5

    # RGBA: alpha kept, transparent pixels untouched; every preview shows them over the checkerboard
    st_in, st_out = read_image(uploads[2]), read_image(sticker.cloaked)
    assert np.array_equal(st_in.alpha, st_out.alpha)
    clear = st_in.alpha == 0
    assert np.array_equal(st_in.rgb[clear], st_out.rgb[clear])
    for p in (sticker.original, sticker.cloaked_preview, sticker.difference, sticker.view_original):
        shown = read_image(p)
        assert shown.alpha is None and set(np.unique(shown.rgb[clear])) <= {153, 204}
    assert olive.cloaked_preview is None  # opaque: the download itself is shown

    with zipfile.ZipFile(last.zip_path) as z:  # each picture and its HTML report
        assert sorted(z.namelist()) == ["olive.protected.png", "olive.protected.report.html", "sticker.protected.png",
                                        "sticker.protected.report.html"]
        assert z.read("olive.protected.png") == Path(olive.cloaked).read_bytes()
        report = z.read("olive.protected.report.html").decode()
        assert report == Path(olive.report).read_text() and "olive.png" in report and "Visibility" in report

    # the progress went through the configured steps of each image, never counting beyond them
    phases = [s["phase"] for s in seen]
    assert f"Cloaking 1 of 3: olive.png, step {STEPS} of {STEPS}" in phases
    assert f"Cloaking 3 of 3: sticker.png, step {STEPS} of {STEPS}" in phases
    fractions = [s["fraction"] for s in seen]
    assert fractions == sorted(fractions) and tracker.fraction() == 1.0


def test_a_result_card_says_how_visible_how_strong_and_what_survives(uploads, job):
    [u] = list(ui.cloak_batch(uploads[:1], ui.Settings(), **job))  # the default preset: its reason is shown
    [r] = u.results
    assert r.preset == "default"
    card = webpage.render_result(r, 0)
    text = _text(card)
    assert 'id="glz-result-0"' in card and 'id="glz-figures-0"' in card and 'id="glz-why-0"' in card
    assert "After a platform's re-compression (JPEG q75)" in text and "% of the protection remains" in text
    assert PRESETS["default"].why in text
    assert f'download="{r.download_name}"' in card and webpage.file_url(r.cloaked) in card
    assert card.count('class="glz-viewer"') == 2 and "A/B flicker" in text and "100 %" in text
    # each verdict's level is a badge from the evaluation layer's tables, nothing else
    for key in re.findall(r'class="glz-badge glz-lv-\d">([^<]+)<', card):
        assert html.unescape(key) in {lv.key for t in (verdicts.VISIBILITY, verdicts.PROTECTION, verdicts.SURVIVAL)
                                      for lv in t}
    # a PNG much larger than its upload says why
    big = webpage.ImageResult(**{**r.__dict__, "input_bytes": 1000, "output_bytes": 50_000})
    assert "it is a PNG, which keeps every pixel of the cloak exactly" in _text(webpage.render_result(big, 0))
    assert 'id="glz-size-0"' not in webpage.render_result(webpage.ImageResult(**{**r.__dict__, "input_bytes": 40_000,
                                                                       "output_bytes": 50_000}), 0)
    failed = webpage.ImageResult(name="x.png", error="x.png: this file is not a picture or is damaged")
    bad = webpage.render_result(failed, 3)
    assert 'id="glz-error-3"' in bad and _text(bad).count("x.png") == 2  # the title, and the line naming it


def test_a_jpeg_download_says_what_it_keeps_and_the_zip_holds_it_and_the_report(uploads, job, speed_file):
    settings = ui.Settings(steps=STEPS, export="jpeg", quality=85)
    last = list(ui.cloak_batch(uploads[:1], settings, **job))[-1]
    [r] = last.results
    assert r.ok and r.export_name == "olive.protected.jpg" and r.export_label == "JPEG q85"
    with Image.open(r.export) as im:
        assert im.format == "JPEG" and im.size == (r.width, r.height)
    assert "jpeg85" in r.figures["purified"] and r.export_retained == r.figures["summary"]["retained"]["jpeg85"]
    assert r.export_survival in {lv.key for lv in verdicts.SURVIVAL}
    text = _text(webpage.render_result(r, 0))
    assert "Download olive.protected.jpg" in text and "Download olive.protected.png" in text
    assert "As JPEG q85" in text and "% of the protection remains in it" in text and "Report (HTML)" in text
    with zipfile.ZipFile(last.zip_path) as z:  # the chosen format and the report
        assert z.namelist() == ["olive.protected.jpg", "olive.protected.report.html"]
    key = ui.speed_key(settings.job(device=job["device"], precision=job["precision"]).config)
    assert SpeedBook(speed_file).measured(key) == 1  # the run refined the speed
    with pytest.raises(ValueError, match="format must be one of png, jpeg, webp, not 'gif'"):
        ui.Settings(export="gif").job()


def test_a_webp_download_is_measured_at_its_own_quality():
    from glazeish.ui.settings import export_purification

    assert export_purification(ui.Settings(export="webp", quality=80)) == "webp"  # the benchmark's WebP
    assert export_purification(ui.Settings(export="webp", quality=70)) == "webp:70"
    assert ui.Settings(export="webp", quality=70).export_quality() == 70
    assert export_purification(ui.Settings(export="png", quality=70)) is None
    with pytest.raises(ValueError, match="WEBP quality must be from 1 to 100"):
        export_purification(ui.Settings(export="webp", quality=0))


def test_cancel_stops_at_the_next_step_and_lists_what_was_not_cloaked(uploads, job):
    cancel = threading.Event()
    tracker = ui.Progress(["olive.png", "sticker.png"])
    step = tracker.on_step

    def on_step(s):
        step(s)
        if tracker.index == 1:
            cancel.set()  # the user presses Cancel during the second image's first step

    tracker.on_step = on_step
    updates = list(ui.cloak_batch([uploads[0], uploads[2]], ui.Settings(steps=3), progress=tracker, cancel=cancel,
                                  **job))
    last = updates[-1]
    assert last.done and last.cancelled and tracker.step.step == 1  # stopped right after the step that saw it
    assert [r.name for r in last.results] == ["olive.png"] and last.results[0].ok
    assert last.not_cloaked == ["sticker.png (stopped at step 1 of 3)"]
    assert last.status == "Cancelled. Cloaked: olive.png. Not cloaked: sticker.png (stopped at step 1 of 3)."
    with zipfile.ZipFile(last.zip_path) as z:  # what finished is still offered
        assert z.namelist() == ["olive.protected.png", "olive.protected.report.html"]


def test_cancel_before_anything_finished(uploads, job):
    cancel = threading.Event()
    cancel.set()
    [u] = list(ui.cloak_batch(uploads[:1], ui.Settings(steps=STEPS), cancel=cancel, **job))
    assert u.cancelled and u.zip_path is None and u.status == "Cancelled. Nothing was cloaked. Not cloaked: olive.png."


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


def test_a_long_upload_name_is_cloaked_under_a_shortened_name(uploads, job, tmp_path):
    """Once "File name too long", with the server's temp path on the page."""
    src = tmp_path / ("画" * 80 + ".png")  # 244 bytes: the upload itself fits, the files beside its cloak did not
    src.write_bytes(uploads[0].read_bytes())
    [r] = list(ui.cloak_batch([src], ui.Settings(steps=1), **job))[-1].results
    assert r.ok, r.error
    for p in (r.cloaked, r.original, r.difference, r.view_original, r.view_cloaked):
        assert Path(p).is_file() and len(os.fsencode(Path(p).name)) <= 255
    assert Path(r.cloaked).name == r.download_name and r.download_name.startswith("画" * 70)
    assert src.read_bytes() == uploads[0].read_bytes()


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
    [u] = list(ui.cloak_batch(uploads[:1], ui.Settings(encoders=[]), **job))
    assert u.status == "Nothing was cloaked: choose at least one image model to target (under Advanced)"


def test_no_files_is_a_message_not_an_error(job):
    [u] = list(ui.cloak_batch([], ui.Settings(), **job))
    assert u.done and u.results == [] and "Add one or more pictures" in u.status


# ----------------------------------------------------------------------------------- the page


def test_presets_show_their_trade_offs_and_an_example():
    examples = webpage.preset_examples()
    assert set(examples) == set(PRESETS), "glazeish/assets/presets: run benchmarks/preset_examples.py"
    markup = webpage.render_presets("low", examples)
    text = _text(markup)
    n = len(PRESETS)
    assert markup.count('class="glz-preset ') + markup.count('class="glz-preset"') == n
    assert markup.count("glz-chosen") == 1
    assert 'data-preset="low"' in markup.split("glz-chosen")[1][:40]
    for word in ("Look:", "Protection:", "Left after a site re-compresses it:", "The numbers"):
        assert text.count(word) == n, word
    assert text.count("Time:") == n - 1  # default is the yardstick of the others' time
    assert markup.count('<img src="data:image/png;base64,') == n + 1  # and the original
    assert PRESETS["low"].why in text  # how it works, behind its numbers
    # the words are the evaluation layer's level keys
    keys = {lv.key for t in (verdicts.VISIBILITY, verdicts.PROTECTION) for lv in t}
    assert {ex.rows["painting"]["visibility"] for ex in examples.values()} <= keys
    assert "lightest touch" in _text(webpage.render_presets("low", {}))  # without examples: the presets' summaries


def test_cli_arguments_default_to_localhost():
    a = ui.parse_args([])
    assert (a.host, a.port, a.share) == ("127.0.0.1", 7860, False)
    a = ui.parse_args(["--host", "0.0.0.0", "--port", "9000", "--share", "--max-pixels", "100"])
    assert (a.host, a.port, a.share, a.max_pixels) == ("0.0.0.0", 9000, True, 100)


def test_jobs_reach_their_session_and_a_shutdown_reaches_all():
    jobs = ui.Jobs()
    assert not jobs.cancel("nobody")
    flag = jobs.prepare("s1")
    assert jobs.flag("s1") is flag and jobs.cancel("s1") and flag.is_set()
    other = jobs.prepare("s2")
    t = jobs.start(lambda: other.wait(30))
    assert jobs.stop_all(timeout=10) and not t.is_alive() and other.is_set()


def _app(tmp_path, models_dir):
    pytest.importorskip("gradio", reason="the page needs gradio: pip install 'glazeish[ui]'")
    return ui.build_app(str(models_dir), workspace=ui.Workspace(tmp_path / "w"), device="cpu", precision="fp32")


def test_build_app_wires_one_heavy_job_and_a_cancel(tmp_path, models_dir):
    gr = pytest.importorskip("gradio", reason="the page needs gradio: pip install 'glazeish[ui]'")
    demo = _app(tmp_path, models_dir)
    assert isinstance(demo, gr.Blocks)
    deps = list(demo.fns.values())
    heavy = [d for d in deps if getattr(d, "concurrency_id", None) == "cloak"]
    # every Cloak enters the page's own line (one job runs; the others are told their place and wait)
    assert len(heavy) == 1 and heavy[0].concurrency_limit == ui.MAX_WAITING and heavy[0].queue
    assert heavy[0].show_progress == "hidden"  # the page draws its own progress; nothing is drawn over it
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"glz-files", "glz-checks", "glz-run", "glz-cancel", "glz-progress", "glz-status", "glz-zip", "glz-steps",
            "glz-robust", "glz-note", "glz-creator", "glz-written", "glz-results"} <= ids
    buttons = {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.Button)}
    assert not buttons["glz-cancel"].interactive and not buttons["glz-run"].interactive  # idle, and no files yet
    assert "<script>" in demo.glazeish_head and "glzViewers" in demo.glazeish_head
    assert "http" not in demo.glazeish_head and "http" not in demo.glazeish_css  # nothing fetched from elsewhere
    demo.glazeish_shutdown()
    assert not demo.glazeish_workspace.root.exists()


#: the page's progress line once optimisation runs (which step the poll sees first depends on the machine)
STEP_OF_1000 = re.compile(r"step \d+ of 1000")


def test_a_gradio_level_cancel_stops_the_current_image(tmp_path, models_dir, uploads, caplog):
    """Gradio cancels a running event (the tab closed, a ``cancels=`` event, /cancel): the task running the page's
    handler is cancelled, and the image being cloaked must stop too, not run on in its thread."""
    demo = _app(tmp_path, models_dir)
    run = next(d for d in demo.fns.values() if getattr(d, "concurrency_id", None) == "cloak").fn
    request = SimpleNamespace(session_hash="tab-1")
    seen: list[str] = []

    async def drive() -> None:
        async def consume():
            async for out in run(request, [str(uploads[0])], [], "default", 4, 1000, True, ["taef2"], "mimic", None, 0,
                                 True, True, "", "", [], "full", "png", 90):
                seen.append(str(out[0]))
        task = asyncio.create_task(consume())
        end = time.monotonic() + 240
        while not any(STEP_OF_1000.search(s) for s in seen) and time.monotonic() < end and not task.done():
            await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level("INFO", logger="glazeish.ui"):
        asyncio.run(drive())
        assert any(STEP_OF_1000.search(s) for s in seen), seen[-3:]
        t0 = time.monotonic()
        for t in list(demo.glazeish_jobs._threads):
            t.join(60)  # not stop_all(): that would set the flag itself
        assert not any(t.is_alive() for t in demo.glazeish_jobs._threads)
    assert time.monotonic() - t0 < 30 and "job cancelled; the optimisation stopped" in caplog.text
    demo.glazeish_shutdown()


def test_a_precision_the_cpu_cannot_run_stops_the_page_before_it_starts(monkeypatch, capsys):
    """``glazeish ui --precision bf16`` on an AVX2 laptop: one line and exit 2, not a failure on every image."""
    from glazeish import device, ui
    from glazeish.ui import server

    monkeypatch.setattr(device, "native_precisions", lambda kind: ("fp32",))
    monkeypatch.setattr(server, "launch", lambda *a, **k: pytest.fail("the page started"))  # what serve() calls
    with pytest.raises(SystemExit) as e:
        ui.serve("127.0.0.1", 0, precision="bf16")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["glazeish ui: error: precision bf16: this processor does not compute it natively (it would be "
                   "emulated: slower than fp32, where it runs at all); natively: fp32; use auto or fp32"]
