"""Errors that end a command with one clear line on stderr."""

from __future__ import annotations


class CertwrightError(Exception):
    """Base of every error the CLI reports as a single line and a non-zero exit."""

    exit_code = 1


class ConfigError(CertwrightError):
    """Bad command-line input, a bad option value or an unreadable config file. Exit code
    1 as in Certbot; 2 stays with what the argument parser itself rejects."""


class UsageError(ConfigError):
    """What Certbot's argument parser rejects (an unknown option or verb, a value its type
    or choices refuse, a missing value), or a count that makes no sense
    (``rollback --checkpoints -1``): exit code 2, as argparse's own."""

    exit_code = 2


class PluginError(CertwrightError):
    """An authenticator or installer could not do what was asked."""


class StorageError(CertwrightError):
    """The certificate store could not be read or written."""


class LockError(StorageError):
    """Another certwright process holds the store's lock."""
