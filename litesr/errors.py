"""User-facing errors: one line that names the file and the problem; the CLI prints it and exits non-zero."""

from __future__ import annotations

import re


class LitesrError(Exception):
    """An error caused by the user's input (file, option, config), reported as one line without a traceback."""


class ImageError(LitesrError):
    """An image file cannot be read or written."""


class CheckpointError(LitesrError):
    """A checkpoint cannot be read, is unsafe to read, or does not match the architecture."""


class ConfigError(LitesrError):
    """A model, training or evaluation option is invalid."""


class DatasetError(LitesrError):
    """A dataset folder is missing, empty or laid out in a way litesr does not understand."""


# CSI sequences (colours, bold: torch's unpickling errors carry ``ESC[1m``), other escapes, control characters.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


def clean_message(text: str) -> str:
    """``text`` as one printable line: escape codes and control characters removed, line breaks joined."""
    lines = [line.strip() for line in _ESCAPES.sub("", text.replace("\r", "\n")).split("\n")]
    return " ".join(line for line in lines if line)
