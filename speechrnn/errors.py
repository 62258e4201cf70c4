"""The one exception type users of speechrnn see."""


class SpeechRNNError(Exception):
    """A user-facing failure: bad input, a missing file, an unusable checkpoint.

    The message says what was expected and what was received, and names the file where there is one.
    """
