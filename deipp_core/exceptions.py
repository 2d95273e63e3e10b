"""Domain errors raised by deipp_core.

Every error says what was wrong, where (file or BIDS entity) and what to do about it. They derive
from built-in exceptions so that callers can catch them generically.
"""

from __future__ import annotations

__all__ = [
    "DeippError",
    "DataFormatError",
    "DataLayoutError",
    "AllFramesCensoredError",
    "ParameterError",
]


class DeippError(Exception):
    """Base class of every error deipp_core raises on purpose."""


class DataFormatError(DeippError, ValueError):
    """A data file exists but its content is not what the study's layout expects."""


class DataLayoutError(DeippError, FileNotFoundError):
    """A file or folder the layout requires is missing, or one it forbids is present."""


class AllFramesCensoredError(DataFormatError):
    """Censoring (or trimming) leaves too few frames in a run to form the required bins."""


class ParameterError(DeippError, ValueError):
    """A user-supplied parameter (CLI option, notebook parameter, function argument) is invalid."""
