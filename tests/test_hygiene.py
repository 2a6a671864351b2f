"""What ships: every module states its job and stays small; the README's commands are the ones CI runs; the tests
mirror the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT / "dbps").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_opens_with_a_docstring_and_stays_small(path: Path) -> None:
    text = path.read_text()
    assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"
    assert len(text.splitlines()) <= 400, f"{path} has grown past 400 lines: split it"


def test_readme_commands_are_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    install, tests = blocks[0].strip(), blocks[1].strip()
    assert install == "pip install -e . && dbps train --config quickstart"
    ci = (ROOT / ".ci" / "run").read_text()
    install_dev, run_tests = (part.strip() for part in tests.split("&&"))
    assert install_dev == 'pip install -e ".[dev]"' and '-e ".[dev]"' in ci
    assert run_tests in ci.splitlines()


def test_quickstart_preset_is_the_documented_main_job() -> None:
    from dbps.config import load_config

    config, _ = load_config("quickstart")
    assert config.selection.method == "dbps" and config.data.generate is not None


def test_no_formatter_markers_where_no_formatter_runs() -> None:
    marker = "# fmt: " + "skip"  # spelled in two parts, so this file does not match itself
    files = [p for folder in ("dbps", "tests", "benchmarks") for p in sorted((ROOT / folder).rglob("*.py"))]
    marked = [f"{p.relative_to(ROOT)}:{i}" for p in files for i, line in enumerate(p.read_text().splitlines(), 1)
              if marker in line]
    assert not marked, f"formatter markers, but no formatter runs: {', '.join(marked)}"


def test_test_files_lie_where_the_package_layout_puts_them() -> None:
    tests = ROOT / "tests"
    misplaced, not_packages = [], set()
    for path in sorted(tests.rglob("test_*.py")):
        folder = path.parent.relative_to(tests)
        if folder.parts and folder.parts[0] not in ("e2e", "gpu") and not (ROOT / "dbps" / folder).is_dir():
            misplaced.append(str(path.relative_to(ROOT)))
        not_packages |= {str(d.relative_to(ROOT)) for d in (path.parent, *path.parent.parents)
                         if d.is_relative_to(tests) and not (d / "__init__.py").is_file()}
    assert not misplaced, f"test files outside a folder of dbps/, e2e/ or gpu/ (see tests/README.md): {misplaced}"
    assert not not_packages, f"test folders without an __init__.py: {sorted(not_packages)}"


def _mirrored_test(module: Path) -> Path:
    """Where tests/README.md puts a module's tests: dbps/<package>/<module>.py → tests/<package>/test_<module>.py,
    the aggregators in tests/models/, the top-level modules at tests/."""
    parts = module.relative_to(ROOT / "dbps").parts
    if len(parts) == 1:
        return ROOT / "tests" / f"test_{module.stem}.py"
    if parts[:2] == ("models", "aggregators"):
        return ROOT / "tests" / "models" / f"test_{module.stem}.py"
    return ROOT / "tests" / Path(*parts[:-1]) / f"test_{module.stem}.py"


def test_every_module_has_a_mirrored_test_file_or_a_line_in_the_tests_readme() -> None:
    readme = (ROOT / "tests" / "README.md").read_text()
    named = set(re.findall(r"`(dbps/[\w/]+\.py)`", readme))
    for folder, files in re.findall(r"`(dbps/[\w/]+/)` \(([^)]*)\)", readme):  # `dbps/pkg/` (`a.py`, `b.py`)
        named |= {folder + name for name in re.findall(r"`(\w+\.py)`", files)}
    paths = [path.relative_to(ROOT).as_posix() for path in MODULES
             if path.name != "__init__.py"]  # __init__.py files only gather their package's names
    unaccounted = [path for path in paths if path not in named and not _mirrored_test(ROOT / path).is_file()]
    assert not unaccounted, f"modules with no test at their mirrored path nor a line in tests/README.md: {unaccounted}"
