import inspect

import pytest

import streams

pytestmark = pytest.mark.unit


def test_all_is_sorted_and_unique() -> None:
    assert list(streams.__all__) == sorted(set(streams.__all__))


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(streams).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(streams.__all__)


def test_every_export_resolves() -> None:
    for name in streams.__all__:
        assert getattr(streams, name) is not None
