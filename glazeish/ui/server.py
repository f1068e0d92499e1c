"""Serving the page: :func:`launch` starts it from Python, :func:`serve` until Ctrl-C or SIGTERM (stopping the
running job, then cleaning up; what ``glazeish ui`` runs), and :func:`main` parses ``webui.py``'s command line.
"""

import argparse
import logging
import sys
import threading
from collections.abc import Sequence

from ..device import resolve_device, resolve_precision
from .layout import _theme, build_app
from .settings import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS

log = logging.getLogger(__package__)  # "glazeish.ui": one logger for the whole page

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def launch(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    share: bool = False,
    models_dir: str | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    device: str = "auto",
    precision: str = "auto",
    open_browser: bool = False,
    block: bool = True,
):
    """Start the page on ``http://host:port`` (127.0.0.1 unless told otherwise). ``share`` asks Gradio
    for a public link (needs the internet; anyone with the link can use the page). With
    ``block=False`` returns the running :class:`gradio.Blocks` (call ``.close()`` and then
    ``.glazeish_shutdown()`` when done)."""
    import atexit

    demo = build_app(models_dir, max_pixels=max_pixels, max_file_mb=max_file_mb, device=device, precision=precision)
    atexit.register(demo.glazeish_shutdown)
    demo.queue(max_size=64, default_concurrency_limit=4)
    try:
        demo.launch(
            server_name=host, server_port=port, share=share, inbrowser=open_browser, prevent_thread_lock=not block,
            max_file_size=f"{int(max_file_mb * 1000)}kb", show_error=False, ssr_mode=False, run_history=False,
            footer_links=["settings"], theme=_theme(), css=demo.glazeish_css, head=demo.glazeish_head, quiet=False,
        )
    finally:
        if block:  # Ctrl-C / SIGTERM: stop the job before Python exits (a torch thread at exit aborts the process)
            demo.glazeish_shutdown()
    return demo


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="webui.py", description="glazeish web UI: cloak images from a local web page.")
    ap.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default 127.0.0.1: this computer only; "
                    "0.0.0.0 opens it to your network)")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    ap.add_argument("--share", action="store_true", help="also make a public gradio.live link (needs the internet)")
    ap.add_argument("--models", default=None, help="folder with the encoder weights (default: $GLAZEISH_MODELS, "
                    "then the download cache)")
    ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    ap.add_argument("--max-file-mb", type=float, default=DEFAULT_MAX_FILE_MB, help="refuse larger uploads")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    ap.add_argument("--precision", default="auto", help="auto (fastest measured here), fp32, bf16 or fp16")
    ap.add_argument("--open", action="store_true", help="open the page in the default browser")
    return ap.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, share: bool = False, models_dir: str | None = None, **options
) -> None:
    """Serve the page until Ctrl-C or SIGTERM, then remove its temp files: what ``webui.py`` and
    ``glazeish ui`` run. ``options`` are :func:`launch`'s keyword options (``max_pixels``, ``device``, …).
    A missing gradio or a taken port ends with one line, not a traceback."""
    import signal

    try:  # a device or precision this machine cannot run is said before the page starts, not on every image
        resolve_precision(options.get("precision", "auto"), resolve_device(options.get("device", "auto")))
    except ValueError as e:
        print(f"glazeish ui: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    # SIGTERM (kill, systemd, a test harness) ends like Ctrl-C, so the temp files are removed
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    if share or host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the page is reachable from other machines (%s); anyone who can reach it can use it",
                    "public share link" if share else f"--host {host}")
    try:
        launch(host, port, share, models_dir, **options)
    except OSError as e:  # port taken, address not available
        log.debug("launch failed: %s", e)
        raise SystemExit(f"glazeish ui: error: cannot listen on {host}:{port} (in use, or not an address of this "
                         "computer); choose another with --port / --host") from None
    except RuntimeError as e:  # gradio missing
        raise SystemExit(f"glazeish ui: error: {str(e).splitlines()[0]}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """``python webui.py [--host H] [--port P] [--share] ...``."""
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve(a.host, a.port, a.share, a.models, max_pixels=a.max_pixels, max_file_mb=a.max_file_mb, device=a.device,
          precision=a.precision, open_browser=a.open)
