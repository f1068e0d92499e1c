"""``glazeish.distributed``: Ray workers give the single-process cloaks, exactly once, across crashes.

The Ray tests share one local Ray instance with 2 CPUs (module scope: starting Ray takes ~10 s). They skip
without Ray (``pip install "glazeish[ray]"``) or without the shared weights and paintings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glazeish.config import ProtectConfig
from glazeish.distributed import (
    MANIFEST_NAME, STAGING_DIR, Manifest, OutdirBusyError, check_reachable, plan_workers,
    protect_with_ray, run_tasks,
)
from glazeish.imageio import read_image
from glazeish.job import Cloaker, Job, lock_outdir
from glazeish.metadata import MetadataOptions

from conftest import IMAGES, MODELS, crop_rgb

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 4


# ---------------------------------------------------------------------------------------------------------
# without Ray


def test_import_does_not_import_ray():
    # the local path must never pay for (or need) Ray
    code = "import sys, glazeish.distributed, glazeish.cli; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_plan_workers():
    assert plan_workers(2, 2) == (2, 1)
    assert plan_workers(2, 1) == (1, 2)  # one worker gets both cores as torch threads
    assert plan_workers(16) == (16, 1)
    assert plan_workers(16, cpus_per_worker=4) == (4, 4)
    assert plan_workers(2, 4) == (4, 1)  # asked for more workers than cores: oversubscribe
    with pytest.raises(ValueError):
        plan_workers(4, 0)


def test_workers_whose_cpus_compute_differently_are_told_so(caplog):
    """A cluster of an AVX-512 BF16 head and AVX2 laptops: the driver is warned once, naming the classes; one
    kind of worker says nothing. (A worker that cannot run the driver's precision fails its setup: one line.)"""
    from glazeish.distributed.actors import _warn_if_mixed

    same = [{"host": "a", "cpu": "X · AVX2 · fp32"}, {"host": "b", "cpu": "X · AVX2 · fp32"}]
    with caplog.at_level("WARNING"):
        _warn_if_mixed(same)
        assert caplog.records == []
        _warn_if_mixed(same + [{"host": "c", "cpu": "Y · AVX512 · fp32,bf16"}])
    (rec,) = caplog.records
    assert "compute differently" in rec.getMessage() and "Y · AVX512 · fp32,bf16 (e.g. c)" in rec.getMessage()
    assert "X · AVX2 · fp32 (e.g. a)" in rec.getMessage()


def output_path(src, out) -> Path:
    return Path(out) / Job().output_name(src)


def key(input_sha="ab" * 32, name="a.protected.png", config=None, **job) -> str:
    return Job(config=config or ProtectConfig(steps=2, precision="fp32"), **job).key(input_sha, name)


def test_job_key_covers_what_decides_the_output(tmp_path, monkeypatch):
    from glazeish import device

    monkeypatch.setattr(device, "native_precisions", lambda kind: ("fp32", "bf16"))  # bf16 keyed on any CPU
    base = key()
    assert base == key(config=ProtectConfig(steps=2, precision="fp32"), meta=MetadataOptions())
    assert base != key("cd" * 32)  # other input bytes
    assert base != key(name="b.protected.png")  # same bytes, other output
    assert base != key(config=ProtectConfig(steps=2, precision="fp32", seed=1))
    assert base != key(config=ProtectConfig(steps=2, precision="bf16"))  # the precision decides the bytes
    assert base != key(meta=MetadataOptions(creator="Jane Doe"))
    assert base != key(name="a.protected.jpg", fmt="jpeg", quality=90)
    # quality only matters for lossy formats; the weights' folder and the pixel limit are per-machine, not settings
    assert base == key(quality=80) == key(max_pixels=1000)
    (tmp_path / "m").mkdir()
    assert base == key(config=ProtectConfig(steps=2, precision="fp32", models_dir=str(tmp_path / "m")))
    # "auto" is resolved from the hardware before it is hashed: the same machine gives the same key
    assert key(config=ProtectConfig(steps=2)) == key(config=ProtectConfig(steps=2).resolved())
    # a target pattern counts by its bytes
    t1, t2 = tmp_path / "t1.png", tmp_path / "t2.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(t1)
    Image.new("RGB", (8, 8), (0, 0, 255)).save(t2)
    assert key(config=ProtectConfig(steps=2, target=str(t1))) != key(config=ProtectConfig(steps=2, target=str(t2)))


def test_manifest_survives_a_torn_last_line(tmp_path):
    path = tmp_path / MANIFEST_NAME
    m = Manifest(path)
    m.append({"key": "a", "bytes": 1})
    with open(path, "a") as f:
        f.write('{"key": "b", "by')  # the driver died mid-write
    m = Manifest(path)
    assert set(m.records) == {"a"}
    m.append({"key": "c", "bytes": 3})
    assert set(Manifest(path).records) == {"a", "c"}
    assert path.read_text().count("\n") == 3  # a, the torn line (closed), c


def test_unreachable_cluster_fails_fast():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}", timeout=5)
    with pytest.raises(ConnectionError):
        check_reachable(f"ray://127.0.0.1:{port}", timeout=5)
    check_reachable("auto")  # left to Ray


