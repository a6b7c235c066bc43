"""The one exception type users see: an expected problem with their input, stated in one sentence.

The CLI prints these without a traceback and exits with status 2; anything else is a bug and keeps its traceback.
"""


class PaperkdError(Exception):
    """An expected, user-fixable problem (bad file, bad value, missing weights). The message names the file or value."""


class DataError(PaperkdError):
    """A dataset folder or file is missing, unreadable or malformed."""


class ConfigError(PaperkdError, ValueError):
    """A configuration value is not allowed; the message lists the allowed values."""
