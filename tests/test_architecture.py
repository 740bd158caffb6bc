"""The layer rules of ARCHITECTURE.md, enforced on the source packages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "jobs", "models")

# models/ is the domain: no Slack, mail transport, web or scheduler library, no outer layer.
FORBIDDEN_IN_MODELS = (
    "slack_bolt",
    "slack_sdk",
    "smtplib",
    "aiosmtpd",
    "aiosmtplib",
    "aiohttp",
    "apscheduler",
    "handlers",
    "jobs",
    "bot",
)
# ...and it starts no process or thread.
PROCESS_MODULES = ("subprocess", "threading", "atexit", "multiprocessing")


def _sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _imported(path: Path) -> set[str]:
    """Every module a file imports (dotted names, imports inside functions included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from bot import runtime` imports bot.runtime.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _loads_by_name(path: Path) -> list[str]:
    """Calls that load a module named by a string: importlib.import_module, __import__."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in ("import_module", "__import__"):
                found.append(f"line {node.lineno}: {name}")
    return found


@pytest.mark.parametrize("path", _sources("models"), ids=_rel)
def test_models_import_no_outer_layer(path: Path) -> None:
    bad = _top(_imported(path)) & set(FORBIDDEN_IN_MODELS)
    assert not bad, f"{_rel(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _sources("models"), ids=_rel)
def test_models_start_no_process_or_thread(path: Path) -> None:
    bad = _top(_imported(path)) & set(PROCESS_MODULES)
    assert not bad, f"{_rel(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _sources("handlers"), ids=_rel)
def test_handlers_never_import_jobs(path: Path) -> None:
    bad = sorted(name for name in _imported(path) if _under(name, "jobs"))
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", _sources("jobs"), ids=_rel)
def test_jobs_import_only_the_block_builders_of_handlers(path: Path) -> None:
    bad = sorted(
        name
        for name in _imported(path)
        if _under(name, "handlers") and not _under(name, "handlers.blocks") and name != "handlers"
    )
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", _sources("handlers", "jobs", "models"), ids=_rel)
def test_only_bot_imports_the_runtime(path: Path) -> None:
    bad = sorted(name for name in _imported(path) if _under(name, "bot.runtime"))
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", _sources(*PACKAGES), ids=_rel)
def test_no_module_is_loaded_by_name(path: Path) -> None:
    assert "importlib" not in _top(_imported(path)), f"{_rel(path)} imports importlib"
    assert _loads_by_name(path) == [], f"{_rel(path)} loads modules by name"


ORM_CALLS = re.compile(r"(?<!\w)select\(|\bsession\.(?:get|add|exec|execute)\(")


@pytest.mark.parametrize("path", _sources("handlers"), ids=_rel)
def test_handlers_hold_no_orm_queries(path: Path) -> None:
    """Handlers call named persistence functions of models/ instead."""
    found = ORM_CALLS.findall(path.read_text())
    assert not found, f"{_rel(path)} uses {found}"


def test_the_rules_catch_violations(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(
        "from slack_sdk import WebClient\nimport handlers.tickets\nimport threading\n"
        "from bot import runtime\nfrom handlers.blocks.common import escape\n"
        "def f():\n    import subprocess\n    return __import__('jobs.outbox')\n"
    )
    names = _imported(sample)
    assert _top(names) & set(FORBIDDEN_IN_MODELS) == {"slack_sdk", "handlers", "bot"}
    assert _top(names) & set(PROCESS_MODULES) == {"threading", "subprocess"}
    assert any(_under(n, "bot.runtime") for n in names)
    assert "handlers.tickets" in names and "handlers.blocks.common" in names
    assert _loads_by_name(sample) == ["line 8: __import__"]
    assert ORM_CALLS.findall("await session.get(Ticket, 1)\nselect(Member)\n_status_select(x)") == [
        "session.get(",
        "select(",
    ]
    # A module of our own that shares a standard library name is not the standard library.
    other = tmp_path / "y.py"
    other.write_text("from models.threading import make_message_id\n")
    assert not _top(_imported(other)) & set(PROCESS_MODULES)


@pytest.mark.parametrize("package", ["handlers", "jobs", "models"])
def test_only_config_reads_the_environment(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        text = path.read_text()
        assert "os.environ" not in text and "os.getenv" not in text, path
