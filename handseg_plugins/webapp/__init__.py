"""The handseg web app: `handseg app` serves it on this computer and opens it in a browser."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

from handseg_core import HandsegError

APP = Path(__file__).with_name("app.py")
ADDRESS = "127.0.0.1"
STOP_SECONDS = 10


def streamlit_command(port: int = 8501, open_browser: bool = True) -> list[str]:
    """The `streamlit run` command line that serves the app on ADDRESS:port."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", ADDRESS,
        "--server.headless", "false" if open_browser else "true",
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "viewer",
        "--browser.gatherUsageStats", "false",
    ]


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so that stopping the launcher also stops the server."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def launch(port: int = 8501, open_browser: bool = True) -> int:
    """Serve the web app on http://127.0.0.1:<port> until Streamlit stops; returns its exit code.

    Ctrl-C or SIGTERM stops the server too.

    Raises:
        HandsegError: Streamlit is not installed.
        OSError: Streamlit cannot be started.
    """
    if importlib.util.find_spec("streamlit") is None:
        raise HandsegError("the web app needs Streamlit: pip install 'handseg[app]'")
    # Without this, a first start that opens a browser stops to ask for an e-mail address.
    env = {**os.environ, "STREAMLIT_SERVER_SHOW_EMAIL_PROMPT": "false"}
    server = subprocess.Popen(streamlit_command(port, open_browser), env=env)
    with _sigterm_as_exit():
        try:
            return server.wait()
        except KeyboardInterrupt:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=STOP_SECONDS)  # Ctrl-C reached Streamlit as well
            raise
        finally:
            _stop(server)
