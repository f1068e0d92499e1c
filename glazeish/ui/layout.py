"""The page's layout: the Gradio components in their columns, and :func:`build_app`, which lays them out and wires
each event to a :class:`~glazeish.ui.page.Page` handler.

Gradio is imported here, lazily (:func:`_gradio`, when the page is built), so that the rest of glazeish and the
page's tests run without it.
"""

import os

# Gradio reports usage to its servers unless told not to; an artist's machine may be offline, and a
# tool that protects their work should not phone home. Set before gradio is imported (below, lazily).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from collections.abc import Sequence

from ..config import PRESETS
from ..encoders import ENCODERS
from ..estimate import POSTING_SIDES, SpeedBook
from ..objectives import OBJECTIVES
from ..platforms import PLATFORMS
from ..webpage import asset, preset_label, render_presets
from .batch import KEEP_SECONDS, Workspace
from .jobs import MAX_WAITING
from .models import ProtectorCache
from .page import CONTROLS, Page
from .settings import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS, EXPORT_QUALITY, Settings, written

UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".webp"]
#: the encoders and objectives in plain words (the registries' descriptions are for the command line)
PLAIN_ENCODERS = {
    "taef2": "stands in for FLUX-family image models (their small autoencoder, which can also show what the "
             "model sees); the default",
    "taesana": "stands in for Sana image models (encoder only: it cannot show what the model sees, so the "
               "page uses taef2 for that)",
}
PLAIN_OBJECTIVES = {
    "mimic-away": "push what a model trained on the image would reproduce away from your picture, in no set direction "
                  "(the presets' choice; needs taef2)",
    "mimic": "pull what a model trained on the image would reproduce toward a decoy texture (needs taef2)",
    "texture": "pull the model's reading of the image toward a decoy texture; fastest, does not need a decoder",
    "untargeted": "push the model's reading of the image as far as possible from the original, in no set direction",
    "style": "pull the model's sense of the image's style (colour and texture statistics) toward a decoy style",
}


#: how far each preset lets one colour value move, for the eps slider's explanation
PRESET_EPS = ", ".join(f"{p.eps_levels:g} ({k}{', on busy texture only' if p.budget == 'masked' else ''})"
                       for k, p in PRESETS.items())


def plain_encoder(name: str) -> str:
    return PLAIN_ENCODERS.get(name, ENCODERS[name].description)


def objective_info(name: str | None) -> str:
    if not name or name not in OBJECTIVES:
        return ""
    return PLAIN_OBJECTIVES.get(name, OBJECTIVES[name].description)


INTRO = """# glazeish — cloak your artwork
Add your pictures, choose an intensity and press **Cloak**. Each result shows your picture before and after, how
visible the change is, and **what an AI model sees**: the picture after the model's encoder and decoder, which is
what a model trained on your work would learn to reproduce — and how much of the protection is left once a platform
re-compresses the upload. Everything runs on this computer; nothing is sent anywhere else."""


#: the "Cloak at" choices: full size, or a posting size's long side
SIZE_CHOICES = [("Full size", "full")] + [(f"Long side {s} px", str(s)) for s in POSTING_SIDES]
FORMAT_CHOICES = [("PNG (keeps all of the cloak; large)", "png"), ("JPEG", "jpeg"), ("WebP", "webp")]


def _gradio():
    try:
        import gradio
    except ImportError:
        raise RuntimeError("the web UI needs gradio: pip install 'glazeish[ui]'") from None
    return gradio


def _theme():
    gr = _gradio()

    # system fonts only: nothing fetched from font servers
    return gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def _uploads_column(gr, page: Page) -> dict:
    """Left: the pictures, their check and time, the size to cloak at, the intensity, Cloak and the progress
    (on a phone, Cloak stays within a screen of the uploads)."""
    c = {}
    c["files"] = gr.File(label="1 · Your pictures", file_count="multiple", file_types=UPLOAD_TYPES,
                         elem_id="glz-files")
    gr.Markdown(f"PNG, JPEG or WebP, up to {page.max_bytes / 1e6:g} MB and {page.max_pixels / 1e6:g} megapixels "
                "each; transparency is kept. Each file is checked as it arrives, with the time it will take here.",
                elem_classes="glz-note", elem_id="glz-upload-note")
    c["checks"] = gr.HTML(elem_id="glz-checks")
    # (no info lines under these two: on a phone, Cloak stays within a screen of the uploads; the warning under a
    # long upload says why a posting size, and the cards what each intensity trades)
    c["size"] = gr.Radio(SIZE_CHOICES, value="full", label="Cloak at (the file is written at that size)",
                         elem_id="glz-size")
    c["intensity"] = gr.Radio([(preset_label(k), k) for k in PRESETS], value="default", label="2 · Intensity",
                              elem_id="glz-intensity")
    with gr.Row(elem_id="glz-actions"):
        c["run_btn"] = gr.Button("Cloak", variant="primary", interactive=False, elem_id="glz-run")
        c["cancel_btn"] = gr.Button("Cancel", variant="stop", interactive=False, elem_id="glz-cancel")
    c["progress"] = gr.HTML(elem_id="glz-progress")
    c["status"] = gr.HTML(elem_id="glz-status")
    c["zip_btn"] = gr.DownloadButton("Download all (ZIP, with a report per picture)", visible=False, elem_id="glz-zip")
    return c