def test_one_run_per_output_folder(tmp_path):
    # a second driver on the same folder would redo the first one's in-flight images: refused up front
    with lock_outdir(tmp_path):
        with pytest.raises(OutdirBusyError, match="another glazeish run"):
            protect_with_ray([tmp_path / "a.png"], tmp_path, Job(ProtectConfig(steps=1)))


# ---------------------------------------------------------------------------------------------------------
# with Ray (slow-ish: one Ray start per module, ~10 s, then a few seconds per run)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'glazeish[ray]')")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """4 small (64×48) crops of different real paintings."""
    paintings = sorted((IMAGES / "paintings").glob("*.png"))[:N_IMAGES]
    if len(paintings) < N_IMAGES:
        pytest.skip(f"test paintings not found in {IMAGES / 'paintings'} (set GLAZEISH_SHARED)")
    folder = tmp_path_factory.mktemp("in")
    files = []
    for i, p in enumerate(paintings):
        f = folder / f"art{i}.png"
        Image.fromarray(crop_rgb(p, 64, 48, 40 * i, 100)).save(f)
        files.append(f)
    return files


@pytest.fixture(scope="module")
def config():
    if not (MODELS / "taef2_encoder.pth").is_file():
        pytest.skip(f"real TAE weights not found at {MODELS} (set GLAZEISH_MODELS)")
    # "auto" precision: decided from the CPU's flags, so every process chooses the same
    return ProtectConfig(steps=2, device="cpu", seed=3, models_dir=str(MODELS))


@pytest.fixture(scope="module")
def job(config):
    return Job(config=config, purify=("jpeg75",))


@pytest.fixture(scope="module")
def reference(inputs, config):
    """Single-process cloaks of the inputs (the same seed and settings)."""
    c = Cloaker(Job(config))
    return {f.name: c.cloak(read_image(f)) for f in inputs}


def _manifest_keys(out: Path) -> list[str]:
    return [json.loads(line)["key"] for line in (out / MANIFEST_NAME).read_text().splitlines() if line.strip()]


def _check_outputs(inputs, out, reference):
    for f in inputs:
        got = read_image(output_path(f, out)).rgb
        assert np.array_equal(got, reference[f.name]), f"{f.name}: Ray output differs from the single-process run"


