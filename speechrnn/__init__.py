"""speechrnn: a speech command recogniser with a streaming bidirectional GRU."""

from .audio import SAMPLE_RATE, load_audio, read_blocks
from .errors import SpeechRNNError
from .features import FeatureConfig, mfcc

__version__ = "0.1.0"

__all__ = ["SAMPLE_RATE", "FeatureConfig", "SpeechRNNError", "load_audio", "mfcc", "read_blocks"]
