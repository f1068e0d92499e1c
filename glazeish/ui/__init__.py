"""The local web page: drop images, pick a strength, see what the cloak does, download the results.

``python webui.py`` runs :func:`main` and ``glazeish ui`` runs :func:`serve` (serve until Ctrl-C or SIGTERM, stop
the running job, then clean up); :func:`launch` starts the page from Python, and :func:`build_app` returns the
:class:`gradio.Blocks` without starting it (tests, embedding).

One concept per module, in the order a job goes through them; only the last three know about Gradio:

- :mod:`~glazeish.ui.settings`: what the controls mean (:class:`Settings` → the CLI's job), the page's limits, the
  download's format;
- :mod:`~glazeish.ui.uploads`: :func:`check_upload` reads an upload as soon as it arrives (a thumbnail, or one line
  saying it is not a picture), download names, friendly errors;
- :mod:`~glazeish.ui.progress`: :class:`Progress` follows a batch's phases, steps and time;
- :mod:`~glazeish.ui.models`: the loaded models, shared between jobs;
- :mod:`~glazeish.ui.batch`: the batch runner, :func:`cloak_batch` runs the same job as ``glazeish protect``
  (:meth:`glazeish.job.Cloaker.cloak_file`) over the uploads and yields one :class:`ImageResult` per image, errors
  included, with preview images and the words of :func:`glazeish.evaluation.judge`; the ZIP; the temp folder;
- :mod:`~glazeish.ui.jobs`: the waiting line, each job in its own thread, so that Cancel, a closed tab and a server
  shutdown all stop it at the next optimisation step;
- :mod:`~glazeish.ui.page`: the event handlers (:class:`Page`);
- :mod:`~glazeish.ui.layout`: the Gradio components and their wiring (:func:`build_app`; gradio is imported only
  here, when the page is built);
- :mod:`~glazeish.ui.server`: :func:`launch`, :func:`serve`, :func:`main`.

:mod:`glazeish.webpage` turns all of it into the page's HTML. Nothing here optimises or measures anything: the
cloak and its figures are the library's, exactly as on the CLI, and every verdict word comes from
:mod:`glazeish.evaluation.verdicts`.

This package re-exports the names its callers use (``webui.py``, ``glazeish ui``, the tests), so
``from glazeish import ui; ui.cloak_batch(...)`` works; code in the package imports from the module that defines a
name.
"""

from ..imageio import ImageError
from ..webpage import ImageResult, Upload
from .batch import (
    KEEP_SECONDS,
    BatchUpdate,
    Cancelled,
    Workspace,
    cloak_batch,
    cloak_one,
    job_work,
    make_zip,
    speed_key,
)
from .jobs import MAX_WAITING, Jobs, ordinal, waiting_words
from .layout import (
    FORMAT_CHOICES,
    INTRO,
    PLAIN_ENCODERS,
    PLAIN_OBJECTIVES,
    SIZE_CHOICES,
    TIMING,
    UPLOAD_TYPES,
    build_app,
    objective_info,
    plain_encoder,
)
from .models import VIEW_DECODER, ProtectorCache
from .page import CONTROLS, Page, forecasts, settings_of
from .progress import PHASES, Progress
from .server import DEFAULT_HOST, DEFAULT_PORT, launch, main, parse_args, serve
from .settings import (
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MAX_PIXELS,
    EXPORT_QUALITY,
    JPEG_ROBUST,
    SURVIVAL_PURIFICATION,
    WEBP_QUALITY,
    Settings,
    export_label,
    export_purification,
    written,
)
from .uploads import LONGEST_BESIDE, NOT_A_PICTURE, check_upload, data_uri, friendly_error, unique_names

__all__ = [
    "CONTROLS", "DEFAULT_HOST", "DEFAULT_MAX_FILE_MB", "DEFAULT_MAX_PIXELS", "DEFAULT_PORT", "EXPORT_QUALITY",
    "FORMAT_CHOICES", "INTRO", "JPEG_ROBUST", "KEEP_SECONDS", "LONGEST_BESIDE", "MAX_WAITING", "NOT_A_PICTURE",
    "PHASES", "PLAIN_ENCODERS", "PLAIN_OBJECTIVES", "SIZE_CHOICES", "SURVIVAL_PURIFICATION", "TIMING",
    "UPLOAD_TYPES", "VIEW_DECODER", "WEBP_QUALITY", "BatchUpdate", "Cancelled", "ImageError", "ImageResult", "Jobs",
    "Page", "Progress", "ProtectorCache", "Settings", "Upload", "Workspace", "build_app", "check_upload",
    "cloak_batch", "cloak_one", "data_uri", "export_label", "export_purification", "forecasts", "friendly_error",
    "job_work", "launch", "main", "make_zip", "objective_info", "ordinal", "parse_args", "plain_encoder", "serve",
    "settings_of", "speed_key", "unique_names", "waiting_words", "written",
]
