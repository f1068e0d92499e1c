"""The ``glazeish`` command line: ``protect``, ``check``, ``encoders``, ``ui``, ``bench``, ``version``.

The only module (with :mod:`glazeish.bench.cli`) that knows typer: every command parses its options, builds
the library's objects (:class:`~glazeish.job.Job`, :class:`~glazeish.job.Cloaker`,
:func:`~glazeish.evaluation.assess`) and prints what they return.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, List, Optional

import typer
from typer.core import TyperGroup

try:  # typer >= 0.24 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover  (older typer: click itself)
    from click import exceptions as click_errors

from ._version import __version__
from .errors import first_line
from .helpfacts import help_facts

if TYPE_CHECKING:
    from .job import Job

# The library is imported by each command when it runs, never here: the help needs only words, and the
# registries' words come from help_facts() without torch (a `glazeish --help` costs what typer costs).
_FACTS = help_facts()
#: each preset as the help describes it (the fields of glazeish.config.Preset that it prints)
HELP_PRESETS = {k: SimpleNamespace(**p) for k, p in _FACTS["presets"].items()}
PLATFORM_NAMES: list[str] = _FACTS["platforms"]
DEFAULT_MAX_PIXELS: int = _FACTS["default_max_pixels"]


class LazyGroup(TyperGroup):
    """A group of sub-commands that the help lists by its name and help alone, built (its modules imported) only
    when it is used: the context it makes is the real group's, so parsing, its --help and its commands are the
    real group's own."""

    def __init__(self, name: str, help: str, load: Callable[[], TyperGroup]):
        super().__init__(name=name, help=help)
        self._load = load
        self._real: TyperGroup | None = None

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        if self._real is None:
            self._real = self._load()
        return self._real.make_context(info_name, args, parent=parent, **extra)


#: name -> (help, loader) of the groups mounted as LazyGroup on the top level, in the order they are listed
LAZY_GROUPS: dict[str, tuple[str, Callable[[], TyperGroup]]] = {}


class OneLineErrors(TyperGroup):
    """The top-level group: usage errors (a bad option value, a missing argument) as one ``glazeish: error:``
    line and exit 2, like every other option error, instead of a framed usage message; the groups of
    :data:`LAZY_GROUPS` after the commands."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for name, (help_text, load) in LAZY_GROUPS.items():
            self.add_command(LazyGroup(name, help_text, load))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                                **extra)
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                              **extra)
        except click_errors.ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # plain `glazeish`: the help
                e.show()
                sys.exit(e.exit_code)
            ctx = getattr(e, "ctx", None)
            where = f"{ctx.info_name}: " if ctx is not None and ctx.parent is not None else ""
            say(f"glazeish: error: {where}{first_line(e.format_message())}")
            sys.exit(e.exit_code)
        except typer.Abort:
            say("glazeish: aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    help="Cloak artwork against diffusion-model style mimicry, and measure how well cloaks hold up.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PRESET_HELP = "; ".join(f"{k}: eps {p.eps_levels:g}/255{' on texture' if p.budget == 'masked' else ''}, "
                        f"{p.steps} steps, {p.summary}" for k, p in HELP_PRESETS.items())
MODELS_HELP = "Folder with the encoder weights (default: $GLAZEISH_MODELS, then the download cache)."
FIGURE_TILES_HELP = ("Measure what the model sees on at most this many 512-px tiles, spread over the image (0: all of "
                     "it). Images up to 4 tiles (about 1 megapixel) are always measured whole; a 2048x2048 image's "
                     "figures take ~3.5x less time, and land within ~1.4 dB of all tiles' (median 0.6; "
                     "benchmarks/figures_sampled/). Visibility always covers every pixel.")
PLATFORM_HELP = ("Where the cloak will be posted, comma-separated: " + ", ".join(PLATFORM_NAMES) + ". Each platform "
                 "scales uploads down and re-encodes them; the image is scaled down (Lanczos) to the largest size "
                 "they serve, cloaked and written at that size (a 12 MP photo for a 2048-px platform costs what a "
                 "2048-px image costs), optimised through their chains, and the figures include what survives each "
                 "(platform:NAME). Sizes, qualities and sources: docs/platforms.md.")
ENCODER_HELP = ("Encoder(s) to attack, comma-separated for an ensemble, name*w to weight one. Registered: "
                + _FACTS["encoders"])


#: what a file name may hold that must not reach the terminal as is: control characters (a newline would start
#: a line of its own), C1 controls, line separators, and the undecodable bytes of a name (surrogate escapes)
_UNPRINTABLE = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_UNPRINTABLE.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_UNPRINTABLE.update({0xDC00 + b: f"\\x{b:02x}" for b in range(0x80, 0x100)})


def say(msg: str) -> None:
    """One line on stderr, whatever the file names in it hold."""
    typer.echo(msg.translate(_UNPRINTABLE), err=True)


def fail(msg: str, code: int = 2) -> None:
    say(f"glazeish: error: {msg}")
    raise typer.Exit(code)


def _robust(flag: bool | None, transforms: str | None) -> str | None:
    """ProtectConfig.robust from --robust/--no-robust and --transforms (None: the preset's)."""
    from .transforms import DEFAULT_ROBUST

    if transforms is not None:
        if flag is False:
            fail("--transforms and --no-robust contradict each other")
        return transforms
    if flag is None:
        return None
    return DEFAULT_ROBUST if flag else ""


def _check_writable(outdir: Path) -> None:
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as e:
        fail(f"{outdir}: output folder is not writable ({e.strerror or e})")


def _progress(total: int, desc: str, disable: bool, leave: bool = True):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step" if desc != "images" else "img", leave=leave,
                disable=disable, file=sys.stderr, dynamic_ncols=True)


