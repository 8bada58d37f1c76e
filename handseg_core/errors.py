"""The exceptions handseg raises. Each message is one line that says what to do."""

from __future__ import annotations


class HandsegError(Exception):
    """Base class of every error handseg raises on purpose."""


class ImageError(HandsegError):
    """An input image cannot be used (missing, corrupt, truncated, too large, wrong type)."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = " ".join(reason.splitlines())  # messages are one line
        super().__init__(f"{source}: {self.reason}")


class ModelError(HandsegError):
    """A model cannot be found or loaded."""


class ChecksumError(ModelError):
    """A model file does not match the checksum recorded for it; it is refused."""


class OptionError(HandsegError, ValueError):
    """An option is out of its range or of the wrong type; the message says what is allowed.

    Also a ValueError, so that code catching the errors of Python's own checks catches it too.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name where it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
