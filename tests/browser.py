"""Headless Debian Chromium for tests that look at rendered HTML.

``chromium()`` finds the browser, installing the Debian package once (under a lock file) when
it is missing and the tests run as root; when it is missing and they do not, the calling test
is skipped with the reason. ``screenshot()`` and ``dump_dom()`` run one headless page load.
The machine's network is closed, so the flags turn off everything that would try to reach
out (and could hang waiting for it).
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
LOCK = Path(tempfile.gettempdir()) / "refrad-chromium-install.lock"
INSTALL_TIMEOUT_S = 1200
RUN_TIMEOUT_S = 90
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--force-device-scale-factor=1",
)


def find_chromium() -> str | None:
    """The path of an installed Chromium, or None."""
    for path in CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


def _install() -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        # Parallel test processes wait here; whoever comes second finds it installed.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if find_chromium():
            return
        proc = subprocess.run(
            "apt-get update -qq && apt-get install -y -qq chromium",
            shell=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        if proc.returncode != 0 or not find_chromium():
            raise RuntimeError(
                f"installing chromium failed (exit {proc.returncode}):\n"
                f"{(proc.stdout + proc.stderr)[-3000:]}"
            )


@functools.cache
def _ensure() -> str:
    path = find_chromium()
    if path:
        return path
    if os.geteuid() != 0:
        return ""
    _install()
    return find_chromium() or ""


def chromium() -> str:
    """Chromium's path; installs it when missing as root, else skips the calling test."""
    path = _ensure()
    if not path:
        pytest.skip(
            "headless Chromium is not installed and the tests do not run as root, so it "
            "cannot be installed (apt-get install chromium)"
        )
    return path


def _run(args: list[str], user_data: Path) -> subprocess.CompletedProcess:
    cmd = [chromium(), *FLAGS, f"--user-data-dir={user_data}", *args]
    proc = subprocess.run(cmd, capture_output=True, timeout=RUN_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(
            f"chromium exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc


def screenshot(url: str, png: Path, width: int = 1400, height: int = 2000) -> Path:
    """Load ``url`` headless and write a ``width`` x ``height`` screenshot to ``png``."""
    png = Path(png)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="refrad-chromium-") as profile:
        _run([f"--screenshot={png}", f"--window-size={width},{height}", url], Path(profile))
    if not png.exists():
        raise RuntimeError("chromium wrote no screenshot")
    return png


def dump_dom(url: str) -> str:
    """Load ``url`` headless and return the DOM as serialised after its scripts ran."""
    with tempfile.TemporaryDirectory(prefix="refrad-chromium-") as profile:
        proc = _run(["--dump-dom", url], Path(profile))
    return proc.stdout.decode("utf-8")