def _purify_list(purify: str) -> tuple[str, ...]:
    from .purify import expand

    return tuple(expand(purify))


@contextlib.contextmanager
def _signals_end_the_run():
    """SIGTERM and SIGHUP end a run as Ctrl-C does, with an exception (exit status 128 + the signal), so that
    the file being written is removed rather than left behind as a hidden temp file."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def stop(signum, frame):
        signal.signal(signum, signal.SIG_IGN)  # a second one must not interrupt the clean-up
        raise SystemExit(128 + signum)

    sigs = [sig for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if sig is not None]
    saved = {sig: signal.signal(sig, stop) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _protect_on_ray(files: list, out: Path, job: Job, overwrite: bool, address: str | None,
                    workers: int | None, as_json: bool, quiet: bool) -> bool:
    """``protect --ray``: the same outputs, rows and messages as the local loop, from Ray workers. Returns
    whether any file failed."""
    from .job import OutdirBusyError

    try:
        import ray  # noqa: F401  (only to give a clear message when the extra is missing)

        from .distributed import WorkerSetupError, protect_with_ray
    except ImportError:
        fail("--ray needs Ray: pip install 'glazeish[ray]'")
    show = not quiet and sys.stderr.isatty()
    with _progress(len(files), "images", disable=not show or len(files) < 2) as batch:
        def on_row(row: dict, summary: str | None) -> None:
            if as_json:
                typer.echo(json.dumps(row))
            elif not quiet and summary:
                say(summary)

        try:
            _, errors = protect_with_ray(files, out, job, overwrite=overwrite, address=address, num_workers=workers,
                                         on_row=on_row, on_message=say,
                                         on_progress=batch.update)
        except (WorkerSetupError, OutdirBusyError, ValueError, ConnectionError) as e:
            fail(str(e))
    return bool(errors)


FIGURES_HELP = ("What the figures measure: quick (the cloak next to same-PSNR noise, before and after each "
                "--purify, with the FLIP of what a model sees: everything the verdict words read) or full (adds "
                "same-L-inf uniform noise and the FLIP of the cloak's pixels: 8 model passes instead of 6, ~1.36x "
                "slower). Quick said the same words as full on all 22 shared images, with the same numbers for "
                "everything it reports (benchmarks/figures_cost).")


class ProtectOptions:
    """``glazeish protect``'s arguments and options: their help is what ``glazeish protect --help`` prints."""

    inputs = typer.Argument(..., help="Image files and/or folders to cloak.", show_default=False)
    out = typer.Option(Path("protected"), "--out", "-o", help="Output folder; files are written as "
                       "<stem>.protected.png (two inputs that would share a name: the later one gets "
                       "<stem>-2.protected.png, said on stderr). One run at a time per folder.")
    recursive = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders; their structure is "
                             "kept under --out (x/art.png -> OUT/x/art.protected.png).")
    intensity = typer.Option("default", "--intensity", "-i", help=f"Preset. {PRESET_HELP}.")
    eps = typer.Option(None, help="The most any colour value may change (L-inf), in 1/255 units, "
                       "0-64 (overrides the preset; default's masked budget reaches it on busy "
                       "texture only).")
    steps = typer.Option(None, help="Optimisation steps, 0-1000 (overrides the preset).")
    start = typer.Option(None, help="Where the optimisation starts: random (uniform noise in the "
                         "budget, as PGD does), zero, learned (a pattern trained offline for the "
                         "encoder and objective and shipped with glazeish, so that fewer steps reach "
                         "the protection: the fast preset's), network (an image-conditioned generator whose "
                         "weights train.py --network makes into the model folder; --steps 0 uses it alone), "
                         "a pattern PNG, or a generator's .safetensors that you trained (used as it is). "
                         "Default: the preset's.")
    rms = typer.Option(None, help="Energy bound in 1/255 units: the change's RMS stays at most this "
                       "(a PSNR bound; 2.95 is about 38.7 dB). Default: the preset's ("
                       + ", ".join(f"{k}: {p.rms_levels or 'none'}" for k, p in HELP_PRESETS.items())
                       + ").")
    encoder = typer.Option("taef2", help=ENCODER_HELP)
    objective = typer.Option(None, help="What the cloak optimises (default: the preset's). "
                             + _FACTS["objectives"])
    target = typer.Option(None, help="Target/decoy pattern image (default: built-in pattern).")
    seed = typer.Option(0, help="Random seed; the same seed gives the same cloak on one kind of machine.")
    device = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ...")
    precision = typer.Option("auto", help="auto (bf16 where the processor computes it natively, else fp32; "
                             "never decided by a timing), fp32, bf16 or fp16; bf16 and fp16 only where the "
                             "processor computes them natively (an AVX2 laptop: fp32 only), refused otherwise.")
    robust = typer.Option(None, "--robust/--no-robust", help="Optimise through simulated "
                          f"re-posting (expectation over transformation): --robust samples "
                          f"{_FACTS['default_robust']}; --no-robust none. Default: the preset's "
                          f"({', '.join(f'{k}: {p.robust or chr(34) * 2}' for k, p in HELP_PRESETS.items())}).")
    transforms = typer.Option(None, help="Exactly these transforms, one sampled per step "
                              f"(implies --robust). {_FACTS['transforms']}")
    eot_reference = typer.Option("clean", "--eot-reference", help="What a transformed step pushes the "
                                 "mimic's view away from: clean (the untouched image's view) or transformed "
                                 "(the untouched image's view under the same transform, the way a purified "
                                 "cloak is judged; one more forward pass per transformed step).")
    fill_smooth = typer.Option(0, "--fill-smooth", min=0, help="On flat fills (cel colour, paper), blur "
                               "every step over this many px (odd; 0 = off): the change there becomes smooth "
                               "shading instead of grain. 9 on line art: grain on the paper 1.2 -> 0.3/255 "
                               "with the same effect; on flat colour it costs effect (benchmarks/adaptive).")
    fill_chroma = typer.Option(False, "--fill-chroma", help="On flat fills (cel colour, paper), change colour "
                               "only, never lightness: the grain there is colour grain, which the eye resolves "
                               "far more coarsely. Line art keeps its protection with a quarter of the visible "
                               "grain; flat colour loses about a third of it (benchmarks/adaptive).")
    budget = typer.Option(None, help="flat (the same eps everywhere), perceptual (less change on "
                          "flat colour and smooth gradients, up to eps on texture and edges) or "
                          "masked (an energy budget moved from flat colour to texture, up to eps "
                          "there). Default: the preset's ("
                          + ", ".join(f"{k}: {p.budget}" for k, p in HELP_PRESETS.items()) + ").")
    platform = typer.Option(None, "--platform", metavar="NAME[,NAME]", help=PLATFORM_HELP)
    max_side = typer.Option(None, "--max-side", metavar="PX", help="Scale each image down (Lanczos) "
                            "so that its longest side is at most PX before cloaking, and write it at "
                            "that size: the size you will post (cloaking time grows with the pixels).")
    report = typer.Option(False, "--report", help="Also write OUT/<stem>.protected.report.html: original, "
                          "cloak, amplified change, what a model learns from each, figures and verdicts.")
    figures_mode = typer.Option("quick", "--figures", help=FIGURES_HELP)
    purify = typer.Option("jpeg75", help="Survival to report in the figures: purifications, comma-separated "
                          "(jpeg:Q, resize:F, blur:S, webp, ...; jpeg75 is jpeg:75; 'none' for none; all of them: "
                          "glazeish check --help).")
    models = typer.Option(None, "--models", help=MODELS_HELP)
    fmt = typer.Option("png", "--format", help="png (lossless, recommended), jpeg or webp.")
    quality = typer.Option(95, help="JPEG/WebP quality, 1-100.")
    overwrite = typer.Option(False, help="Replace existing outputs (inputs are never overwritten).")
    evaluate = typer.Option(True, "--eval/--no-eval", help="Measure each cloak against noise of the same "
                            "PSNR and of the same L-inf (--no-eval skips the figures, also in --json).")
    figure_tiles = typer.Option(4, "--figure-tiles", min=0, help=FIGURE_TILES_HELP)
    as_json = typer.Option(False, "--json", help="Print one JSON object per image on stdout.")
    quiet = typer.Option(False, "--quiet", "-q", help="No progress bars or summaries.")
    max_pixels = typer.Option(DEFAULT_MAX_PIXELS, help="Refuse images with more pixels than this.")
    metadata = typer.Option(True, "--metadata/--no-metadata", help="Write the 'no AI training' XMP reservation.")
    data_mining = typer.Option("aiml", help="PLUS DataMining value: aiml, genai, all, except-search, ...")
    creator = typer.Option(None, help="Artist name for the metadata.")
    copyright = typer.Option(None, "--copyright", help="Copyright notice for the metadata.")
    url = typer.Option(None, help="Web statement of rights (URL) for the metadata.")
    keep_gps = typer.Option(False, help="Keep GPS location from the input's EXIF (dropped by default).")
    glazeish_note = typer.Option(True, help="Say in the metadata that the file was cloaked with glazeish.")
    ray = typer.Option(False, "--ray", help="Run on Ray (pip install 'glazeish\\[ray]'): one task per image, "
                       "models loaded once per worker, resumable. Starts Ray on this machine's cores unless "
                       "--ray-address is given.")
    ray_address = typer.Option(None, "--ray-address", metavar="ADDRESS",
                               help="Ray cluster to run on (implies --ray): HEAD:6379, or auto "
                               "on a cluster node. Inputs and --out must be on a filesystem every "
                               "node sees at the same path.")
    workers = typer.Option(None, "--workers", min=1, help="Ray workers (implies --ray). Default: "
                           "one single-threaded worker per CPU of the cluster; with N, each of the N "
                           "gets CPUs/N torch threads (fewer, bigger workers for big images).")


