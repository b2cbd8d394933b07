"""The one error the lesson raises: a network asked for what it cannot do (a numerical gradient of float32
parameters, a device that is not there, arguments that do not fit together). The tool around the lesson
reports it as one line, like its own errors; a student's script sees an ordinary exception."""


class NetworkError(ValueError):
    """The message says what was asked and why it cannot be done."""
