"""Every public name is exported, sorted, and every public error is reachable from podium."""

from __future__ import annotations

import importlib
import inspect

import pytest

import podium
import podium.errors

PUBLIC_MODULES = [
    "podium",
    "podium.errors",
    "podium.agents",
    "podium.graphs",
    "podium.models",
    "podium.testing",
    "podium.tools",
    "podium.checkpoints",
    "podium.demos",
    "podium.eval",
    "podium.middleware",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_unique_and_resolvable(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(exported) == len(set(exported))
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ lists missing {member}"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_complete(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "").startswith("podium")
    }
    missing = public - set(module.__all__)
    assert not missing, f"{name} defines public names missing from __all__: {sorted(missing)}"


def test_every_error_is_exported_from_podium() -> None:
    errors = {
        n
        for n, obj in vars(podium.errors).items()
        if inspect.isclass(obj) and issubclass(obj, podium.errors.PodiumError)
    }
    assert errors == set(podium.errors.__all__)
    assert errors <= set(podium.__all__)
    for n in errors:
        assert getattr(podium, n) is getattr(podium.errors, n)


def test_errors_have_one_root() -> None:
    for n in podium.errors.__all__:
        assert issubclass(getattr(podium.errors, n), podium.PodiumError)
