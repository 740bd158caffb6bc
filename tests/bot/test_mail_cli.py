"""`docket mail extract`: the DM text for each mail file, JSON lines, clear errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

from bot.mail_cli import extract_files
from tests.mail_corpus.cases import all_cases
from tests.mail_corpus.score import normalise
from tests.procs import DOCKET

CASES = {case.name: case for case in all_cases()}


def _write(tmp_path: Path, *names: str) -> list[str]:
    paths = []
    for name in names:
        path = tmp_path / f"{name}.eml"
        path.write_bytes(CASES[name].raw)
        paths.append(str(path))
    return paths


def test_json_lines_give_reply_language_and_cut(tmp_path: Path) -> None:
    files = _write(
        tmp_path, "de-gmail-plain", "fr-outlook-plain", "en-apple-forward", "ja-apple-plain-device"
    )
    out, err = io.StringIO(), io.StringIO()
    assert extract_files(files, as_json=True, out=out, err=err) == 0
    assert err.getvalue() == ""
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["file"] for r in records] == files
    assert [r["cut"] for r in records] == ["quote", "header", "none", "quote"]
    assert [r["language"] for r in records] == ["de", "fr", "en", "ja"]
    for record, name in zip(records, ["de-gmail-plain", "fr-outlook-plain"], strict=False):
        assert normalise(record["reply"]) == normalise(CASES[name].expected)


def test_bad_files_get_an_error_line_and_the_others_still_run(tmp_path: Path) -> None:
    [good] = _write(tmp_path, "en-gmail-html")
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    out, err = io.StringIO(), io.StringIO()
    missing = str(tmp_path / "nope.eml")
    status = extract_files([missing, str(empty), good], as_json=False, out=out, err=err)
    assert status == 1
    errors = err.getvalue().splitlines()
    assert errors == [
        f"docket mail extract: {missing}: No such file or directory",
        f"docket mail extract: {empty}: empty file",
    ]
    assert out.getvalue().startswith(f"==> {good} <==\n")
    assert normalise(out.getvalue().split("\n", 1)[1]) == normalise(CASES["en-gmail-html"].expected)


def test_the_docket_command(tmp_path: Path) -> None:
    files = _write(tmp_path, "pl-thunderbird-bottom", "en-device-sentfromtypeapp")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DOCKET_", "DATABASE_")) and "PROXY" not in k.upper()
    }
    proc = subprocess.run(
        [str(DOCKET), "mail", "extract", "--json", *files, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["cut"] for line in lines] == ["quote", "signature"]
    assert lines[1]["reply"] == "The new toner arrived.\nThanks!"
    assert f"docket mail extract: {tmp_path}: Is a directory" in proc.stderr
    assert "Traceback" not in proc.stderr
