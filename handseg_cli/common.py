"""What every command shares: failures as one line and an exit code, Ctrl-C, warnings, the
progress bar, and importing a plug-in or the training tools with a message that says what to
install.

This package is the only place where exceptions become messages and exit codes.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import warnings
from typing import Any, Callable, Iterator

import click

from handseg_core.errors import first_line  # noqa: F401  (the commands' one-line messages)

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class Failure(click.ClickException):
    """A one-line error that ends the command with exit code 1."""

    exit_code = EXIT_FAILED

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# What ends a command like Ctrl-C, and the word its line starts with.
STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
if hasattr(signal, "SIGHUP"):
    STOP_SIGNALS[signal.SIGHUP] = "hung up"


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C, so that the same cleanup runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def stop_word(exc: KeyboardInterrupt) -> str:
    """How a command's last line says why it stopped: interrupted, terminated, hung up."""
    return STOP_SIGNALS.get(getattr(exc, "signum", signal.SIGINT), "interrupted")


class Interrupted(click.exceptions.Exit):
    """Ctrl-C or a signal to stop: the command ends with exit code 128 + the signal's number
    (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP) once its line is printed."""

    def __init__(self, exc: KeyboardInterrupt | None = None) -> None:
        signum = getattr(exc, "signum", None)
        super().__init__(EXIT_INTERRUPTED if signum is None else 128 + signum)


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Stopped` in the main thread while the block runs (the first
    one; more are ignored while the command cleans up), as Ctrl-C raises KeyboardInterrupt."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        if not caught:
            caught.append(signum)
            raise Stopped(signum)

    previous = {}
    for signum in STOP_SIGNALS:
        if signum != signal.SIGINT and signal.getsignal(signum) is not signal.SIG_IGN:  # nohup keeps SIGHUP ignored
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Group(click.Group):
    """Ctrl-C, SIGTERM or SIGHUP anywhere ends with one line and exit code 128 + the signal
    (click's default would be 1, and a plain SIGTERM would skip every cleanup)."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings(), stopping_on_signals():
            warnings.showwarning = show_warning
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt as exc:
                click.echo(stop_word(exc), err=True)
                raise Interrupted(exc) from None


_show_warning = warnings.showwarning


def show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """handseg's own warnings (a model without a checksum) as one line on stderr; others as Python shows them."""
    if category.__module__.startswith("handseg"):
        click.echo(f"warning: {message}", err=True)
    else:
        _show_warning(message, category, *args, **kwargs)


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turn the engine's own errors into one-line failures."""
    from handseg_core.errors import HandsegError

    try:
        yield
    except HandsegError as exc:
        raise Failure(str(exc)) from None


# --- reporting


def stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())


class Reporter:
    """A progress bar and messages on stderr; the bar only on a terminal and without -q."""

    def __init__(self, total: int, label: str, quiet: bool, show_item: Callable[[Any], str | None] | None = None):
        self.quiet = quiet
        self._bar = None
        if not quiet and stderr_is_terminal() and total > 0:
            self._bar = click.progressbar(
                length=total, label=label, file=sys.stderr, item_show_func=show_item, show_pos=True
            )

    def __enter__(self) -> "Reporter":
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)

    @property
    def shows_bar(self) -> bool:
        return self._bar is not None

    def advance(self, steps: int = 1, item: Any = None) -> None:
        if self._bar is not None:
            self._bar.update(steps, item)

    def move_to(self, position: int, item: Any = None) -> None:
        if self._bar is not None:
            self._bar.update(max(0, position - self._bar.pos), item)

    def error(self, message: str) -> None:
        """One line on stderr, always (also with -q)."""
        self._clear_bar_line()
        click.echo(f"error: {message}", err=True)

    def note(self, message: str) -> None:
        """One line on stderr, unless -q."""
        if not self.quiet:
            self._clear_bar_line()
            click.echo(message, err=True)

    def _clear_bar_line(self) -> None:
        if self._bar is not None:
            click.echo("\r\033[K", nl=False, err=True)


def import_plugin(name: str, what: str) -> Any:
    module = f"handseg_plugins.{name}"
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name and not module.startswith(exc.name):
            raise Failure(f"{what} needs the Python module {exc.name!r}, which is not installed") from None
        raise Failure(f"{what} is not available in this installation ({exc}); reinstall handseg") from None


def plugin_call(name: str, what: str, call: Callable[[Any], Any]) -> Any:
    """`call(handseg_plugins.<name>)`, its errors (the engine's, OSError, ValueError) as
    one-line failures."""
    module = import_plugin(name, what)
    with engine_errors():
        try:
            return call(module)
        except (OSError, ValueError) as exc:
            raise Failure(first_line(exc)) from None
