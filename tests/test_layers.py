"""Imports go one way: otp -> sip -> billing -> switch -> api/sim -> cli (see shared/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "switchd"

# For each layer, the switchd layers it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "otp": set(),
    "sip": set(),
    "billing": {"otp"},
    "switch": {"otp", "sip", "billing"},
    "api": {"otp", "billing", "switch"},
    "sim": {"otp", "sip"},
    "config": {"otp", "sip", "billing", "switch", "api", "sim"},  # a package of its own (config.py grew)
    "cli": {"otp", "sip", "billing", "switch", "api", "sim", "config", "app", "demo", "workers", ""},  # cli.py grew; "": switchd itself
    # `switchd demo` runs a whole node with simulated peers: it composes everything, as app.py does
    "demo": {"otp", "sip", "billing", "switch", "api", "sim", "config", "app"},
}
TOP_LEVEL_MAY_IMPORT_ALL = {"cli", "config", "app", "demo", "workers", "collector", "__main__", "__init__"}
# Third-party packages a layer must not import: the sip layer is sans-IO, otp is trio only.
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "otp": {"h11", "sqlalchemy", "alembic", "rich", "psycopg", "defusedxml"},
    "sip": {"trio", "h11", "sqlalchemy", "alembic", "rich", "psycopg", "socket", "asyncio"},
    "billing": {"rich", "h11"},
    "switch": {"rich"},
    "api": {"rich"},
}


def _imports(source: str, package: str) -> set[str]:
    """Absolute module names imported by `source`, a module of `package` (relative imports resolved)."""
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                if node.module:
                    names.add(".".join([*base, node.module]))
                else:  # `from .. import billing` imports the submodule billing
                    names.update(".".join([*base, alias.name]) for alias in node.names)
            elif node.module:
                names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_module_imports_follow_the_layer_arrows(path: Path) -> None:
    rel = path.relative_to(ROOT).parts
    if len(rel) == 1:
        assert path.stem in TOP_LEVEL_MAY_IMPORT_ALL, f"unexpected top-level module {path.name}"
        return
    layer = rel[0]
    allowed = ALLOWED[layer] | {layer}
    package = ".".join(path.relative_to(ROOT.parent).parts[:-1])
    for name in _imports(path.read_text(encoding="utf-8"), package):
        parts = name.split(".")
        if parts[0] == "switchd":
            target = parts[1] if len(parts) > 1 else ""
            assert target in allowed, f"{path.name} in layer {layer!r} imports {name}"
        else:
            assert parts[0] not in FORBIDDEN_THIRD_PARTY.get(layer, set()), (
                f"{path.name} in layer {layer!r} imports {name}"
            )


def test_the_layer_checker_resolves_absolute_and_relative_imports() -> None:
    source = "from switchd.switch import x\nfrom .. import billing\nfrom ._parser import parse\nimport trio\n"
    assert _imports(source, "switchd.sip") == {
        "switchd.switch", "switchd.billing", "switchd.sip._parser", "trio",
    }
