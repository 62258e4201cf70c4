"""speechrnn: a speech command recogniser with a streaming bidirectional GRU."""

from .audio import SAMPLE_RATE, load_audio, read_blocks
from .checkpoint import load_model
from .errors import SpeechRNNError
from .features import FeatureConfig, mfcc
from .transcribe import Transcription, transcribe  # the function shadows the module, as in whisper

__version__ = "0.1.0"

__all__ = [
    "SAMPLE_RATE",
    "FeatureConfig",
    "SpeechRNNError",
    "Transcription",
    "load_audio",
    "load_model",
    "mfcc",
    "read_blocks",
    "transcribe",
]
