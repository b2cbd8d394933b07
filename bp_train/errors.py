"""The project's own error types.

Every mistake a user can make (a bad config, a bad CSV, a missing or foreign model file) is raised as a
`BPTrainError` whose message is one sentence naming the file and the key, line, row or column at fault.
The CLI turns it into a one-line message and exit code 2; a library user can catch it as one type.
"""


class BPTrainError(Exception):
    """Bad input: the message says which file, where in it, and what was expected."""


class ConfigError(BPTrainError):
    """A YAML config, or an override of one, is invalid."""


class DataError(BPTrainError):
    """A data file (CSV or IDX) is missing, malformed or out of range."""


class ModelFileError(BPTrainError):
    """A model file is missing, truncated, foreign or unsafe to load."""


class DivergenceError(BPTrainError):
    """Training produced a NaN or infinite loss."""


class Interrupted(Exception):
    """Ctrl-C during a long command (fit, tune): carries the message that says what was kept and how to go on.
    Not bad input: the CLI ends it with exit code 130."""