@app.command()
def protect(
    inputs: List[Path] = ProtectOptions.inputs,
    out: Path = ProtectOptions.out,
    recursive: bool = ProtectOptions.recursive,
    intensity: str = ProtectOptions.intensity,
    eps: Optional[float] = ProtectOptions.eps,
    steps: Optional[int] = ProtectOptions.steps,
    start: Optional[str] = ProtectOptions.start,
    rms: Optional[float] = ProtectOptions.rms,
    encoder: str = ProtectOptions.encoder,
    objective: Optional[str] = ProtectOptions.objective,
    target: Optional[Path] = ProtectOptions.target,
    seed: int = ProtectOptions.seed,
    device: str = ProtectOptions.device,
    precision: str = ProtectOptions.precision,
    robust: Optional[bool] = ProtectOptions.robust,
    transforms: Optional[str] = ProtectOptions.transforms,
    eot_reference: str = ProtectOptions.eot_reference,
    fill_smooth: int = ProtectOptions.fill_smooth,
    fill_chroma: bool = ProtectOptions.fill_chroma,
    budget: Optional[str] = ProtectOptions.budget,
    platform: Optional[str] = ProtectOptions.platform,
    max_side: Optional[int] = ProtectOptions.max_side,
    report: bool = ProtectOptions.report,
    purify: str = ProtectOptions.purify,
    figures_mode: str = ProtectOptions.figures_mode,
    models: Optional[Path] = ProtectOptions.models,
    fmt: str = ProtectOptions.fmt,
    quality: int = ProtectOptions.quality,
    overwrite: bool = ProtectOptions.overwrite,
    evaluate: bool = ProtectOptions.evaluate,
    figure_tiles: int = ProtectOptions.figure_tiles,
    as_json: bool = ProtectOptions.as_json,
    quiet: bool = ProtectOptions.quiet,
    max_pixels: int = ProtectOptions.max_pixels,
    metadata: bool = ProtectOptions.metadata,
    data_mining: str = ProtectOptions.data_mining,
    creator: Optional[str] = ProtectOptions.creator,
    copyright: Optional[str] = ProtectOptions.copyright,
    url: Optional[str] = ProtectOptions.url,
    keep_gps: bool = ProtectOptions.keep_gps,
    glazeish_note: bool = ProtectOptions.glazeish_note,
    ray: bool = ProtectOptions.ray,
    ray_address: Optional[str] = ProtectOptions.ray_address,
    workers: Optional[int] = ProtectOptions.workers,
):
    """Cloak images so that a diffusion model's encoder sees something else.

    Writes OUT/<stem>.protected.png for every input, never touching the input. A file that cannot be read
    (or fully decoded), or holds several frames, is reported on stderr in one line and skipped, and the batch
    goes on; the exit code is 1 if any file or folder failed, 2 for a bad option (before any work).
    """
    from .config import ProtectConfig
    from .job import Job
    from .metadata import MetadataOptions, resolve_data_mining
    from .objectives import OBJECTIVES
    from .platforms import for_platforms, parse_platforms
    from .weights import WeightsError

    try:
        config = ProtectConfig(intensity=intensity, eps_levels=eps, steps=steps, objective=objective, encoder=encoder,
                               target=str(target) if target else None, seed=seed, device=device,
                               precision=precision, models_dir=str(models) if models else None,
                               robust=_robust(robust, transforms), budget=budget, rms_levels=rms, start=start,
                               eot_reference=eot_reference, fill_smooth=fill_smooth, fill_chroma=fill_chroma)
        OBJECTIVES[config.objective]
        platforms = parse_platforms(platform)
        if platforms and (transforms or robust is not None):
            raise ValueError("--platform optimises through each platform's own chain; drop --transforms/--robust")
        config = for_platforms(config, platforms)
        meta = MetadataOptions(enabled=metadata, data_mining=resolve_data_mining(data_mining), creator=creator,
                               copyright=copyright, url=url, keep_gps=keep_gps, preset=intensity,
                               note=glazeish_note)
        job = Job(config=config.resolved(), meta=meta, fmt=fmt, quality=quality, evaluate=evaluate or report,
                  purify=_purify_list(purify), figure_tiles=figure_tiles, report=report, max_pixels=max_pixels,
                  platforms=tuple(p.name for p in platforms), max_side=max_side, figures=figures_mode)
    except (ValueError, WeightsError) as e:
        fail(first_line(e))
    if fmt != "png":
        say(f"glazeish: warning: {fmt} is lossy; re-compression weakens the cloak (png keeps it intact)")
    _cloak_all(inputs, recursive, out, job, overwrite=overwrite, as_json=as_json, quiet=quiet,
               ray_address=ray_address, workers=workers, ray=ray or bool(ray_address or workers))


