"""speechrnn: a speech command recogniser with a streaming bidirectional GRU.

Names are imported on first use, so that the ONNX live path (`spot(..., onnx=...)`, `listen --onnx`) runs
with numpy and onnxruntime alone: torch is imported only by what needs it.
"""

import importlib
import sys
import types

__version__ = "0.1.0"

_WHERE = {  # public name -> the module that defines it
    "SAMPLE_RATE": "audio",
    "load_audio": "audio",
    "read_blocks": "audio",
    "SpeechRNNError": "errors",
    "FeatureConfig": "featureconfig",
    "mfcc": "features",
    "load_model": "checkpoint",
    "Transcription": "transcribe",
    "transcribe": "transcribe",
    "Detection": "spotter",
    "KeywordListener": "live",
    "open_step": "live",
    "spot": "live",
    "StreamingRecognizer": "recognizer",
}

__all__ = sorted(_WHERE)


def _resolve(name: str):
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


class _Package(types.ModuleType):
    # `transcribe` names both a function and its module: importing the module sets the package attribute,
    # so the function is a property that ignores that assignment (the eager `from .transcribe import
    # transcribe` of a plain package gave the same result).
    transcribe = property(lambda self: _resolve("transcribe"), lambda self, value: None)

    def __getattr__(self, name: str):
        if name not in _WHERE:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = _resolve(name)
        setattr(self, name, value)
        return value

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(_WHERE))


sys.modules[__name__].__class__ = _Package
