from __future__ import annotations

import pytest

from glazeish.objectives import OBJECTIVES, Objective, register_objective
from glazeish.registry import registrar


def test_registrar_checks_names_and_refuses_a_second_class_under_a_taken_name():
    reg: dict = {}
    register = registrar(reg, "widget")

    class A:
        name = "a"

    assert register(A) is A and reg == {"a": A}
    assert register(A) is A  # the same class again (a reloaded module) is fine

    class B:
        name = "a"

    with pytest.raises(ValueError, match="widget name 'a' already taken by .*A"):
        register(B)
    for bad in ("", "x,y", "x:y", " x"):
        with pytest.raises(ValueError, match="needs a non-empty name"):
            register(type("C", (), {"name": bad}))
    assert reg == {"a": A}


def test_builtin_registries_use_it():
    class Fake(Objective):
        name = "mimic"

    with pytest.raises(ValueError, match="objective name 'mimic' already taken"):
        register_objective(Fake)
    assert OBJECTIVES["mimic"].__name__ == "MimicView"
