"""End-to-end test of the web page in a real browser: ``webui.py`` on a free localhost port, driven by
Playwright in Debian's Chromium (``apt-get install chromium``; ``pip install playwright``, no
``playwright install`` needed).

Also a screenshot tool for the docs: ``python tests/test_webui_browser.py --screenshot docs/webui.png``.
"""

from __future__ import annotations

import os
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
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
EPS = 4  # the default preset's budget, 1/255 units
STEPS = 2
TIMEOUT_MS = 90_000

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
    """``python webui.py`` in a subprocess, with its temp folders under ``tmp``."""

    def __init__(self, tmp: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.tmp = tmp / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.log = tmp / "webui.log"
        env = dict(os.environ, GLAZEISH_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", TMPDIR=str(self.tmp),
                   GRADIO_TEMP_DIR=str(tmp / "gradio"), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, str(ROOT / "webui.py"), "--port", str(self.port), "--models", str(MODELS),
               "--precision", "fp32"]
        self._log = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 90) -> None:
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

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def launch_browser(playwright):
    exe = chromium_path()
    return playwright.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)


def add_files(page, files: list[Path]) -> None:
    """Drop ``files`` on the upload box and wait until it lists them (the upload has then finished)."""
    page.locator("#glz-files input[type=file]").set_input_files([str(f) for f in files])
    page.wait_for_function(
        "stems => { const t = document.querySelector('#glz-files').innerText;"
        " return stems.every(s => t.includes(s)) && !/uploading/i.test(t); }",
        arg=[f.stem for f in files],
    )


def upload_and_run(page, files: list[Path], steps: int | None = None, timeout_ms: int = TIMEOUT_MS) -> None:
    """Put ``files`` in the upload box, optionally set the step count under Advanced, press Cloak and
    wait until the status line reports the batch as finished."""
    add_files(page, files)
    if steps is not None:
        page.locator("#glz-advanced .label-wrap").click()
        box = page.locator("#glz-steps input[type=number]")
        for _ in range(20):  # the accordion mounts its sliders lazily and may reset a value typed too early
            box.fill(str(steps))
            box.press("Enter")
            page.wait_for_timeout(250)
            slider = page.locator("#glz-steps input[type=range]")
            if box.input_value() == str(steps) and slider.input_value() == str(steps):
                break
        assert box.input_value() == str(steps), "could not set the step count"
    page.locator("#glz-run").click()
    page.wait_for_function(
        "() => /image(s)? cloaked\\.|Nothing was cloaked/.test(document.querySelector('#glz-status').innerText)",
        timeout=timeout_ms,
    )


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
    srv = Server(tmp_path_factory.mktemp("webui"))
    try:
        srv.wait()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def page(browser, server, request, tmp_path):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    offsite: list[str] = []
    pg.on("request", lambda r: offsite.append(r.url) if not r.url.startswith((server.url, "data:", "blob:")) else None)
    pg.goto(server.url)
    pg.locator("#glz-files").wait_for()
    failed_before = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed_before:  # leave evidence: what the page and the server showed
        pg.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"failure screenshot: {tmp_path / 'failure.png'}; server log: {server.log}")
    ctx.close()
    # the page never reaches beyond this computer (no fonts, analytics or CDNs)
    assert offsite == [], f"the page made requests off localhost: {offsite}"


@pytest.fixture
def small_painting(tmp_path) -> Path:
    if not PAINTING.is_file():
        pytest.skip(f"test painting not found at {PAINTING}")
    p = tmp_path / "olive.png"
    with Image.open(PAINTING) as im:
        im.convert("RGB").crop((120, 200, 216, 264)).save(p)  # 96×64
    return p


# ---------------------------------------------------------------------------------------------- tests


