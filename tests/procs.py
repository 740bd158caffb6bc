"""Run `docket serve` as a real subprocess (for kill and multi-replica tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
DOCKET = Path(sys.executable).with_name("docket")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServeProcess:
    """A `docket serve` child process and the port it listens on."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, like a crash or an OOM kill."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def serve_env(
    *, database_url: str, api_url: str, signing_secret: str, token: str, **extra: str
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DOCKET_")) and "PROXY" not in k.upper()
    }
    env.update(
        SLACK_BOT_TOKEN=token,
        SLACK_SIGNING_SECRET=signing_secret,
        SLACK_API_URL=api_url,
        DATABASE_URL=database_url,
        HOST="127.0.0.1",
        DOCKET_SMTP_PORT="0",
        DOCKET_SCHEDULER="false",
        DOCKET_TRIAGE_CHANNEL="CTRIAGE",
        DOCKET_MANAGERS_CHANNEL="CMANAGERS",
    )
    env.update(extra)
    return env


async def start_serve(
    env: dict[str, str],
    log_path: Path,
    *,
    timeout: float = 30.0,
    health: int = 200,
    ready: Callable[[], bool] | None = None,
) -> ServeProcess:
    """Start `docket serve` on a free port and wait until /healthz answers `health`, or,
    with `ready` (Socket Mode: until it has connected to Slack), until `ready()` is true."""
    port = free_port()
    env = {**env, "PORT": str(port)}
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [str(DOCKET), "serve"], cwd=str(log_path.parent), env=env, stdout=log, stderr=log
    )
    child = ServeProcess(proc, port, log_path)
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"docket serve exited with {proc.returncode}:\n{child.log()}")
            if ready is not None:
                if ready():
                    return child
                await asyncio.sleep(0.05)
                continue
            try:
                async with http.get(child.url + "/healthz") as resp:
                    if resp.status == health:
                        return child
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    child.kill()
    raise TimeoutError(f"docket serve did not become healthy:\n{child.log()}")