def _cloak_all(inputs: list[Path], recursive: bool, out: Path, job: Job, *, overwrite: bool, as_json: bool,
               quiet: bool, ray: bool, ray_address: str | None, workers: int | None) -> None:
    """``protect`` once its options are checked: list the inputs, check the output folder, cloak here or on Ray;
    exits 1 when a file or folder failed (the rest is done)."""
    from .imageio import list_images

    listing = list_images([str(p) for p in inputs], recursive, skip=out)
    for problem in listing.problems:  # an unreadable folder: said, and the run fails, but the rest is done
        say(f"glazeish: error: {problem}")
    if not listing.files:
        fail("no images found in the given inputs")
    _check_writable(out)
    with _signals_end_the_run():
        if ray:
            failed = _protect_on_ray(listing.files, out, job, overwrite, ray_address, workers, as_json, quiet)
        else:
            failed = _protect_here(listing.files, out, job, overwrite, as_json, quiet)
    if failed or listing.problems:
        raise typer.Exit(1)


def _protect_here(files: list, out: Path, job: Job, overwrite: bool, as_json: bool, quiet: bool) -> bool:
    """The local loop of ``protect``: one output folder locked for the run, one line per file that fails (the
    batch goes on). Returns whether any file failed."""
    from .evaluation import jsonable, one_line
    from .imageio import ImageError
    from .job import Cloaker, OutdirBusyError, lock_outdir, plan_outputs
    from .weights import WeightsError

    try:
        lock = contextlib.ExitStack()
        lock.enter_context(lock_outdir(out))  # a second run into this folder is refused, not let clobber
    except OutdirBusyError as e:
        fail(str(e))
    with lock:
        try:
            cloaker = Cloaker(job)
        except (WeightsError, ImageError, ValueError, OSError) as e:
            fail(first_line(e))
        if job.report and cloaker.evaluator.mimic is None:
            fail("--report needs an encoder with a decoder (e.g. taef2) for the mimic's view")
        show = not quiet and sys.stderr.isatty()
        failures = 0
        plan = plan_outputs(files, out, job)
        with _progress(len(plan), "images", disable=not show or len(plan) < 2) as batch:
            for item in plan:
                batch.update(1)
                if item.error:
                    failures += 1
                    say(f"glazeish: error: {item.error}")
                    continue
                if os.path.lexists(item.dest) and not overwrite:
                    say(f"glazeish: skipped {item.src}: {item.dest} exists (use --overwrite to replace it)")
                    continue
                try:
                    name = item.src.name.translate(_UNPRINTABLE)
                    with _progress(job.config.steps, name, disable=not show, leave=False) as bar:
                        def step(s, bar=bar) -> None:  # a protect.Step: steps of every tile of a large image
                            bar.total, bar.n = s.total, s.done
                            bar.refresh()

                        done = cloaker.cloak_file(item.src, item.dest, overwrite=overwrite, callback=step)
                except ImageError as e:  # one line already (but for what a file name may hold: say() escapes it)
                    failures += 1
                    say(f"glazeish: error: {e}")
                    continue
                except (KeyboardInterrupt, SystemExit):
                    say(f"glazeish: stopped while cloaking {item.src}; it was not written (run again to finish the "
                        "rest)")
                    raise
                if item.note:  # said once written: a file that fails gets its one error line only
                    say(f"glazeish: note: {item.note}")
                if done.resized_from and not quiet:
                    say(f"glazeish: note: {item.src}: cloaked and written at {done.width}x{done.height}, the size to "
                        f"post (the input is {done.resized_from[0]}x{done.resized_from[1]})")
                for w in done.warnings:
                    say(f"glazeish: warning: {item.src}: {w}")
                if as_json:
                    typer.echo(json.dumps(jsonable(done.row(job.config, cloaker.protector.precision))))
                elif not quiet and done.figures is not None:
                    say(one_line(item.dest.name, done.figures))
    return failures > 0


