"""Every ``dvc.yaml`` stage lists, as deps, its script and each library module that script imports (at
any depth, lazy imports inside functions included), so that a change to any code a stage runs reruns it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module_file(name: str) -> Path | None:
    """The file that defines module ``name`` (``kosparse.x.y``), or None when it is not a module."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path) -> set[str]:
    """The ``kosparse`` modules that ``path`` imports anywhere in its body."""
    package = ".".join(path.relative_to(SRC).with_suffix("").parts[:-1]) if path.is_relative_to(SRC) else ""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "kosparse")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*parts, node.module] if node.module else parts)
            else:
                module = node.module or ""
            if module.split(".")[0] != "kosparse":
                continue
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names if _module_file(f"{module}.{a.name}"))
    # importing kosparse.a.b runs kosparse/a/__init__.py too
    found.update(".".join(m.split(".")[:i]) for m in list(found) for i in range(2, len(m.split("."))))
    return found


def _closure(script: Path) -> set[Path]:
    """Library files a stage script runs: its ``kosparse`` imports, followed transitively."""
    files: set[Path] = set()
    todo = [script]
    while todo:
        for name in _imported(todo.pop()):
            file = _module_file(name)
            if file is not None and file not in files:
                files.add(file)
                todo.append(file)
    files.discard(SRC / "kosparse" / "__init__.py")  # the package's version string only
    return files


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_lists_the_code_it_runs(name: str) -> None:
    stage = STAGES[name]
    deps = [ROOT / d for d in stage.get("deps", [])]
    script = ROOT / "stages" / f"{name}.py"
    assert stage["cmd"].split()[:2] == ["python", f"stages/{name}.py"], stage["cmd"]
    assert script in deps
    missing = sorted(str(f.relative_to(ROOT)) for f in _closure(script)
                     if not any(f == d or f.is_relative_to(d) for d in deps))
    assert not missing, f"stage {name!r} runs code it does not list as deps: {missing}"


def test_the_closure_follows_lazy_and_package_imports(tmp_path: Path) -> None:
    chunk = _closure(SRC / "kosparse" / "chunk.py")
    assert SRC / "kosparse" / "unigram.py" in chunk  # imported inside a method
    assert SRC / "kosparse" / "wordtable.py" in chunk
    script = tmp_path / "s.py"
    script.write_text("def f():\n    from kosparse.lexicon import terms\n", encoding="utf-8")
    files = _closure(script)
    assert SRC / "kosparse" / "lexicon" / "terms.py" in files
    assert SRC / "kosparse" / "lexicon" / "__init__.py" in files
