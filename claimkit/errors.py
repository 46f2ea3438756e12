"""One exception tree for every failure claimkit reports.

Each class maps to one CLI exit code, so the CLI turns any ``ClaimkitError`` into a
single line on stderr and the right status without knowing where it came from::

    try:
        bundle = ClaimBundle.from_json(data)
    except MalformedInputError as e:
        print(e)            # "bundle.predicate.openings[3].nonce: expected 32 bytes"
"""

from __future__ import annotations

__all__ = [
    "ClaimkitError",
    "MalformedInputError",
    "OracleError",
    "VerificationError",
    "RegistryError",
    "InconsistentLogError",
    "KeyFileError",
    "DataMissingError",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_MALFORMED",
]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_MALFORMED = 2


class ClaimkitError(Exception):
    """Root of every error claimkit raises on purpose."""

    exit_code = EXIT_MALFORMED


class MalformedInputError(ClaimkitError):
    """Input that cannot be parsed or is out of bounds; names the offending field."""

    exit_code = EXIT_MALFORMED


class OracleError(MalformedInputError):
    """A suspect that cannot be queried: an endpoint that times out or answers garbage,
    a model file its runtime refuses, a runtime that is not installed."""


class ControlError(MalformedInputError):
    """An arbiter's control model that cannot answer a bundle's queries (another task,
    shape or class count): the arbiter's argument is at fault, not the bundle."""


class KeyFileError(MalformedInputError):
    """A key file that cannot be opened: wrong passphrase, wrong format, bad mode.

    A subclass of ``MalformedInputError`` because a truncated or tampered key file is
    bad input like any other: a caller catching that class must not miss it.
    """


class DataMissingError(ClaimkitError):
    """A data set or file that is not on disk; says which file and how to get it."""

    exit_code = EXIT_MALFORMED


class VerificationError(ClaimkitError):
    """A well-formed object that fails a check: bad signature, proof or statistic."""

    exit_code = EXIT_REJECTED


class RegistryError(ClaimkitError):
    """A registry operation that cannot be carried out (bad state, refused entry)."""

    exit_code = EXIT_REJECTED


class InconsistentLogError(VerificationError):
    """Two checkpoints of one log that cannot both be honest: a fork or a rollback.

    This is evidence of log misbehaviour, so it carries both checkpoints' texts.
    """

    def __init__(self, message: str, *, seen: str = "", presented: str = "") -> None:
        super().__init__(message)
        self.seen = seen
        self.presented = presented
