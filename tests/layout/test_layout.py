"""The package's shape, held by the code itself (docs/ARCHITECTURE.md, "Layout").

Imports point down: the engine imports nothing from the daemon, the CLI or the tray; the
shared top-level modules import no layer; the native host imports :mod:`freight`, never the
reverse. Every import counts, also those made inside a function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "freight": ROOT / "daemon" / "freight",
    "freight_host": ROOT / "native_host" / "freight_host",
}
LAYERS = ("freight.engine", "freight.daemon", "freight.tray", "freight.cli")

#: importer prefix → prefixes it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "freight.engine": ("freight.daemon", "freight.cli", "freight.tray", "freight_host"),
    "freight.tray": ("freight.daemon", "freight.cli", "freight.engine", "freight_host"),
    "freight.daemon": ("freight.cli", "freight_host"),
    "freight.cli": ("freight_host",),
    "freight": ("freight_host",),  # the shared top: checked for layers below
}
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 300


def _modules() -> dict[str, Path]:
    found = {}
    for name, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [name, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in out if name.split(".")[0] in PACKAGES}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(module: str) -> str:
    for layer in LAYERS:
        if _within(module, layer):
            return layer
    return module.split(".")[0]


def test_the_layers_exist_as_folders() -> None:
    for layer in LAYERS:
        assert (PACKAGES["freight"] / layer.split(".")[1] / "__init__.py").is_file(), layer


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_point_down(module: str) -> None:
    path = _modules()[module]
    if module == "freight.__main__":
        return  # `python -m freight`: the entry point above every layer
    layer = _layer(module)
    forbidden = FORBIDDEN.get(layer, ())
    if layer == "freight":  # a shared top-level module: no layer at all
        forbidden = (*forbidden, *LAYERS)
    wrong = sorted(
        name for name in _imports(module, path) if any(_within(name, f) for f in forbidden)
    )
    assert not wrong, f"{module} imports {wrong}"


def _size_exceptions() -> set[str]:
    """Modules and classes that docs/ARCHITECTURE.md's "Sizes" section names with a reason."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.partition("\n### Sizes")[2].partition("\n## ")[0]
    return set(re.findall(r"`([\w.]+)`", section))


def test_modules_and_classes_stay_small_or_say_why() -> None:
    allowed = _size_exceptions()
    too_big = []
    for module, path in sorted(_modules().items()):
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES and module not in allowed:
            too_big.append(f"{module}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                name = f"{module}.{node.name}"
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_CLASS_LINES and name not in allowed:
                    too_big.append(f"{name}: {lines} lines")
    assert not too_big, "over the size limits without a reason in ARCHITECTURE.md: " + ", ".join(
        too_big
    )


def test_extension_modules_stay_small_or_say_why() -> None:
    # The extension's modules are held to the same size as the Python ones: a file that grows
    # past it is doing more than one job (docs/ARCHITECTURE.md "The extension").
    allowed = _size_exceptions()
    too_big = [
        f"{path.name}: {lines} lines"
        for path in sorted((ROOT / "extension" / "js").glob("*.js"))
        if (lines := path.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES
        and path.name not in allowed
    ]
    assert not too_big, "over the size limit without a reason in ARCHITECTURE.md: " + ", ".join(
        too_big
    )


def test_only_the_state_keeper_moves_a_downloads_state() -> None:
    """Every state move goes through freight.states.StateKeeper (transition table → store →
    event); nothing else calls the store's state-writing methods."""
    writers = []
    for module, path in sorted(_modules().items()):
        if module in ("freight.states", "freight.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("set_state", "complete")
                and "store" in ast.unparse(node.func.value)
            ):
                writers.append(f"{module}:{node.lineno}")
    assert not writers, f"state written around the keeper at {writers}"
