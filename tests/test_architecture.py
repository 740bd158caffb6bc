"""The layer rules of ARCHITECTURE.md, enforced."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_MODELS = ("slack_bolt", "slack_sdk", "aiosmtpd", "handlers", "jobs", "bot")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "models").rglob("*.py")), ids=lambda p: p.name)
def test_models_import_no_outer_layer(path: Path) -> None:
    bad = _imports(path) & set(FORBIDDEN_IN_MODELS)
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from slack_sdk import WebClient\nimport handlers.tickets\n")
    assert _imports(sample) & set(FORBIDDEN_IN_MODELS) == {"slack_sdk", "handlers"}


@pytest.mark.parametrize("package", ["handlers", "jobs", "models"])
def test_only_config_reads_the_environment(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        text = path.read_text()
        assert "os.environ" not in text and "os.getenv" not in text, path


PROCESS_MODULES = ("subprocess", "threading", "atexit", "multiprocessing")


@pytest.mark.parametrize("path", sorted((ROOT / "models").rglob("*.py")), ids=lambda p: p.name)
def test_models_start_no_process_or_thread(path: Path) -> None:
    bad = _imports(path) & set(PROCESS_MODULES)
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