def _choices_column(gr, page: Page) -> dict:
    """Right: the preset cards, where it will be posted, and the download's format."""
    c = {"presets_html": gr.HTML(render_presets("default", page.examples), elem_id="glz-presets")}
    c["post_to"] = gr.CheckboxGroup([(p.title, p.name) for p in PLATFORMS.values()], value=[],
                                    label="Where will you post it? (optional)", elem_id="glz-platforms",
                                    info="Tick yours: the picture is cloaked at the size the site shows and through "
                                         "its re-saving, so more of the protection survives there. The file is "
                                         "written at that size.")
    with gr.Row(elem_id="glz-export"):
        c["export"] = gr.Radio(FORMAT_CHOICES, value="png", label="Download as", elem_id="glz-format",
                               info="JPEG and WebP are smaller, but their own compression weakens the cloak: each "
                                    "result says how much of the protection the file keeps.")
        c["quality"] = gr.Slider(50, 100, value=EXPORT_QUALITY, step=1, label="JPEG / WebP quality",
                                 elem_id="glz-quality")
    return c


def _meta_column(gr) -> dict:
    c = {}
    gr.Markdown("**3 · Your name and a “no AI training” notice in the file**")
    c["metadata"] = gr.Checkbox(True, elem_id="glz-metadata",
                                label="Ask AI companies not to train on it (a notice in the file's metadata)")
    with gr.Row():
        c["creator"] = gr.Textbox(label="Your name (optional)", elem_id="glz-creator", min_width=220)
        c["copyright_"] = gr.Textbox(label="Copyright notice (optional)", placeholder="© 2025 Your Name",
                                     elem_id="glz-copyright", min_width=220)
    c["note"] = gr.Checkbox(True, label="Also say in the file that it was cloaked with glazeish",
                            info="Untick to leave glazeish out: the note tells whoever reads the file, scrapers "
                                 "included, that the picture is cloaked.", elem_id="glz-note")
    c["written_html"] = gr.HTML(written(Settings()), elem_id="glz-written")
    return c


def _advanced(gr, encoder_names: Sequence[str]) -> dict:
    p, c = PRESETS["default"], {}
    with gr.Accordion("Advanced (optional)", open=False, elem_id="glz-advanced"):
        c["eps"] = gr.Slider(0.5, 16, value=p.eps_levels, step=0.5, label="Largest change per colour value (out of 255)",
                             info="Each red, green and blue value may move by at most this much. Higher is stronger "
                                  "and more visible; the presets use " + PRESET_EPS + ".", elem_id="glz-eps")
        c["steps"] = gr.Slider(1, 200, value=p.steps, step=1, label="Optimisation steps",
                               info="How often the cloak is refined. More is stronger; the time grows in proportion.",
                               elem_id="glz-steps")
        c["robust"] = gr.Checkbox(bool(p.robust), label="Make it survive JPEG re-compression",
                                  info="Optimises through a simulated JPEG re-save, as platforms do to uploads; each "
                                       "step takes longer. On in every preset.", elem_id="glz-robust")
        c["encoders"] = gr.CheckboxGroup(list(encoder_names), value=["taef2"], label="Image models to target",
                                         info=" · ".join(f"{n}: {plain_encoder(n)}" for n in encoder_names),
                                         elem_id="glz-encoders")
        c["objective"] = gr.Dropdown(list(OBJECTIVES), value=p.objective, label="What the cloak aims for",
                                     info=objective_info(p.objective), elem_id="glz-objective")
        c["target"] = gr.File(label="Decoy pattern (optional)", file_types=UPLOAD_TYPES, elem_id="glz-target")
        gr.Markdown("The texture the cloak pulls the model's copy toward; without one, a built-in pattern.",
                    elem_classes="glz-note")
        c["seed"] = gr.Number(0, precision=0, label="Random seed", elem_id="glz-seed",
                              info="The same picture, settings and seed give the same file; another seed gives "
                                   "another random pattern.")
    return c


