"""The layering: inference and the libraries below it never import training or the CLI.

Every import statement is checked, also those inside functions (lazy imports), and relative
imports are resolved against the importing module.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rocksynth"
LOWER = ("pipelines", "models", "properties", "io")
FORBIDDEN = ("rocksynth.training", "rocksynth.cli")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = [root.name] + list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, is_package: bool = False) -> "list[tuple[int, str]]":
    """(line, dotted name) of everything a module's source imports, anywhere in it.

    `from a import b` yields both `a` and `a.b`, since `b` may be a submodule
    (`from rocksynth import training`)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.append((node.lineno, base))
            names += [(node.lineno, f"{base}.{alias.name}" if base else alias.name) for alias in node.names]
    return names


def violations(root: Path = PACKAGE) -> "list[str]":
    """'<module> (line N) imports <name>' for each forbidden import statement under `root`."""
    found = {}
    for package in LOWER:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            for line, name in imported_names(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    # one report per statement: the module it names (`from a.b import c` -> a.b)
                    found[module, line] = min(found.get((module, line), name), name, key=len)
    return [f"{module} (line {line}) imports {name}" for (module, line), name in sorted(found.items())]


def test_lower_layers_import_neither_training_nor_cli():
    found = violations()
    assert not found, "inference and libraries must not import training or cli:\n" + "\n".join(found)


@pytest.mark.parametrize("source", [
    "from rocksynth.training.checkpoint import load_checkpoint",
    "def f():\n    from rocksynth.training.video import KIND\n",
    "import rocksynth.cli.app",
    "from rocksynth import training",
    "from ..training import checkpoint",
    "from .. import cli",
])
def test_the_check_finds_every_form_of_import(source):
    names = [name for _, name in imported_names(source, "rocksynth.pipelines.predict")]
    assert any(name.startswith(FORBIDDEN) for name in names), names


def test_the_check_names_the_module_and_the_import(tmp_path):
    root = tmp_path / "rocksynth"
    for package in LOWER:
        (root / package).mkdir(parents=True)
    (root / "pipelines" / "bad.py").write_text("def load():\n    from rocksynth.training.checkpoint import x\n")
    (root / "io" / "good.py").write_text("from rocksynth.io.paths import STDIO\nimport rocksynth.trainingwheels\n")
    assert violations(root) == ["rocksynth.pipelines.bad (line 2) imports rocksynth.training.checkpoint"]
