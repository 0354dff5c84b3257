"""Errors with the offending file in the message, so users never get a bare library traceback."""

from __future__ import annotations

from pathlib import Path


class BanaError(Exception):
    """Base class of every error bana_core raises on purpose."""


class DataError(BanaError, ValueError):
    """A data file is missing, unreadable or inconsistent. The message names the file."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class ChecksumError(DataError):
    """A downloaded file does not have its published digest."""

    def __init__(self, path: str | Path, expected: str, actual: str):
        self.expected, self.actual = expected, actual
        super().__init__(path, f"MD5 mismatch: expected {expected}, got {actual}")


class UnsafeArchiveError(DataError):
    """An archive member would land outside the extraction folder."""


class ConfigError(BanaError, ValueError):
    """A configuration value is invalid; the message names the key."""
