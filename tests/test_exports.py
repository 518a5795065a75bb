"""Each package's __all__ is sorted and names exactly its public (non-underscore) attributes."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["switchd.otp", "switchd.sip", "switchd.billing", "switchd.switch", "switchd.sim", "switchd.api", "switchd.cli", "switchd.demo"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_the_public_names_sorted(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", []))
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and getattr(value, "__module__", name).startswith(name)
        and type(value).__name__ != "module"
    }
    assert public <= set(exported), f"{name} has public names missing from __all__: {public - set(exported)}"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which does not exist"