def _actor_pids() -> list[int]:
    """Process ids of this test's Ray task actors (descendants of this process)."""
    psutil = pytest.importorskip("psutil")
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "TaskActor" in " ".join(p.cmdline()):
                found.append(p.pid)
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
def test_ray_matches_single_process_despite_a_killed_worker(ray_session, inputs, config, job, reference, tmp_path):
    from typer.testing import CliRunner

    from glazeish.cli import app

    out = tmp_path / "out"
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    messages: list[str] = []
    streamed: list[dict] = []
    killed: list[int] = []
    progress: list[int] = []

    def kill_a_worker(row, summary):  # mid-run: one image done, the others in flight or pending
        streamed.append(row)
        assert summary.startswith(Path(row["output"]).name + ": PSNR")
        if not killed:
            pids = _actor_pids()
            assert pids, "no Ray worker processes found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    rows, errors = protect_with_ray(inputs + [bad], out, job, num_workers=2, on_row=kill_a_worker,
                                    on_message=messages.append, on_progress=progress.append)
    assert killed and any("worker(s) died during the run and were replaced" in m for m in messages)
    # every image exactly once, the broken file reported on one line and the batch carried on
    assert len(rows) == N_IMAGES and streamed == rows and sum(progress) == N_IMAGES + 1
    assert sorted(r["input"] for r in rows) == sorted(str(f) for f in inputs)
    assert len(errors) == 1 and errors[0].startswith(f"glazeish: error: {bad}:") and "\n" not in errors[0]
    _check_outputs(inputs, out, reference)
    keys = _manifest_keys(out)
    assert len(keys) == N_IMAGES == len(set(keys))
    assert not (out / STAGING_DIR).exists()
    # the rows are the local CLI's --json rows
    cli = CliRunner().invoke(app, ["protect", str(inputs[0]), "-o", str(tmp_path / "cli"), "--json", "-q",
                                   "--steps", "2", "--device", "cpu", "--seed", "3", "--models", config.models_dir])
    assert cli.exit_code == 0, cli.output
    cli_row = json.loads(cli.stdout.strip().splitlines()[-1])
    ray_row = next(r for r in rows if r["input"] == str(inputs[0]))
    assert set(ray_row) == set(cli_row)
    same = ("input", "width", "height", "encoder", "objective", "intensity", "eps_levels", "steps", "seed",
            "precision")
    assert {k: ray_row[k] for k in same} == {k: cli_row[k] for k in same}
    assert ray_row["figures"]["linf"] == cli_row["figures"]["linf"]
    # same pixels: the same figures (float sums may differ in the last digits)
    assert ray_row["figures"]["before"]["cloak"]["psnr"] == pytest.approx(cli_row["figures"]["before"]["cloak"]["psnr"],
                                                                          abs=1e-4)
    assert ray_row["output"] == str(output_path(inputs[0], out))

    # everything done: a rerun (even with --overwrite) does nothing and touches nothing
    mtimes = {f.name: output_path(f, out).stat().st_mtime_ns for f in inputs}
    messages.clear()
    rows, errors = protect_with_ray(inputs, out, job, num_workers=2, overwrite=True, on_message=messages.append)
    assert rows == [] and errors == []
    assert any(f"{N_IMAGES} of {N_IMAGES} images were already done" in m for m in messages)
    assert {f.name: output_path(f, out).stat().st_mtime_ns for f in inputs} == mtimes
    assert _manifest_keys(out) == keys

    # other settings are other jobs: the CLI's rule applies (an existing output is kept without --overwrite)
    other = Job(config.replace(seed=4), purify=("jpeg75",))
    messages.clear()
    rows, errors = protect_with_ray(inputs[:1], out, other, num_workers=2, on_message=messages.append)
    assert rows == [] and errors == [] and "exists (use --overwrite" in messages[-1]


