"""The errors a user can act on, in one place: every stage script prints them as one line and
exits 2 (alexnet.cli.run_stage). Classes only; no module of the package is imported here."""

from __future__ import annotations


class PipelineError(RuntimeError):
    """An error the user can act on (missing input, bad data); printed without a traceback."""


class ConfigError(ValueError):
    """A param is unknown, of the wrong type, or has an impossible value."""


class UnsafeArchiveError(ValueError):
    """A tar member that could escape its folder or is not a plain file or folder."""


class ChecksumError(ValueError):
    """A file's checksum differs from the expected one."""


class ArchiveError(ValueError):
    """An archive is damaged (cut short, not a tar, bad compression); the message names it and the member."""


class DiskFullError(OSError):
    """No space left on the device while writing an output; the message names the file."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message alone, without OSError's "[Errno 28]" prefix


# What run_stage prints as one line (FileNotFoundError: a missing input named by the OS).
USER_ERRORS = (ConfigError, ChecksumError, UnsafeArchiveError, ArchiveError, PipelineError, FileNotFoundError,
               DiskFullError)

__all__ = ["ArchiveError", "ChecksumError", "ConfigError", "DiskFullError", "PipelineError", "USER_ERRORS",
           "UnsafeArchiveError"]