def _layout(gr, page: Page) -> dict:
    """The page's components by name."""
    encoder_names = [n for n, entry in ENCODERS.items() if entry.weights]
    gr.Markdown(INTRO, elem_id="glz-intro")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            c = _uploads_column(gr, page)
        with gr.Column(scale=1, min_width=300):
            c.update(_choices_column(gr, page))
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300, elem_id="glz-meta"):
            c.update(_meta_column(gr))
        with gr.Column(scale=1, min_width=300):
            c.update(_advanced(gr, encoder_names))
    c["results"] = gr.HTML(elem_id="glz-results")
    c["checked"] = gr.State([])
    return c


#: the controls that change a picture's expected time
TIMING = ("intensity", "steps", "robust", "encoders", "objective", "post_to", "size", "export")


def _wire(gr, page: Page, c: dict) -> None:
    """Connect the components to :class:`Page`'s handlers."""
    controls = [c[k] for k in CONTROLS]

    def begin(request: gr.Request):
        return page.begin(request)

    async def run(request: gr.Request, files, checked, *values):
        async for out in page.run(request, files, checked, *values):
            yield out

    def request_cancel(request: gr.Request):
        return page.request_cancel(request)

    c["files"].change(page.on_files, [c["files"], *controls], [c["checks"], c["checked"], c["run_btn"]], queue=False)
    c["intensity"].change(page.on_preset, c["intensity"],
                          [c["eps"], c["steps"], c["objective"], c["robust"], c["presets_html"]], queue=False)
    for k in TIMING:
        c[k].change(page.on_estimate, [c["checked"], *controls], c["checks"], queue=False)
    c["objective"].change(lambda name: gr.Dropdown(info=objective_info(name)), c["objective"], c["objective"],
                          queue=False)
    for k in ("intensity", "eps", "steps", "robust", "objective", "metadata", "note", "creator", "copyright_"):
        c[k].change(page.on_written, controls, c["written_html"], queue=False)
    outputs = [c["progress"], c["status"], c["results"], c["zip_btn"], c["run_btn"], c["cancel_btn"]]
    c["run_btn"].click(begin, None, [c["run_btn"], c["cancel_btn"], c["progress"], c["status"], c["zip_btn"],
                                     c["results"]], queue=False).then(
        run, [c["files"], c["checked"], *controls], outputs, concurrency_limit=MAX_WAITING, concurrency_id="cloak",
        show_progress="hidden")
    c["cancel_btn"].click(request_cancel, None, c["cancel_btn"], queue=False)


def build_app(
    models_dir: str | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    device: str = "auto",
    precision: str = "auto",
    cache: ProtectorCache | None = None,
    workspace: Workspace | None = None,
    book: SpeedBook | None = None,
):
    """The page as a :class:`gradio.Blocks`: one cloaking job runs at a time, the others wait in line (each tab
    is told its place and the wait); ``book`` keeps this computer's measured speed (default: the user's cache).

    Launch it with ``css=demo.glazeish_css, head=demo.glazeish_head`` (as :func:`launch` does) and call
    ``demo.glazeish_shutdown()`` when the server stops: it stops a running job, waits for it, and removes the
    uploads and outputs.
    """
    gr = _gradio()
    workspace = workspace or Workspace()
    gr.set_static_paths([str(workspace.root)])  # the previews and downloads are served from there, uncopied
    page = Page(gr, models_dir, max_pixels, max_file_mb, device, precision, cache or ProtectorCache(), workspace,
                book or SpeedBook())
    with gr.Blocks(title="glazeish", delete_cache=(1800, KEEP_SECONDS)) as demo:
        _wire(gr, page, _layout(gr, page))
    demo.glazeish_workspace = workspace  # for launch() to clean up, and tests
    demo.glazeish_cache = page.cache
    demo.glazeish_jobs = page.jobs
    demo.glazeish_book = page.book
    demo.glazeish_shutdown = page.shutdown
    demo.glazeish_css = asset("webui.css")
    demo.glazeish_head = f"<script>{asset('webui.js')}</script>"
    return demo