def _kind(mode: int) -> str | None:
    """What a file that is not a regular one is, in words (None for a regular file)."""
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")]
    return None if stat.S_ISREG(mode) else next((w for test, w in kinds if test(mode)), "not a regular file")


def _report_dest(report: str, original: Path, cloaked: Path) -> Path:
    """Where ``check --report`` writes: into REPORT as <cloaked stem>.report.html when REPORT is a folder (or
    ends in a slash: a folder to create), else REPORT itself. Checked before any work: the report is renamed
    into place, which would replace a FIFO, a device (as root, /dev/null) or a link with a file, so anything
    that exists there must be a regular file, and never one of the images checked."""
    given = Path(report)  # a trailing slash is gone from the Path: asked of the string
    if given.is_dir() or report.endswith(("/", os.sep)):
        if os.path.lexists(given) and not given.is_dir():
            fail(f"--report {report}: is not a folder")
        dest = given / f"{cloaked.stem}.report.html"
    else:
        dest = given
    with contextlib.suppress(OSError):
        kind = _kind(os.lstat(dest).st_mode)
        if kind is not None:
            fail(f"--report {report}: {dest} is {kind}; reports are written only to regular files or new paths")
    if dest.resolve() in {original.resolve(), cloaked.resolve()}:
        fail(f"--report {report}: that is one of the images being checked; choose another file")
    return dest