def test_cloak_view_and_download(page, small_painting, tmp_path):
    upload_and_run(page, [small_painting], steps=STEPS)
    assert "1 of 1 image cloaked." in page.inner_text("#glz-status")

    # original vs cloaked, and what the model sees of each, all at the image's full size
    assert image_sizes(page, "#glz-slider-0") == [(96, 64), (96, 64)]
    assert image_sizes(page, "#glz-view-original-0") == [(96, 64)]
    assert image_sizes(page, "#glz-view-cloaked-0") == [(96, 64)]
    assert image_sizes(page, "#glz-diff-0") == [(96, 64)]
    figures = page.inner_text("#glz-figures-0")
    assert "Visibility:" in figures and "PSNR" in figures and "Protection:" in figures
    assert "noise of the same PSNR" in figures and "JPEG re-save" in figures

    with page.expect_download() as dl:
        page.locator("#glz-download-0").click()
    assert dl.value.suggested_filename == "olive.protected.png"
    out = tmp_path / "downloaded.png"
    dl.value.save_as(out)
    with Image.open(small_painting) as a, Image.open(out) as b:
        assert b.size == a.size == (96, 64)
        x, y = np.asarray(a.convert("RGB"), int), np.asarray(b.convert("RGB"), int)
    delta = np.abs(x - y)
    assert 0 < delta.max() <= EPS

    with page.expect_download() as dz:
        page.locator("#glz-zip").click()
    zpath = tmp_path / "all.zip"
    dz.value.save_as(zpath)
    with zipfile.ZipFile(zpath) as z:
        assert z.namelist() == ["olive.protected.png"]
        assert z.read("olive.protected.png") == out.read_bytes()

    shot = os.environ.get("GLAZEISH_WEBUI_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)


def test_corrupt_file_shows_a_readable_message(page, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    upload_and_run(page, [bad], steps=STEPS)
    msg = page.inner_text("#glz-error-0")
    assert "broken.png" in msg and ("corrupt" in msg or "not an image" in msg)
    assert "0 of 1 image cloaked." in page.inner_text("#glz-status")
    body = page.inner_text("body")
    assert "Traceback" not in body and "/tmp" not in body and str(tmp_path) not in body
    assert not page.locator("#glz-zip").is_visible()


def test_progress_moves_and_cancel_stops(page, server, small_painting):
    add_files(page, [small_painting])
    page.locator("#glz-advanced .label-wrap").click()
    box = page.locator("#glz-steps input[type=number]")
    for _ in range(20):
        box.fill("200")
        box.press("Enter")
        page.wait_for_timeout(250)
        if page.locator("#glz-steps input[type=range]").input_value() == "200":
            break
    page.locator("#glz-run").click()
    # the progress line counts optimisation steps
    page.wait_for_function("() => /step [1-9][0-9]*\\/200/.test(document.querySelector('#glz-status').innerText)",
                           timeout=TIMEOUT_MS)
    page.locator("#glz-cancel").click()
    page.wait_for_function("() => document.querySelector('#glz-status').innerText.includes('Cancelled')")
    # the server's optimisation loop saw the flag and stopped (not just the page that stopped waiting)
    end = time.monotonic() + 30
    while "job cancelled" not in server.log.read_text() and time.monotonic() < end:
        time.sleep(0.2)
    assert "job cancelled; the optimisation stopped" in server.log.read_text()
    assert page.locator("#glz-result-0").count() == 0  # the cancelled image produced no result


def test_server_removes_its_temp_files_on_exit(server):
    """Stops the shared server, so it stays the last test of this file."""
    assert list(server.tmp.glob("glazeish-ui-*")), "the server keeps its job outputs in its own temp folder"
    assert server.stop() == 0  # SIGTERM: a clean shutdown, like Ctrl-C
    assert list(server.tmp.glob("glazeish-ui-*")) == []


# ----------------------------------------------------------------------------------- docs screenshot


def _screenshot(dest: Path) -> None:  # pragma: no cover - a tool, run by hand
    """Run the page on two crops at the default preset and save a full-page screenshot to ``dest``."""
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        files = []
        for name, src, box in (("olive-picking.png", PAINTING, (0, 96, 384, 352)),
                               ("cel.png", SHARED / "images" / "flat" / "flat_02.png", (32, 96, 416, 352))):
            with Image.open(src) as im:
                im.convert("RGB").crop(box).save(tmp / name)
            files.append(tmp / name)
        srv = Server(tmp)
        try:
            srv.wait()
            with sync_playwright() as p:
                b = launch_browser(p)
                pg = b.new_page(viewport={"width": 1280, "height": 900})
                pg.goto(srv.url)
                upload_and_run(pg, files, timeout_ms=600_000)
                for i in range(len(files)):
                    image_sizes(pg, f"#glz-result-{i}")
                time.sleep(1)
                pg.screenshot(path=str(dest), full_page=True)
                b.close()
            with Image.open(dest) as im:  # 256 colours: a third of the size, still sharp text
                im.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(dest, optimize=True)
        finally:
            srv.stop()


if __name__ == "__main__":  # pragma: no cover
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--screenshot", type=Path, required=True)
    _screenshot(ap.parse_args().screenshot)
