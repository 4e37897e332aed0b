"""Errors an operator can act on.

Every error memtui raises on purpose carries a one-line message that says what
went wrong, where, and how to fix it; the CLI prints it without a traceback and
exits with ``exit_code``.
"""

from __future__ import annotations


class MemtuiError(Exception):
    """Base class: a one-line, actionable message and an exit code."""

    exit_code = 1


class UsageError(MemtuiError):
    """Bad input, configuration or command-line usage (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """An invalid setting, from a flag, an environment variable or a config file."""


class InputError(UsageError):
    """The input file is missing, unreadable or malformed."""


class StoreError(UsageError):
    """The cache file cannot be opened, written, or belongs to another model."""


class ModelError(UsageError):
    """The embedding model cannot be found or loaded."""


class RuntimeFailure(MemtuiError):
    """The run could not go on for a reason outside the input: disk full, I/O error (exit 1)."""


class ResourceError(MemtuiError):
    """The machine or container cannot hold the job at all, e.g. a memory limit below what the model needs (exit 1)."""

    exit_code = 1