def _format_and_notice(path: Path) -> tuple[str, bool]:
    """The file's format (``png``, ``jpeg``, ...) and whether it carries a "no AI training" notice: what decides
    if a platform keeps the notice."""
    from PIL import Image

    from .metadata import has_mining_notice

    with Image.open(path) as im:
        return (im.format or "").lower(), has_mining_notice(im)


class CheckOptions:
    """``glazeish check``'s arguments and options: their help is what ``glazeish check --help`` prints."""

    original = typer.Argument(..., help="The image before cloaking.", show_default=False)
    cloaked = typer.Argument(..., help="The cloaked image (by glazeish or any other tool).", show_default=False)
    encoder = typer.Option("taef2", help="Encoder(s) to measure with; the first with a decoder (taef2) "
                           "gives the mimic's view. Comma-separated for several.")
    models = typer.Option(None, "--models", help=MODELS_HELP)
    eps = typer.Option(None, help="Budget of the same-L-inf noise baseline in 1/255 units "
                       "(default: the cloak's own largest change); asks for the full figures, which have it.")
    figures_mode = typer.Option(None, "--figures", show_default=False,
                                help=FIGURES_HELP + " Default: quick, or full when --eps is given.")
    purify = typer.Option("jpeg75", help="Purifications to test survival against, comma-separated, "
                          "with their setting after a colon (jpeg:60,resize:0.5,impress++,platform:instagram; "
                          "'platforms' for every platform that re-encodes; 'none' for none). Registered: "
                          + _FACTS["purifications"])
    purify_pipeline = typer.Option(None, "--purify-pipeline", help="diffusers img2img pipeline "
                                   "(repo id or folder) for --purify diffpure / gridpure.")
    upscaler = typer.Option(None, help="diffusers upscaler pipeline (repo id or folder) for --purify "
                            "upscale (noisy upscaling).")
    seed = typer.Option(0, help="Seed of the noise baselines.")
    platform = typer.Option(None, "--platform", metavar="NAME[,NAME]", help="Also judge what "
                            "survives posting there (" + ", ".join(PLATFORM_NAMES) + "): the platform's "
                            "scaling and re-encoding applied to original, cloak and baselines alike, "
                            "measured at the size it serves; and whether the file's 'no AI "
                            "training' notice is kept. Sources: docs/platforms.md.")
    device = typer.Option("auto", help="auto, cpu, cuda, ...")
    as_json = typer.Option(False, "--json", help="Print the figures and verdicts as one JSON object.")
    report = typer.Option(None, "--report", metavar="PATH", help="Also write the HTML report to "
                          "this file (a new or regular one), or into this folder as <cloaked "
                          "stem>.report.html (a trailing / makes a new folder).")
    max_pixels = typer.Option(DEFAULT_MAX_PIXELS, help="Refuse images with more pixels than this.")
    figure_tiles = typer.Option(4, "--figure-tiles", min=0, help=FIGURE_TILES_HELP)


