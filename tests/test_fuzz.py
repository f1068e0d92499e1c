"""Fuzzing the read-cloak-write path with mutated PNG and JPEG bytes: whatever the bytes, a file that Pillow
cannot fully decode never gets an output, nothing but a one-line ImageError comes out, no input is changed
and no temp file is left.

Bounded: a fixed number of examples, derandomized (the same ones on every run, so CI is reproducible;
``GLAZEISH_FUZZ_EXAMPLES=2000`` explores further). The library path (:meth:`Cloaker.cloak_file`, what the CLI,
the Ray workers and the web UI call per file) takes the Hypothesis examples, models loaded once; a seeded
batch of mutants then goes through the command line itself.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import struct
import warnings
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from glazeish.cli import app
from glazeish.imageio import ImageError

EXAMPLES = int(os.environ.get("GLAZEISH_FUZZ_EXAMPLES", "120"))


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _bases() -> dict[str, bytes]:
    rgb = (np.random.default_rng(7).random((20, 28, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x013B] = "Artist"
    exif[0x0112] = 6
    rgba = Image.fromarray(rgb).convert("RGBA")
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    return {
        "rgb.png": _encode(Image.fromarray(rgb), "PNG", exif=exif.tobytes()),
        "palette.png": _encode(Image.fromarray(rgb).convert("P", colors=8), "PNG", transparency=0),
        "rgba.png": _encode(rgba, "PNG"),
        "photo.jpg": _encode(Image.fromarray(rgb), "JPEG", quality=85, exif=exif.tobytes()),
        "progressive.jpg": _encode(Image.fromarray(rgb), "JPEG", quality=70, progressive=True),
    }


BASES = _bases()
OPS = ("flip", "set", "cut", "insert", "delete", "repeat", "png-chunk")


def _png_chunk_spans(data: bytes) -> list[tuple[int, int]]:
    out, i = [], 8
    while i + 8 <= len(data):
        n = struct.unpack(">I", data[i : i + 4])[0]
        if i + 12 + n > len(data):
            break
        out.append((i, n))
        i += 12 + n
    return out


def mutate(data: bytes, name: str, draw_int, draw_bytes, steps: int) -> bytes:
    """Apply ``steps`` random edits; ``draw_int(lo, hi)`` and ``draw_bytes(n)`` supply the randomness (from
    Hypothesis or a seeded generator). ``png-chunk`` flips a byte inside a chunk and redoes its checksum, to
    get past the checksums into the decoders."""
    d = bytearray(data)
    for _ in range(steps):
        if not d:
            break
        op = OPS[draw_int(0, len(OPS) - 1)]
        i = draw_int(0, len(d) - 1)
        if op == "flip":
            d[i] ^= 1 << draw_int(0, 7)
        elif op == "set":
            d[i] = draw_int(0, 255)
        elif op == "cut":
            del d[max(1, i):]
        elif op == "insert":
            d[i:i] = draw_bytes(draw_int(1, 16))
        elif op == "delete":
            del d[i : i + draw_int(1, 16)]
        elif op == "repeat":
            d[i:i] = d[i : i + draw_int(1, 32)]
        elif op == "png-chunk" and name.endswith(".png"):
            spans = [s for s in _png_chunk_spans(bytes(d)) if s[1]]
            if spans:
                off, n = spans[draw_int(0, len(spans) - 1)]
                d[off + 8 + draw_int(0, n - 1)] ^= 1 << draw_int(0, 7)
                d[off + 8 + n : off + 12 + n] = struct.pack(">I", zlib.crc32(bytes(d[off + 4 : off + 8 + n])) & 0xFFFFFFFF)
    return bytes(d)


def pillow_decodes(path: Path) -> bool:
    """The oracle: Pillow opens the file and decodes every pixel of it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im.load()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def cloaker(models_dir):
    import torch

    from glazeish.config import ProtectConfig
    from glazeish.job import Cloaker, Job

    saved = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny images: a busy machine's second thread only adds waiting
    yield Cloaker(Job(ProtectConfig(steps=1, device="cpu", models_dir=str(models_dir)), evaluate=False))
    torch.set_num_threads(saved)


@st.composite
def mutants(draw):
    name = draw(st.sampled_from(sorted(BASES)))
    data = mutate(BASES[name], name, lambda lo, hi: draw(st.integers(lo, hi)),
                  lambda n: draw(st.binary(min_size=n, max_size=n)), draw(st.integers(1, 4)))
    return name, data


_counter = itertools.count()


@settings(max_examples=EXAMPLES, deadline=timedelta(seconds=30), derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=mutants())
def test_mutated_files_never_give_an_output_pillow_could_not_decode(cloaker, tmp_path_factory, case):
    name, data = case
    d = tmp_path_factory.getbasetemp() / "fuzz"
    (d / "out").mkdir(parents=True, exist_ok=True)
    src = d / f"{next(_counter)}-{name}"
    src.write_bytes(data)
    dest = d / "out" / f"{src.stem}.protected.png"
    with warnings.catch_warnings(record=True) as stray:  # what Pillow warns about must come back as lines
        warnings.simplefilter("always")
        try:
            done = cloaker.cloak_file(src, dest)
        except ImageError as e:  # refused: one line naming the file, and nothing written
            done = None
            assert str(e).startswith(f"{src}: ") and "\n" not in str(e)
            assert not dest.exists()
    assert [str(w.message) for w in stray] == []
    if done is not None:
        assert pillow_decodes(src), "an output was written for a file Pillow cannot decode"
        assert dest.is_file() and all("\n" not in w for w in done.warnings)
    assert src.read_bytes() == data
    assert not [p for p in d.rglob("*") if p.name.endswith(".tmp")]


def test_mutated_batch_through_the_command_line(tmp_path, models_dir):
    """40 seeded mutants and the 5 intact files in one ``protect`` run: no traceback, one line per refused
    file, an output exactly for the files that read_image accepts (never for one Pillow cannot decode)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = random.Random(18)
    d = tmp_path / "in"
    d.mkdir()
    files = {}
    for name, data in BASES.items():
        files[d / f"intact-{name}"] = data
    for k in range(40):
        name = rng.choice(sorted(BASES))
        files[d / f"m{k:02d}-{name}"] = mutate(BASES[name], name, rng.randint, rng.randbytes, rng.randint(1, 4))
    for p, data in files.items():
        p.write_bytes(data)
    try:
        r = CliRunner().invoke(app, ["protect", str(d), "-o", str(tmp_path / "out"), "--models", str(models_dir),
                                     "--steps", "1", "--no-eval", "--json"])
    finally:
        torch.set_num_threads(saved)
    assert r.exit_code in (0, 1), r.output
    assert all(line.startswith("glazeish: ") for line in r.stderr.splitlines()), r.stderr
    done = {Path(row["input"]) for row in map(json.loads, r.stdout.splitlines())}
    assert {d / f"intact-{name}" for name in BASES} <= done
    for p, data in files.items():
        errors = [line for line in r.stderr.splitlines() if line.startswith(f"glazeish: error: {p}: ")]
        assert (p in done) != bool(errors) and len(errors) <= 1, (p, errors)
        if p in done:
            assert pillow_decodes(p)
        assert p.read_bytes() == data
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
