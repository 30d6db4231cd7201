"""Helpers of the real-browser tests: a live ``polisum serve`` and Debian's headless Chromium.

The browser is the system's chromium (``apt-get install chromium``) driven by Playwright for
Python through ``executable_path``; the browsers ``playwright install`` downloads are never used.
What cannot be found makes the tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root in a container: the setuid sandbox is unavailable
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
]


def chromium_path() -> str:
    """The system's Chromium, or skip: ``$POLISUM_CHROMIUM``, then chromium on PATH."""
    candidates = [os.environ.get("POLISUM_CHROMIUM"), "chromium", "chromium-browser"]
    for name in filter(None, candidates):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium not installed: apt-get install chromium")


def sync_playwright():
    """playwright.sync_api.sync_playwright, or skip when Playwright is not installed."""
    module = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed: pip install playwright"
    )
    return module.sync_playwright()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(config_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without the developer's polisum settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLISUM_")}
    env["POLISUM_CONFIG_DIR"] = str(config_dir)
    # The server imports this checkout's polisum (a worktree run with PYTHONPATH=src).
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


@contextmanager
def live_server(
    index: Path, env: dict[str, str], log: Path, *args: str, timeout: float = 90.0
) -> Iterator[str]:
    """``polisum serve --index INDEX ARGS`` on 127.0.0.1 and a free port; yields its base URL
    once ``/v1/health`` answers. The server's output goes to ``log`` (shown when it fails)."""
    port = free_port()
    cmd = [sys.executable, "-m", "polisum.cli", "serve", "--index", str(index), *args]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"polisum serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"polisum serve did not answer in {timeout}s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Screenshots:
    """Saves full-page screenshots to ``folder`` and a copy to test-artifacts/screenshots/."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.saved: list[Path] = []

    def __call__(self, page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.saved.append(path)
        try:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, ARTIFACTS / path.name)
        except OSError:  # a read-only checkout: the copy under ``folder`` is the record
            pass
        return path


def drop_files(page, selector: str, files: dict[str, tuple[str, bytes]]) -> None:
    """Drag and drop ``files`` ({name: (mime type, bytes)}) onto ``selector``, as a user would:
    a DataTransfer built in the page, then dragenter, dragover and drop events."""
    payload = [[name, mime, list(data)] for name, (mime, data) in files.items()]
    transfer = page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const [name, type, bytes] of files) {
                dt.items.add(new File([new Uint8Array(bytes)], name, { type }));
            }
            return dt;
        }""",
        payload,
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event(selector, event, {"dataTransfer": transfer})
