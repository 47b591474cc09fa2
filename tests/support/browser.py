"""Headless Chromium (Debian's `chromium` package, `make chromium`) for the suite's browser tests:
a page's DOM after it has loaded and run its scripts, and screenshots."""
import os
import shutil
import subprocess
import tempfile

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-extensions", "--disable-sync", "--no-first-run", "--hide-scrollbars", "--mute-audio",
         "--allow-file-access-from-files"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found; `make chromium` installs Debian's")


def _url(page: str) -> str:
    return page if "://" in page else "file://" + os.path.abspath(page)


def _run(args: list[str], timeout: float) -> str:
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: nothing shared between runs
        done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def dom(page: str, budget_ms: int = 10000, timeout: float = 120) -> str:
    """The page's DOM as HTML once it has loaded (images included) and its load handlers ran."""
    return _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", _url(page)], timeout)


def screenshot(page: str, out: str, size: str = "1280x900", budget_ms: int = 10000, timeout: float = 120) -> str:
    width, height = size.split("x")
    _run([f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}",
          f"--screenshot={os.path.abspath(out)}", _url(page)], timeout)
    return out