@app.command()
def check(
    original: Path = CheckOptions.original,
    cloaked: Path = CheckOptions.cloaked,
    encoder: str = CheckOptions.encoder,
    models: Optional[Path] = CheckOptions.models,
    eps: Optional[float] = CheckOptions.eps,
    purify: str = CheckOptions.purify,
    figures_mode: str = CheckOptions.figures_mode,
    purify_pipeline: Optional[str] = CheckOptions.purify_pipeline,
    upscaler: Optional[str] = CheckOptions.upscaler,
    seed: int = CheckOptions.seed,
    platform: Optional[str] = CheckOptions.platform,
    device: str = CheckOptions.device,
    as_json: bool = CheckOptions.as_json,
    report: Optional[str] = CheckOptions.report,
    max_pixels: int = CheckOptions.max_pixels,
    figure_tiles: int = CheckOptions.figure_tiles,
):
    """Did the cloak work? Compare ORIGINAL and CLOAKED with noise of the same PSNR (and, with --figures full,
    of the same L-inf).

    Prints plain-language verdicts on visibility, protection (what a model trained on the image would
    reproduce, and how far that is from the original's) and survival of a JPEG re-save; exits 2 with one line
    on stderr if an input is unusable. Never writes over ORIGINAL or CLOAKED.
    """
    from .device import resolve_device
    from .encoders import load_encoders
    from .evaluation import Evaluator, assess, build_purifications, judge, jsonable, load_pair
    from .imageio import ImageError
    from .platforms import PLATFORMS, metadata_line, parse_platforms, purification_specs
    from .report import write_report
    from .weights import WeightsError

    if eps is not None and figures_mode == "quick":
        fail("--eps sets the same-L-inf baseline, which --figures quick leaves out: drop one of them")
    figures_mode = figures_mode or ("full" if eps is not None else "quick")
    dest = None if report is None else _report_dest(report, original, cloaked)
    try:
        platforms = parse_platforms(platform)
        orig_rgb, cloak_rgb, alpha, warns = load_pair(original, cloaked, max_pixels)
        fmt, notice = _format_and_notice(cloaked) if platforms else ("", False)
        evaluator = Evaluator(load_encoders(encoder, models, resolve_device(device)), sample=figure_tiles)
        purifiers = build_purifications(_purify_list(purify) + purification_specs(platforms), model=evaluator.mimic,
                                        seed=seed, models_dir=models, pipeline=purify_pipeline, upscaler=upscaler)
        figures = assess(orig_rgb, cloak_rgb, evaluator, alpha=alpha, eps_levels=eps, seed=seed,
                         purifications=purifiers, figures=figures_mode)
    except (ImageError, WeightsError, ValueError, OSError, RuntimeError, MemoryError) as e:
        fail(first_line(e))  # RuntimeError: e.g. out of memory on a huge image; every error is one line
    figures.warnings[:0] = warns
    verdict = judge(figures)
    meta_lines = {p.name: metadata_line(p, fmt, notice) for p in platforms}
    if dest is not None:
        try:
            write_report(dest, orig_rgb, cloak_rgb, figures, evaluator, title=f"glazeish check: {cloaked.name}",
                         alpha=alpha)
        except (ImageError, ValueError) as e:
            fail(first_line(e))
    if as_json:
        row = {"original": str(original), "cloaked": str(cloaked), **figures.to_dict(), "verdicts": verdict.sentences,
               "verdict": verdict.to_dict()}
        if platforms:
            row["platform_metadata"] = {n: {"notice": notice, "kept": notice and PLATFORMS[n].keeps_metadata(fmt),
                                            "sentence": line} for n, line in meta_lines.items()}
        if dest is not None:
            row["report"] = str(dest)
        typer.echo(json.dumps(jsonable(row), allow_nan=False))
        return
    typer.echo(f"{cloaked} vs {original}:")
    for v in [*verdict.sentences, *meta_lines.values()]:
        typer.echo(f"  {v}")
    if dest is not None:
        typer.echo(f"  Report: {dest}")


