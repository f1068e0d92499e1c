"""End-to-end tests of the web page in a real browser: ``webui.py`` on a free localhost port, driven by
Playwright in Debian's Chromium (``apt-get install chromium``; ``pip install playwright``, no
``playwright install`` needed). One server for the module; small pictures and 2 steps keep it short.

Also a screenshot tool for the docs:
``python tests/test_webui_browser.py --screenshot docs/webui.png --phone docs/webui-phone.png``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GLAZEISH_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("GLAZEISH_MODELS", SHARED / "models"))
PAINTING = SHARED / "images" / "paintings" / "00003-0-vincent-van-gogh_olive-picking-1889-2.png"
FLAT = SHARED / "images" / "flat" / "flat_02.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
EPS = 4  # the default preset's budget, 1/255 units
STEPS = 6  # enough for a twice-a-second poll to see a step of one of the two pictures
TIMEOUT_MS = 240_000
NOT_A_PICTURE = "this file is not a picture or is damaged"

pytestmark = pytest.mark.browser


def chromium_path() -> str | None:
    """Debian's Chromium (or $GLAZEISH_CHROMIUM); None: let Playwright use its own browser, if installed."""
    for cand in (os.environ.get("GLAZEISH_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                 shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and Path(cand).is_file():
            return cand
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python webui.py`` in a subprocess, with its temp folders under ``tmp`` (``tmp/tmp`` for its job outputs,
    ``tmp/gradio`` for Gradio's copies of the uploads)."""

    def __init__(self, tmp: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.tmp = tmp / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.gradio = tmp / "gradio"
        self.log = tmp / "webui.log"
        env = dict(os.environ, GLAZEISH_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", TMPDIR=str(self.tmp),
                   GRADIO_TEMP_DIR=str(self.gradio), PYTHONUNBUFFERED="1",
                   GLAZEISH_SPEED_FILE=str(tmp / "speed.json"))  # the server's measured speed, not the user's
        cmd = [sys.executable, str(ROOT / "webui.py"), "--port", str(self.port), "--models", str(MODELS),
               "--precision", "fp32"]
        self._log = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"webui.py exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"webui.py did not answer on {self.url} in {timeout:.0f} s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode


def launch_browser(playwright):
    exe = chromium_path()
    return playwright.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)


def add_files(page, files: list[Path], total: int | None = None) -> None:
    """Drop ``files`` on the upload box (which adds them to those already there) and wait until the page has
    checked all ``total`` of them."""
    page.locator("#glz-files input[type=file]").set_input_files([str(f) for f in files])
    page.wait_for_function(
        "([n, names]) => { const li = [...document.querySelectorAll('#glz-checks li')];"
        " return li.length === n && names.every(s => li.some(e => e.innerText.includes(s))); }",
        arg=[total or len(files), [f.name for f in files]], timeout=60_000)


def set_steps(page, steps: int) -> None:
    """Open Advanced and set the step count (the accordion mounts its sliders lazily and may reset a value typed
    too early, hence the retries)."""
    page.locator("#glz-advanced .label-wrap").click()
    box = page.locator("#glz-steps input[type=number]")
    for _ in range(20):
        box.fill(str(steps))
        box.press("Enter")
        page.wait_for_timeout(250)
        if box.input_value() == str(steps) and page.locator("#glz-steps input[type=range]").input_value() == str(steps):
            return
    raise AssertionError("could not set the step count")


RECORD = """() => {
  window.glzSeen = [];
  const root = document.querySelector('#glz-progress');
  const note = () => {
    const p = root.querySelector('.glz-progress'), run = document.querySelector('#glz-run'),
          cancel = document.querySelector('#glz-cancel');
    if (!p) return;
    window.glzSeen.push({phase: p.querySelector('.glz-phase').innerText, fraction: Number(p.dataset.fraction || 0),
                         run: run.innerText, runDisabled: run.disabled, cancelDisabled: cancel.disabled});
  };
  new MutationObserver(note).observe(root, {subtree: true, childList: true, characterData: true});
}"""


def run_and_wait(page, timeout_ms: int = TIMEOUT_MS) -> list[dict]:
    """Press Cloak and wait until the batch ends; returns what the progress area showed, change by change."""
    page.evaluate(RECORD)
    page.locator("#glz-run").click()
    page.wait_for_function(
        "() => /cloaked\\.|Cancelled|Nothing/.test(document.querySelector('#glz-status').innerText)",
        timeout=timeout_ms)
    page.wait_for_function("() => !document.querySelector('#glz-run').disabled")
    return page.evaluate("() => window.glzSeen")


def image_sizes(page, selector: str) -> list[tuple[int, int]]:
    """(naturalWidth, naturalHeight) of every loaded <img> under ``selector``, after they finish loading."""
    page.locator(selector).last.scroll_into_view_if_needed()  # images below the fold load lazily
    page.wait_for_function(
        "s => { const im = [...document.querySelectorAll(s + ' img')];"
        " return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0); }",
        arg=selector, timeout=30_000,
    )
    sizes = page.eval_on_selector_all(f"{selector} img", "ims => ims.map(i => [i.naturalWidth, i.naturalHeight])")
    return [tuple(s) for s in sizes]


def new_page(browser, server, width: int = 1280, height: int = 900):
    ctx = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.glz_offsite = []
    pg.on("request", lambda r: pg.glz_offsite.append(r.url)
          if not r.url.startswith((server.url, "data:", "blob:")) else None)
    pg.goto(server.url)
    pg.locator("#glz-files").wait_for()
    return pg


def close_page(pg, request, tmp: Path, failed_before: int) -> None:
    if request.session.testsfailed > failed_before:  # leave evidence: what the page showed
        pg.screenshot(path=str(tmp / "failure.png"), full_page=True)
        print(f"failure screenshot: {tmp / 'failure.png'}")
    offsite = pg.glz_offsite
    pg.context.close()
    # the page never reaches beyond this computer (no fonts, analytics or CDNs)
    assert offsite == [], f"the page made requests off localhost: {offsite}"


def make_pictures(d: Path) -> dict[str, Path]:
    """A 96×64 painting crop, a 64×48 flat-colour crop, a 40×56 RGBA crop, a corrupt file and a damaged PNG."""
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    with Image.open(PAINTING) as im:
        painting = im.convert("RGB")
    painting.crop((120, 200, 216, 264)).save(out.setdefault("olive", d / "olive.png"))
    with Image.open(FLAT) as im:
        im.convert("RGB").crop((264, 220, 328, 268)).save(out.setdefault("cel", d / "cel.png"))
    rgba = np.dstack([np.asarray(painting.crop((300, 60, 340, 116))), np.zeros((56, 40), np.uint8)])
    rgba[8:48, 8:32, 3] = 255  # opaque centre, transparent frame
    Image.fromarray(rgba, "RGBA").save(out.setdefault("sticker", d / "sticker.png"))
    out["broken"] = d / "broken.png"
    out["broken"].write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    data = bytearray(out["olive"].read_bytes())
    data[data.find(b"IDAT") + 40] ^= 0x55  # one flipped byte inside the pixel data
    out["damaged"] = d / "damaged.png"
    out["damaged"].write_bytes(bytes(data))
    return out


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; apt-get install chromium)")
    pytest.importorskip("gradio", reason="the web UI needs gradio: pip install 'glazeish[ui]'")
    with sync_playwright() as p:
        if chromium_path():
            b = launch_browser(p)  # a Chromium that is there but does not start is a failure, not a skip
        else:
            try:  # no system Chromium: a browser from `playwright install`, if there is one
                b = launch_browser(p)
            except Exception as e:  # noqa: BLE001 - any launch failure means "no browser here"
                pytest.skip(f"no Chromium to drive (apt-get install chromium): {str(e).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (MODELS / "taef2_encoder.pth").is_file():
        pytest.skip(f"real TAE weights not found at {MODELS} (set GLAZEISH_MODELS)")
    if not PAINTING.is_file() or not FLAT.is_file():
        pytest.skip(f"test pictures not found under {SHARED / 'images'}")
    srv = Server(tmp_path_factory.mktemp("webui"))
    try:
        srv.wait()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    return make_pictures(tmp_path_factory.mktemp("pictures"))


@pytest.fixture
def page(browser, server, request, tmp_path):
    pg = new_page(browser, server)
    failed = request.session.testsfailed
    yield pg
    close_page(pg, request, tmp_path, failed)


@pytest.fixture(scope="module")
def cloaked(browser, server, pictures, request, tmp_path_factory):
    """One page on which two pictures (a painting crop and a transparent one) were cloaked at STEPS steps, and what
    its progress area showed meanwhile."""
    pg = new_page(browser, server)
    failed = request.session.testsfailed
    add_files(pg, [pictures["olive"], pictures["sticker"]])
    set_steps(pg, STEPS)
    seen = run_and_wait(pg)
    yield pg, seen
    close_page(pg, request, tmp_path_factory.mktemp("cloaked"), failed)


# ---------------------------------------------------------------------------------------------- tests


def test_uploads_are_checked_before_cloak(page, pictures):
    run, cancel = page.locator("#glz-run"), page.locator("#glz-cancel")
    assert run.is_disabled() and cancel.is_disabled()  # nothing to cloak, nothing to cancel
    add_files(page, [pictures["broken"], pictures["damaged"]])
    bad = page.locator("#glz-checks .glz-bad")
    assert bad.all_inner_texts() == [f"broken.png: {NOT_A_PICTURE}", f"damaged.png: {NOT_A_PICTURE}"]
    color = bad.first.evaluate("e => getComputedStyle(e).color")
    r, g, b = (int(v) for v in color[color.index("(") + 1:color.index(")")].split(",")[:3])
    assert r > 150 and g < 100 and b < 100, color  # red
    assert run.is_disabled()  # no picture among them
    add_files(page, [pictures["olive"]], total=3)
    assert page.locator("#glz-checks .glz-good img").count() == 1
    assert "96×64" in page.inner_text("#glz-checks")
    assert bad.count() == 2
    assert run.is_enabled() and cancel.is_disabled()
    body = page.inner_text("body")
    assert "Pillow" not in body and "Traceback" not in body and "/tmp" not in body


def test_the_page_says_what_goes_into_the_file(page):
    written = page.locator("#glz-written")
    assert "Prohibited for AI/ML training" in written.inner_text() and "Protected with glazeish" in written.inner_text()
    page.locator("#glz-creator input, #glz-creator textarea").first.fill("Jane Doe")
    page.wait_for_function("() => document.querySelector('#glz-written').innerText.includes('“Jane Doe”')")
    page.locator("#glz-note input[type=checkbox]").uncheck()  # leave glazeish out
    page.wait_for_function("() => !document.querySelector('#glz-written').innerText.includes('glazeish')")
    page.locator("#glz-metadata input[type=checkbox]").uncheck()
    page.wait_for_function("() => document.querySelector('#glz-written').innerText.includes('Nothing is added')")
    assert "Jane Doe" not in written.inner_text()
    # name and notice sit outside Advanced, which stays closed
    assert page.locator("#glz-creator").is_visible() and not page.locator("#glz-steps").is_visible()


def test_progress_names_its_phases_and_the_buttons_follow(cloaked):
    pg, seen = cloaked
    phases = [s["phase"] for s in seen]
    # (the page shows the latest state twice a second: a short phase may pass unseen, so not every step is asked for)
    order = ["Starting", r"Cloaking 1 of 2: olive\.png", "Checking the result of 1 of 2: olive.png",
             "Cloaking 2 of 2: sticker.png", "Checking the result of 2 of 2: sticker.png", "Done: 2 pictures in"]
    at = [next((k for k, p in enumerate(phases) if re.match(want, p)), None) for want in order]
    assert None not in at and at == sorted(at), phases
    assert any(re.match(rf"Cloaking [12] of 2: \w+\.png, step [1-{STEPS}] of {STEPS}", p) for p in phases), phases
    fractions = [s["fraction"] for s in seen if s["fraction"] > 0]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    running = [s for s in seen if s["phase"].startswith(("Cloaking", "Checking"))]
    assert all(s["run"] == "Cloaking…" and s["runDisabled"] and not s["cancelDisabled"] for s in running)
    assert pg.locator("#glz-run").inner_text() == "Cloak" and pg.locator("#glz-cancel").is_disabled()
    assert pg.locator("#glz-progress .glz-bar").count() == 1  # one bar, and nothing of Gradio's drawn over it
    assert pg.locator("#glz-progress .progress-text, #glz-status .progress-text").count() == 0
    assert "last image took" in pg.inner_text("#glz-progress")


def test_results_say_what_survives_and_download(cloaked, tmp_path):
    pg, _ = cloaked
    assert pg.inner_text("#glz-status").startswith("2 of 2 images cloaked.")
    for i, (w, h) in enumerate([(96, 64), (40, 56)]):
        # original, cloaked and the change; what the model sees of each: all at the picture's own size
        assert image_sizes(pg, f"#glz-compare-{i}") == [(w, h)] * 3
        assert image_sizes(pg, f"#glz-modelview-{i}") == [(w, h)] * 2
        figures = pg.inner_text(f"#glz-figures-{i}")
        assert "Visibility" in figures and "PSNR" in figures and "Protection" in figures
        assert "After a platform's re-compression (JPEG q75)" in figures and "% of the protection remains" in figures
        assert f"{w}×{h}" in pg.inner_text(f"#glz-result-{i}")
    assert "over its visible pixels" in pg.inner_text("#glz-figures-1")  # the transparent one

    with pg.expect_download() as dl:
        pg.locator("#glz-download-0").click()
    assert dl.value.suggested_filename == "olive.protected.png"
    out = tmp_path / "downloaded.png"
    dl.value.save_as(out)
    with Image.open(out) as b:
        assert b.size == (96, 64)
    with pg.expect_download() as dz:
        pg.locator("#glz-zip").click()
    zpath = tmp_path / "all.zip"
    dz.value.save_as(zpath)
    with zipfile.ZipFile(zpath) as z:  # each picture and its HTML report
        assert sorted(z.namelist()) == ["olive.protected.png", "olive.protected.report.html", "sticker.protected.png",
                                        "sticker.protected.report.html"]
        assert z.read("olive.protected.png") == out.read_bytes()


def test_the_comparison_opens_at_100_percent_pans_and_flickers(cloaked):
    pg, _ = cloaked
    v = pg.locator("#glz-compare-0")
    v.scroll_into_view_if_needed()
    width = "() => document.querySelector('#glz-compare-0 .glz-a').getBoundingClientRect().width"
    v.locator(".glz-stage").click()  # click the picture: 100 %, one image pixel per CSS pixel
    assert v.get_attribute("data-zoom") == "1" and pg.evaluate(width) == pytest.approx(96, abs=0.5)
    assert "100 %" in v.locator(".glz-caption").inner_text()
    v.locator("button[data-zoom='4']").click()
    assert pg.evaluate(width) == pytest.approx(384, abs=0.5)
    rendering = v.locator(".glz-a").evaluate("e => getComputedStyle(e).imageRendering")
    assert rendering == "pixelated"  # enlarged pixels stay hard
    v.locator(".glz-stage").click()  # and back to the whole picture
    assert v.get_attribute("data-zoom") == "fit"

    # A/B: original and cloaked alternate in place; then the split shows both
    v.locator("button[data-mode='flicker']").click()
    shows = set()
    for _ in range(12):
        shows.add(v.get_attribute("data-show"))
        pg.wait_for_timeout(200)
    assert shows == {"a", "b"}
    v.locator("button[data-mode='a']").click()
    visible = "s => [...document.querySelectorAll(s + ' img')].map(i => getComputedStyle(i).visibility)"
    assert pg.evaluate(visible, "#glz-compare-0") == ["visible", "hidden", "hidden"]
    v.locator("button[data-mode='c']").click()  # the change, amplified
    assert pg.evaluate(visible, "#glz-compare-0") == ["visible", "hidden", "visible"]
    m = pg.locator("#glz-modelview-0")
    m.locator("button[data-mode='flicker']").click()
    pg.wait_for_timeout(900)
    assert m.get_attribute("data-mode") == "flicker" and "flicker" in m.locator(".glz-caption").inner_text()


def _boxes(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(selector, """els => els.filter(e => e.offsetParent !== null).map(e => {
        const r = e.getBoundingClientRect();
        return {name: (e.id || e.className || e.tagName) + ':' + (e.innerText || e.alt || '').slice(0, 30),
                x: r.left, y: r.top + window.scrollY, w: r.width, h: r.height};
    }).filter(b => b.w > 0 && b.h > 0)""")


def _overlaps(boxes: list[dict]) -> list[tuple[str, str]]:
    out = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if (a["x"] + 1 < b["x"] + b["w"] and b["x"] + 1 < a["x"] + a["w"]
                    and a["y"] + 1 < b["y"] + b["h"] and b["y"] + 1 < a["y"] + a["h"]):
                out.append((a["name"], b["name"]))
    return out


def check_phone_layout(pg, screen: int = 844) -> None:
    """At 390 px: one column, Intensity above Cloak and Cloak within one screen of the uploads, equal comparison
    panes, and no two labels, buttons, headings or pictures drawn over each other."""
    column = [_boxes(pg, s)[0] for s in ("#glz-files", "#glz-intensity", "#glz-run", "#glz-presets", "#glz-meta",
                                         "#glz-advanced", "#glz-result-0")]
    lefts, widths = {round(b["x"]) for b in column}, [b["w"] for b in column]
    assert max(lefts) - min(lefts) <= 24 and min(widths) > 300, column
    ys = [b["y"] for b in column]
    assert ys == sorted(ys), column  # files, intensity, Cloak, preset cards, metadata, advanced, results
    files, intensity, run = (_boxes(pg, s)[0] for s in ("#glz-files", "#glz-intensity", "#glz-run"))
    assert intensity["y"] + intensity["h"] <= run["y"]
    # from the upload box's end (where an artist is after adding pictures) Cloak is on the same screen, past the
    # checks and times of the uploads
    assert run["y"] + run["h"] - (files["y"] + files["h"]) <= screen, (files, run)
    a, b = (_boxes(pg, f"{s}-0 .glz-stage")[0] for s in ("#glz-compare", "#glz-modelview"))
    assert abs(a["w"] - b["w"]) < 1 and abs(a["h"] - b["h"]) < 1 and a["y"] + a["h"] <= b["y"]  # equal, stacked
    leaves = ("label, button, h1, h2, h3, h4, .glz-check, .glz-verdict, .glz-caption, .glz-phase, .glz-stage, "
              ".glz-preset img, .glz-preset h4, [data-testid='block-info'], input[type=text], textarea")
    # (an upload box's drop area is drawn under its label by design: a surface, not a label)
    boxes = [bx for bx in _boxes(pg, leaves) if bx["w"] > 2 and bx["h"] > 2 and "upload-container" not in bx["name"]]
    # an element and what it contains are not an overlap
    nested = set(pg.eval_on_selector_all(leaves, """els => {
        const out = []; const vis = els.filter(e => e.offsetParent !== null);
        const name = e => (e.id || e.className || e.tagName) + ':' + (e.innerText || e.alt || '').slice(0, 30);
        for (const a of vis) for (const b of vis) if (a !== b && a.contains(b)) out.push(name(a) + '|' + name(b));
        return out; }"""))
    bad = [(x, y) for x, y in _overlaps(boxes) if f"{x}|{y}" not in nested and f"{y}|{x}" not in nested]
    assert bad == [], bad


def test_phone_layout_is_one_column_without_overlaps(cloaked):
    pg, _ = cloaked
    pg.set_viewport_size({"width": 390, "height": 844})
    pg.wait_for_timeout(500)
    try:
        assert pg.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
        check_phone_layout(pg)
        shot = os.environ.get("GLAZEISH_WEBUI_PHONE_SCREENSHOT")
        if shot:
            pg.screenshot(path=shot, full_page=True)
        # 400 % of a 96 px picture is wider than a phone's pane: drag to pan (a drag is not a click)
        v = pg.locator("#glz-compare-0")
        v.locator("button[data-zoom='4']").click()
        stage = v.locator(".glz-stage")
        stage.scroll_into_view_if_needed()
        assert stage.evaluate("s => s.scrollWidth > s.clientWidth")
        before = stage.evaluate("s => s.scrollLeft")
        box = stage.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        pg.mouse.move(x, y)
        pg.mouse.down()
        pg.mouse.move(x + 40, y, steps=5)
        pg.mouse.up()
        assert stage.evaluate("s => s.scrollLeft") < before and v.get_attribute("data-zoom") == "4"
        v.locator("button[data-zoom='fit']").click()
    finally:
        pg.set_viewport_size({"width": 1280, "height": 900})


def test_a_large_upload_shows_its_time_and_posting_sizes_before_cloak(page, tmp_path):
    big = tmp_path / "big.png"  # 6 MP, under the page's 16 MP limit
    with Image.open(PAINTING) as im:
        im.convert("RGB").resize((3000, 2000)).save(big, compress_level=1)
    add_files(page, [big])
    checks = page.locator("#glz-checks")
    text = checks.inner_text()
    assert "3000×2000" in text and "on this computer with default" in text, text
    assert re.search(r"About \d+ (min|h) \d+", text) and "Over a minute" in text, text
    assert page.locator("#glz-run").is_enabled()  # said before Cloak, not instead of it
    # the offer chooses the posting size, and the estimate follows
    page.locator("#glz-checks [data-glz-size='2048']").click()
    page.wait_for_function("() => document.querySelector('#glz-checks').innerText.includes('at posting size 2048×1365')")
    assert page.locator("#glz-size input[value='2048']").is_checked()
    # a click anywhere on a preset card chooses it (here on its text, not the radio)
    page.locator(".glz-preset[data-preset='fast'] li").first.click()
    page.wait_for_function("() => document.querySelector('#glz-intensity input[value=\"fast\"]').checked")
    page.wait_for_function("() => document.querySelector('.glz-preset.glz-chosen').dataset.preset === 'fast'")
    page.wait_for_function("() => document.querySelector('#glz-checks').innerText.includes('with fast')")
    # the numbers are one click away, and opening them does not choose the card
    page.locator(".glz-preset[data-preset='high'] summary").click()
    assert "dB" in page.locator(".glz-preset[data-preset='high'] details").inner_text()
    page.wait_for_timeout(500)
    assert page.locator("#glz-intensity input[value='fast']").is_checked()


def test_a_jpeg_download_says_what_it_keeps(page, pictures, tmp_path):
    add_files(page, [pictures["cel"]])
    set_steps(page, 2)
    page.locator("#glz-format input[value='jpeg']").click()
    run_and_wait(page)
    note = page.inner_text("#glz-export-0")
    assert note.startswith("As JPEG q90") and "% of the protection remains in it" in note, note
    assert "After JPEG quality 90" in page.inner_text("#glz-figures-0")
    with page.expect_download() as dl:
        page.locator("#glz-download-export-0").click()
    assert dl.value.suggested_filename == "cel.protected.jpg"
    dl.value.save_as(tmp_path / "cel.jpg")
    with Image.open(tmp_path / "cel.jpg") as im:
        assert im.format == "JPEG" and im.size == (64, 48)
    with page.expect_download() as dz:
        page.locator("#glz-zip").click()
    dz.value.save_as(tmp_path / "all.zip")
    with zipfile.ZipFile(tmp_path / "all.zip") as z:
        assert sorted(z.namelist()) == ["cel.protected.jpg", "cel.protected.report.html"]


def test_a_second_tab_waits_in_line_and_says_where(page, browser, server, tmp_path):
    with Image.open(PAINTING) as im:
        im.convert("RGB").crop((0, 0, 256, 256)).save(tmp_path / "long.png")
    add_files(page, [tmp_path / "long.png"])
    set_steps(page, 200)
    page.locator("#glz-run").click()
    page.wait_for_function("() => /step \\d+ of 200/.test(document.querySelector('#glz-progress').innerText)",
                           timeout=TIMEOUT_MS)
    other = new_page(browser, server)
    try:
        add_files(other, [tmp_path / "long.png"])
        other.locator("#glz-run").click()
        other.wait_for_function("() => /Waiting: 1 job ahead of yours/.test(document.querySelector('#glz-progress')"
                                ".innerText)", timeout=60_000)
        waiting = other.inner_text("#glz-progress")
        assert re.search(r"about \d+ (s|min)", waiting) and "yours then takes about" in waiting, waiting
        assert other.inner_text("#glz-run") == "Waiting (2nd in line)…" and other.locator("#glz-cancel").is_enabled()
        other.locator("#glz-cancel").click()
        other.wait_for_function("() => document.querySelector('#glz-status').innerText.includes('Cancelled before')",
                                timeout=60_000)
    finally:
        other.context.close()
        page.locator("#glz-cancel").click()
        page.wait_for_function("() => document.querySelector('#glz-status').innerText.includes('Cancelled')",
                               timeout=TIMEOUT_MS)


def test_cancel_lists_what_was_not_cloaked_and_zips_what_was(page, server, pictures):
    add_files(page, [pictures["cel"], pictures["olive"], pictures["sticker"]])
    set_steps(page, STEPS)
    page.evaluate(RECORD)
    page.locator("#glz-run").click()
    page.wait_for_function("() => /Cloaking 2 of 3/.test(document.querySelector('#glz-progress').innerText)",
                           timeout=TIMEOUT_MS)
    page.locator("#glz-cancel").click()
    page.wait_for_function("() => document.querySelector('#glz-status').innerText.includes('Cancelled')",
                           timeout=TIMEOUT_MS)
    status = page.inner_text("#glz-status")
    assert status.startswith("Cancelled. Cloaked: cel.png") and "Not cloaked: " in status, status
    left = status.split("Not cloaked: ")[1]
    assert left.startswith("olive.png") and left.rstrip(".").endswith("sticker.png"), status
    page.locator("#glz-result-0").wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#glz-result-1").count() == 0
    # what finished can still be downloaded; the page applies one update's outputs one component at a time,
    # so the button may show a moment after the status line
    page.locator("#glz-zip").wait_for(state="visible", timeout=TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('#glz-run').disabled")
    assert page.locator("#glz-cancel").is_disabled() and page.inner_text("#glz-run") == "Cloak"
    # the server's optimisation loop saw the flag and stopped (not just the page that stopped waiting)
    assert "job cancelled; the optimisation stopped" in server.log.read_text()


def test_stopping_the_server_mid_job_exits_cleanly_and_leaves_nothing(page, server, pictures):
    """Stops the shared server, so it stays the last test of this file."""
    add_files(page, [pictures["olive"]])
    set_steps(page, 200)
    page.locator("#glz-run").click()
    page.wait_for_function("() => /step [1-9][0-9]* of 200/.test(document.querySelector('#glz-progress').innerText)",
                           timeout=TIMEOUT_MS)
    assert list(server.tmp.glob("glazeish-ui-*")), "the server keeps its job outputs in its own temp folder"
    assert list(server.gradio.rglob("olive.png")), "Gradio keeps the uploads in its temp folder"
    assert server.stop() == 0  # SIGTERM mid-job: the job stops at its next step, then a clean exit (not 134)
    log = server.log.read_text()
    assert "terminate called" not in log and "Traceback" not in log, log[-2000:]
    assert list(server.tmp.glob("glazeish-ui-*")) == []
    uploads = [p for p in server.gradio.rglob("*") if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".webp")]
    assert uploads == [], uploads


# ----------------------------------------------------------------------------------- docs screenshots


def _screenshot(desktop: Path, phone: Path | None) -> None:  # pragma: no cover - a tool, run by hand
    """Cloak a painting crop, a flat-colour crop and a transparent drawing at the default preset, and save
    full-page screenshots at 1280 px and (``phone``) 390 px wide."""
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        with Image.open(PAINTING) as im:
            im.convert("RGB").crop((0, 96, 384, 352)).save(tmp / "olive-picking.png")
        with Image.open(FLAT) as im:
            im.convert("RGB").crop((32, 96, 416, 352)).save(tmp / "cel.jpg", quality=90)
            cel = np.asarray(im.convert("RGB").crop((192, 156, 448, 412)))
        alpha = np.where(np.abs(cel.astype(int) - cel[0, 0].astype(int)).sum(axis=2) < 30, 0, 255).astype(np.uint8)
        Image.fromarray(np.dstack([cel, alpha]), "RGBA").save(tmp / "character.png")
        files = [tmp / "olive-picking.png", tmp / "cel.jpg", tmp / "character.png"]
        srv = Server(tmp)
        try:
            srv.wait()
            with sync_playwright() as p:
                b = launch_browser(p)
                pg = b.new_page(viewport={"width": 1280, "height": 900})
                pg.goto(srv.url)
                add_files(pg, files)
                pg.locator("#glz-creator input, #glz-creator textarea").first.fill("Jane Doe")
                run_and_wait(pg, timeout_ms=1_800_000)
                for i in range(len(files)):
                    image_sizes(pg, f"#glz-result-{i}")
                pg.locator("#glz-compare-2 button[data-mode='b']").click()
                time.sleep(1)
                shots = [(desktop, None)] + ([(phone, (390, 844))] if phone else [])
                for dest, size in shots:
                    if size:
                        pg.set_viewport_size({"width": size[0], "height": size[1]})
                        time.sleep(1)
                        check_phone_layout(pg)
                    pg.screenshot(path=str(dest), full_page=True)
                    with Image.open(dest) as im:  # 256 colours: a third of the size, still sharp text
                        im.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(dest, optimize=True)
                b.close()
        finally:
            srv.stop()


if __name__ == "__main__":  # pragma: no cover
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--screenshot", type=Path, required=True, help="desktop screenshot (1280 px wide)")
    ap.add_argument("--phone", type=Path, default=None, help="phone screenshot (390 px wide)")
    a = ap.parse_args()
    _screenshot(a.screenshot, a.phone)
