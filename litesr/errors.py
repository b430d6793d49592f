"""User-facing errors: one line that names the file and the problem; the CLI prints it and exits non-zero."""

from __future__ import annotations


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
