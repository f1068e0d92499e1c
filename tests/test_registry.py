"""The one registry protocol, and one contract test that runs every registered entry of every kind (encoders,
objectives, transforms, purifications, benchmark protections) through the same checks: built by name with the
same context, the documented shape and range, deterministic, and — where it changes pixels — within budget."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch

from glazeish.bench.protections import PROTECTIONS, BenchContext
from glazeish.encoders import ENCODERS, LatentModel
from glazeish.objectives import OBJECTIVES, Objective, register_objective
from glazeish.purify import PURIFICATIONS
from glazeish.registry import Registered, Registry, parse_spec, split_specs
from glazeish.transforms import TRANSFORMS


def test_registry_checks_names_and_refuses_a_second_class_under_a_taken_name():
    reg = Registry("widget")

    class A(Registered):
        name = "a"

    assert reg.register(A) is A and reg.names() == ["a"]
    assert reg.register(A) is A  # the same class again (a reloaded module) is fine

    class B(Registered):
        name = "a"

    with pytest.raises(ValueError, match="widget name 'a' already taken by .*A"):
        reg.register(B)
    for bad in ("", "x,y", "x:y", " x"):
        with pytest.raises(ValueError, match="needs a non-empty name"):
            reg.register(type("C", (Registered,), {"name": bad}))
    assert reg.names() == ["a"] and "a" in reg and "b" not in reg
    with pytest.raises(ValueError, match="unknown widget 'b'; known: a"):
        reg.build("b")


def test_specs_are_parsed_one_way_and_context_goes_where_it_is_taken():
    assert parse_spec(" ae : taesana ") == ("ae", "taesana") and parse_spec("jpeg75") == ("jpeg75", None)
    assert split_specs("a, b:x,,") == ["a", "b:x"] and split_specs(["a,b", "c"]) == ["a", "b", "c"]
    reg = Registry("thing")

    @reg.register
    class Takes(Registered):
        name = "takes"
        description = "takes a seed"

        def __init__(self, seed: int = 0):
            self.seed = seed

    @reg.register
    class Plain(Registered):
        name = "plain"

    assert reg.build("takes", seed=3, model="ignored").seed == 3
    assert isinstance(reg.build("plain", seed=3), Plain)
    with pytest.raises(ValueError, match="takes no ':' argument"):
        reg.build("plain:x")
    with pytest.raises(ValueError, match="unknown thing 'nope'"):  # every name checked before anything is built
        reg.build_all("plain,nope")
    assert reg.help() == "takes: takes a seed; plain"


def test_builtin_registries_refuse_to_be_overwritten():
    class Fake(Objective):
        name = "mimic"

    with pytest.raises(ValueError, match="objective name 'mimic' already taken"):
        register_objective(Fake)
    assert OBJECTIVES["mimic"].__name__ == "MimicView"


# ---------------------------------------------------------------------------------------------
# the contract


def _image(b: int = 1, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 4, 4, generator=g)
    field = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (0.8 * field + 0.1 + 0.05 * torch.randn(b, 3, h, w, generator=g)).clamp(0, 1)


#: entries that are built only with an argument, and the spec the contract tests build them with
NEEDS_ARG = {"platform": "platform:facebook"}


def _entries() -> list[tuple[str, str]]:
    out = [("encoder", n) for n, e in ENCODERS.items() if e.weights]
    out += [("objective", n) for n in OBJECTIVES]
    out += [("transform", n) for n in TRANSFORMS]
    # purifications that need a diffusers pipeline on disk have their own contract test (test_purify.py)
    out += [("purification", n) for n, c in PURIFICATIONS.items() if not getattr(c, "needs_pipeline", False)]
    out += [("protection", n) for n in PROTECTIONS]
    # and every variant of a peer (photoguard-encoder-style:grey, mist-textural-style:decoy)
    out += [("protection", f"{n}:{v}") for n, c in PROTECTIONS.items() for v in getattr(c, "variants", {})]
    return out


@pytest.fixture(scope="module")
def tiny_taef2(models_dir) -> LatentModel:
    from glazeish.encoders import load_encoder

    return load_encoder("taef2", models_dir)


def _check_encoder(name, request):
    from glazeish.encoders import load_encoder

    model = load_encoder(name, request.getfixturevalue("models_dir"))
    x = _image(2, 64, 64).requires_grad_(True)
    z = model.encode(x)
    assert z.dim() == 4 and z.shape[0] == 2 and z.shape[-1] == 64 // model.multiple
    assert torch.equal(z, model.encode(x))  # deterministic
    z.float().square().mean().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0  # an attack can use it
    if model.has_decoder:
        y = model.round_trip(x.detach()[:, :, :60, :52])  # any size: padded and cropped back
        assert y.shape == (2, 3, 60, 52) and 0 <= float(y.min()) and float(y.max()) <= 1


def _check_objective(name, request):
    from glazeish.attack import PGD

    model = request.getfixturevalue("tiny_taef2")
    x = _image(2, 64, 64)
    obj = OBJECTIVES.build(name, target=_image(1, 40, 24, seed=5)[0])  # the same context for every objective
    loss = obj.setup(model, x)
    v = loss(x)
    assert v.shape == (2,) and torch.isfinite(v).all()
    adv = PGD(model, obj, eps=4 / 255, steps=2, seed=0, precision="fp32")(x)
    assert float((adv - x).abs().max()) <= 4 / 255 + 1e-6 and 0 <= float(adv.min()) and float(adv.max()) <= 1
    assert torch.equal(adv, PGD(model, obj, eps=4 / 255, steps=2, seed=0, precision="fp32")(x))


def _check_transform(name, request):
    t = TRANSFORMS.build(NEEDS_ARG.get(name, name), model=request.getfixturevalue("tiny_taef2"))
    x = _image(1, 60, 52).requires_grad_(True)  # odd sizes too
    y = t(x, random.Random(0))
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    assert torch.equal(y, t(x, random.Random(0)))  # reproducible per seed
    if y is not x:
        y.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


def _check_purification(name, request):
    model = request.getfixturevalue("tiny_taef2")
    p = PURIFICATIONS.build(NEEDS_ARG.get(name, name), model=model, seed=0, steps=2)
    x = _image(2, 60, 52)
    before = x.clone()
    y = p(x)
    assert y.shape == x.shape and y.dtype == torch.float32 and 0 <= float(y.min()) and float(y.max()) <= 1
    assert torch.equal(x, before)  # the input is not modified
    assert torch.equal(y, PURIFICATIONS.build(NEEDS_ARG.get(name, name), model=model, seed=0, steps=2)(x))  # deterministic


def _check_protection(name, request, tmp_path):
    rgb = (_image(1, 48, 40)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ext = tmp_path / "ext"
    ext.mkdir()
    from PIL import Image

    Image.fromarray(np.clip(rgb.astype(int) + 2, 0, 255).astype(np.uint8)).save(ext / "a.png")
    from glazeish.encoders import Ensemble

    ctx = BenchContext(eps_levels=4, attack_steps=1, device="cpu", precision="fp32", external={"external": str(ext)},
                       models_dir=str(request.getfixturevalue("models_dir")),
                       ensemble=Ensemble([request.getfixturevalue("tiny_taef2")]))
    from glazeish.bench.protections import _Wrapper

    # a wrapper (same-psnr:<p>, jpeg75:<p>) is built around another protection
    p = PROTECTIONS.build(f"{name}:random" if issubclass(PROTECTIONS[name], _Wrapper) else name, ctx=ctx)
    out = p.protect(rgb, "f/a")
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if p.eps_levels is not None:
        assert np.abs(out.astype(int) - rgb).max() <= p.eps_levels
    assert np.array_equal(out, p.protect(rgb, "f/a"))


@pytest.mark.parametrize("kind,name", _entries(), ids=lambda v: v)
def test_every_registered_entry_keeps_the_contract(kind, name, request, tmp_path):
    check = {"encoder": _check_encoder, "objective": _check_objective, "transform": _check_transform,
             "purification": _check_purification, "protection": _check_protection}[kind]
    if kind == "protection":
        check(name, request, tmp_path)
    else:
        check(name, request)


def test_plugins_register_when_the_registry_is_first_read(tmp_path, monkeypatch):
    """A plug-in module is imported on the first read (not when the registry is made), once, and its entries
    are then there for every read; registering does not import it."""
    (tmp_path / "glazeish_test_plugin.py").write_text(
        "from glazeish.registry import Registered\nimport test_registry_home as home\n"
        "@home.THINGS.register\nclass Extra(Registered):\n    name = 'extra'\n")
    (tmp_path / "test_registry_home.py").write_text(
        "from glazeish.registry import Registry\nTHINGS = Registry('thing', plugins=('glazeish_test_plugin',))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import test_registry_home as home

    class Own(Registered):
        name = "own"

    home.THINGS.register(Own)
    assert "glazeish_test_plugin" not in sys.modules
    assert home.THINGS.names() == ["own", "extra"] and "glazeish_test_plugin" in sys.modules
    assert "extra" in home.THINGS and home.THINGS["extra"].name == "extra" and len(home.THINGS) == 2
    for mod in ("glazeish_test_plugin", "test_registry_home"):
        sys.modules.pop(mod)