@pytest.mark.cpu_level
@pytest.mark.slow
def test_same_bytes_on_1_or_2_threads_under_load_and_on_ray(ray_session, tmp_path):
    """The same input, seed, settings and version give the same bytes with 1 torch thread, with 2 while the
    machine is busy, and on Ray workers. Before the fix, 1 vs 2 threads changed up to 8 levels in 1 % (fp32)
    to 22 % (bf16) of the pixels of such crops; the precision is read off the CPU's flags, never timed."""
    paintings = sorted((IMAGES / "paintings").glob("*.png"))[:2]
    if len(paintings) < 2 or not (MODELS / "taef2_encoder.pth").is_file():
        pytest.skip("needs the shared paintings and weights (set GLAZEISH_SHARED)")
    d = tmp_path / "in"
    d.mkdir()
    files = []
    # big enough for the threads to split the work (at 288x224 the old kernels still agreed; here they did not)
    for i, (p, (w, h)) in enumerate(zip(paintings, [(384, 320), (352, 288)])):
        files.append(d / f"art{i}.png")
        Image.fromarray(crop_rgb(p, w, h, 60 * i, 40)).save(files[-1])
    args = [*map(str, files), "--models", str(MODELS), "--steps", "2", "--seed", "5", "--device", "cpu", "--no-eval",
            "--json", "-q"]

    def cli(out: Path, threads: int) -> list[dict]:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        code = "import sys, torch; print(torch.get_num_threads(), file=sys.stderr); from glazeish.cli import app; app()"
        r = subprocess.run([sys.executable, "-c", code, "protect", *args, "-o", str(out)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
        assert r.stderr.splitlines()[0] == str(threads)  # torch took the thread count it was given
        return [json.loads(line) for line in r.stdout.splitlines()]

    one = cli(tmp_path / "one", 1)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # a busy machine
    try:
        two = cli(tmp_path / "two", 2)
    finally:
        burner.kill()
        burner.wait()
    job = Job(ProtectConfig(steps=2, seed=5, device="cpu", models_dir=str(MODELS)), evaluate=False,
              meta=MetadataOptions(preset="default"))  # what the CLI's defaults write
    rows, errors = protect_with_ray(files, tmp_path / "ray", job, num_workers=2)  # 2 workers x 1 thread
    assert errors == [] and len(rows) == 2
    precision = job.config.resolved().precision  # from the CPU's flags: bf16 with AMX/AVX-512 BF16, else fp32
    assert {r["precision"] for r in one + two + rows} == {precision}
    for f in files:
        name = Job().output_name(f)
        ref = (tmp_path / "one" / name).read_bytes()
        for run in ("two", "ray"):
            got = tmp_path / run / name
            assert np.array_equal(read_image(got).rgb, read_image(tmp_path / "one" / name).rgb), f"{run}: {f.name}"
            assert got.read_bytes() == ref, f"{run}: {f.name}: same pixels, other bytes"


@pytest.mark.slow
def test_ray_refuses_what_the_cli_refuses(ray_session, inputs, job, tmp_path):
    """A PNG with a flipped byte in IDAT (once cloaked black, also on Ray), an animation, a FIFO (which must not
    hang the driver's hashing) and an empty file: one error line each; the good file is cloaked."""
    import io

    d = tmp_path / "bad"
    d.mkdir()
    buf = io.BytesIO()
    Image.open(inputs[0]).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[data.index(b"IDAT") + 40] ^= 0x40
    (d / "flipped.png").write_bytes(data)
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    os.mkfifo(d / "fifo.png")
    (d / "empty.png").write_bytes(b"")
    bad = sorted(d.iterdir())
    out = tmp_path / "out"
    rows, errors = protect_with_ray([inputs[0], *bad], out, job, num_workers=2)
    assert [r["input"] for r in rows] == [str(inputs[0])]
    assert len(errors) == len(bad)
    for f, phrase in [("anim.gif", "holds 2 images"), ("empty.png", "empty file"), ("fifo.png", "not a regular file"),
                      ("flipped.png", "corrupt")]:
        line = [e for e in errors if e.startswith(f"glazeish: error: {d / f}: ")]
        assert len(line) == 1 and phrase in line[0] and "\n" not in line[0], errors
    assert sorted(p.name for p in out.iterdir()) == [".glazeish-manifest.jsonl", output_path(inputs[0], out).name]


DRIVER = """
import sys, time
from pathlib import Path
from glazeish.config import ProtectConfig
from glazeish.distributed import protect_with_ray
from glazeish.job import Job
address, out, models, *files = sys.argv[1:]
job = Job(ProtectConfig(steps=2, device="cpu", seed=3, models_dir=models), purify=("jpeg75",))
def stall(row, summary):  # after the first image the driver stops collecting results, and is then killed
    time.sleep(600)
protect_with_ray(files, out, job, address=address, num_workers=2, on_row=stall)
"""


@pytest.mark.slow
def test_driver_crash_then_rerun_does_exactly_the_missing_items(ray_session, inputs, config, job, reference, tmp_path):
    out = tmp_path / "out"
    address = ray_session.get_runtime_context().gcs_address
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, address, str(out), config.models_dir,
                             *map(str, inputs)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # wait for: one image recorded and written, and the other worker's image staged but never collected
        # (the driver stalls right after its first image, so that state holds once reached)
        def state():
            return (sum(output_path(f, out).exists() for f in inputs), len(list((out / STAGING_DIR).glob("*.json"))))

        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if state() == (1, 1):
                time.sleep(0.5)
                if state() == (1, 1):
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the killed driver never got going"
    finally:
        proc.kill()
        proc.wait()
    done = {f.name for f in inputs if output_path(f, out).exists()}
    staged = list((out / STAGING_DIR).glob("*.json"))
    assert len(done) == 1 and len(_manifest_keys(out)) == 1 and len(staged) == 1
    mtimes = {n: output_path(Path(n), out).stat().st_mtime_ns for n in done}
    staged_input = json.loads(staged[0].read_text())["row"]["input"]

    messages: list[str] = []
    rows, errors = protect_with_ray(inputs, out, job, num_workers=2, on_message=messages.append)
    assert errors == []
    redone = {Path(r["input"]).name for r in rows}
    # exactly the missing ones were computed: not the finished one, not the staged one (adopted as it was)
    assert redone == {f.name for f in inputs} - done - {Path(staged_input).name}
    assert len(redone) == N_IMAGES - 2
    assert any(f"2 of {N_IMAGES} images were already done" in m for m in messages)
    assert {n: output_path(Path(n), out).stat().st_mtime_ns for n in done} == mtimes
    keys = _manifest_keys(out)
    assert len(keys) == N_IMAGES == len(set(keys))
    assert not (out / STAGING_DIR).exists()
    _check_outputs(inputs, out, reference)


# generic pool: no models, so these cover the failure paths cheaply


def _square(state, x):
    if x == "boom":
        raise ValueError("boom is not a number\nsecond line")
    if x == -1:  # a worker that always dies on this item
        os._exit(1)
    if isinstance(x, tuple):  # (value, marker): die the first time only
        value, marker = x
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)
        x = value
    return {"value": state["offset"] + x * x}


@pytest.mark.slow
def test_run_tasks_failures_retries_and_manifest(ray_session, tmp_path):
    from functools import partial

    from ray import cloudpickle

    # the workers cannot import this test module: send _square by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        marker = str(tmp_path / "died-once")
        items = [1, 2, "boom", (3, marker), -1, 2]  # the last repeats the second's key
        manifest = tmp_path / "m.jsonl"
        errors: list[tuple] = []
        report = run_tasks(_square, items, setup_fn=partial(dict, offset=10), key_fn=str, manifest_path=manifest,
                           on_error=lambda it, msg: errors.append((it, msg)), num_workers=2)
        got = {str(it): r["value"] for it, r in report.results}
        assert got == {"1": 11, "2": 14, str((3, marker)): 19}
        assert report.skipped == [2]  # the duplicate
        assert report.worker_deaths == 3  # (3, marker) once, -1 twice
        assert dict(errors)["boom"] == "boom is not a number"
        assert dict(errors)[-1].startswith("worker died 2 times")
        # rerun (without the always-dying item, to keep this quick): only the failed item runs again
        report = run_tasks(_square, [i for i in items if i != -1], setup_fn=partial(dict, offset=10), key_fn=str,
                           manifest_path=manifest, num_workers=2)
        assert report.results == [] and sorted(map(str, report.skipped)) == sorted(["1", "2", str((3, marker)), "2"])
        assert [it for it, _ in report.failed] == ["boom"] and report.workers == 1  # one item: one worker
        assert sorted(json.loads(line)["key"] for line in manifest.read_text().splitlines()) == \
            sorted(["1", "2", str((3, marker))])
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _emulated_only():
    raise ValueError("precision bf16: this processor does not compute it natively")


@pytest.mark.slow
def test_a_worker_that_cannot_set_up_says_which_node_before_anything_runs(ray_session):
    """An AVX2 node of a cluster whose driver chose bf16: the run stops before any item, naming the node."""
    import socket

    from ray import cloudpickle

    from glazeish.distributed import WorkerSetupError

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with pytest.raises(WorkerSetupError) as e:
            run_tasks(_square, [1, 2], setup_fn=_emulated_only, num_workers=2)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert str(e.value) == (f"a worker on {socket.gethostname()}: precision bf16: this processor does not compute "
                            "it natively")