@app.command()
def encoders(
    models: Optional[Path] = typer.Option(None, "--models", help=MODELS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """List the registered encoders and whether their weights are present."""
    from .encoders import ENCODERS, status
    from .weights import WeightsError

    try:
        rows = status(models)
    except WeightsError as e:
        fail(first_line(e))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "ready" if r["present"] else ("CORRUPT" if r["problem"] else "missing (downloaded on first use)")
        typer.echo(f"{r['name']:<10} {state:<34} {r['description']}")
        if r["problem"]:
            typer.echo(f"{'':<10} {r['problem']}")
    for name, entry in ENCODERS.items():
        if not entry.weights:
            typer.echo(f"{name + ':<arg>':<10} {entry.description}")


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this computer only)."),
    port: int = typer.Option(7860, help="Port."),
    share: bool = typer.Option(False, help="Also make a public gradio.live link (needs the internet)."),
    models: Optional[Path] = typer.Option(None, "--models", help=MODELS_HELP),
    max_pixels: int = typer.Option(16_000_000, help="Refuse larger images."),
    max_file_mb: float = typer.Option(50, help="Refuse larger uploads (MB)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ..."),
    precision: str = typer.Option("auto", help="auto, fp32, bf16 or fp16."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
):
    """Start the local web page: drop images, pick a strength, download cloaked versions (needs glazeish[ui])."""
    from .ui import serve

    serve(host, port, share, str(models) if models else None, max_pixels=max_pixels,
          max_file_mb=max_file_mb, device=device, precision=precision, open_browser=open_browser)


@app.command()
def version():
    """Print the version."""
    typer.echo(__version__)


BENCH_HELP = "Benchmarks: protections x purifications (run, report), mimicry training (mimic)."


def _bench_group() -> TyperGroup:
    """``glazeish bench`` as mounting its app with ``app.add_typer(bench_app, name="bench", help=BENCH_HELP)``
    builds it. Importing it registers the benchmark's protections, which needs torch: done when it is used."""
    from .bench.cli import app as bench_app

    outer = typer.Typer(add_completion=False)
    outer.add_typer(bench_app, name="bench", help=BENCH_HELP)
    return typer.main.get_command(outer).commands["bench"]


LAZY_GROUPS["bench"] = (BENCH_HELP, _bench_group)


def main() -> None:  # pragma: no cover
    app()
