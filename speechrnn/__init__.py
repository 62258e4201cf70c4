"""speechrnn: a speech command recogniser with a streaming bidirectional GRU."""

import importlib
import sys
import types

from .errors import SpeechRNNError

__version__ = "0.1.0"

# The public names, each imported from its module on first use: `speechrnn --help` and the command line's
# checks of its options then run without importing torch.
_LAZY = {
    "SAMPLE_RATE": "audio",
    "load_audio": "audio",
    "read_blocks": "audio",
    "load_model": "checkpoint",
    "FeatureConfig": "features",
    "mfcc": "features",
    "Transcription": "transcribe",
    "transcribe": "transcribe",  # the function shadows the module, as in whisper
}

__all__ = ["SpeechRNNError", *sorted(_LAZY, key=str.lower)]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        # Importing the submodule `speechrnn.transcribe` sets this attribute to the module; keep the function.
        if not (name == "transcribe" and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
