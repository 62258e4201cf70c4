"""The streaming step of an exported ONNX file (`speechrnn export`), run with onnxruntime: `OnnxStep`.

The graph computes one latency-controlled chunk from raw audio (see `export.py`); `OnnxStep` is the step of
`step.py` over it, running the graph once per chunk (and, at a stream's end, over zero-padded windows,
telling the graph how many frames are real). `recognizer.StreamingRecognizer` runs it on a stream, exactly
as it runs `streaming.TorchStep`: step for step the same outputs, to float tolerance.

Torch-free: this module, the recogniser and the spotter need numpy and onnxruntime only, so a small device
runs `speechrnn listen --onnx` without PyTorch. The file's metadata (`read_metadata`) describes everything
else: feature settings, labels, vocabulary, chunk and look-ahead, the pooling window.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .errors import SpeechRNNError
from .featureconfig import FeatureConfig
from .step import StepOutput, StepShape
from .vocab import VOCAB

FORMAT = "speechrnn-onnx-step"
VERSION = 3  # 2: adds the c0 output (the live pause reset reads it); 3: c0 covers the look-ahead frames too
META_KEY = "speechrnn"  # metadata_props key holding the JSON description
INPUTS = ("audio", "frames", "state")
OUTPUTS = ("ctc_log_probs", "attn_logits", "label_logits", "state_out", "c0")


def parse_metadata(props: dict[str, str], source: str = "ONNX file") -> dict:
    """Validate the JSON description found in a file's metadata_props (a key -> value mapping)."""
    if META_KEY not in props:
        raise SpeechRNNError(f"{source}: not a speechrnn streaming-step ONNX file (no {META_KEY!r} metadata)")
    try:
        meta = json.loads(props[META_KEY])
    except json.JSONDecodeError as err:
        raise SpeechRNNError(f"{source}: its {META_KEY!r} metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SpeechRNNError(f"{source}: metadata format is not {FORMAT!r}")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise SpeechRNNError(
            f"{source}: file version {meta.get('version')} is newer than this speechrnn reads ({VERSION})"
        )
    if meta["version"] < VERSION:
        raise SpeechRNNError(
            f"{source}: exported by an older speechrnn (file version {meta['version']}, this one writes "
            f"{VERSION}); export it again with `speechrnn export`"
        )
    if list(meta.get("vocab", [])) != list(VOCAB):
        raise SpeechRNNError(
            f"{source}: its CTC vocabulary differs from this speechrnn's ({len(VOCAB)} symbols)"
        )
    return meta


def load_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session for `path`, with `threads` intra-op threads and no inter-op parallelism."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise SpeechRNNError("running an ONNX model needs onnxruntime: pip install onnxruntime") from None
    path = Path(path)
    if not path.is_file():
        raise SpeechRNNError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own pybind error types for unreadable models
        raise SpeechRNNError(f"{path}: onnxruntime cannot load it ({type(err).__name__}: {err})") from None


class OnnxStep:
    """The step of an exported file (see `step.py` for the contract). Its chunk and look-ahead are fixed in it.

    Args:
        path: the .onnx file written by `speechrnn export`.
        threads: onnxruntime intra-op threads (1: one core, the setting for live use).

    Raises:
        SpeechRNNError: a missing file, one that is not a speechrnn step, or no onnxruntime.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        self.path = Path(path)
        self.session = load_session(self.path, threads)
        meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, str(self.path))
        self.metadata = meta
        self.shape = StepShape(**meta["step"])
        self.features = FeatureConfig(**meta["feature_config"])
        self.labels, self.vocab = tuple(meta["labels"]), tuple(meta["vocab"])
        self.thresholds = meta.get("thresholds", {})  # the model's per-keyword table (`check_thresholds`)
        self.window = int(meta["window"])
        self.quantized = bool(meta.get("quantized"))
        self._state_shape = tuple(meta["state_shape"])
        self._outputs = list(OUTPUTS)

    def init_state(self) -> np.ndarray:
        return np.zeros(self._state_shape, dtype=np.float32)

    def __call__(self, audio: np.ndarray, state: np.ndarray) -> tuple[StepOutput, np.ndarray]:
        """One step: whole chunks and their look-ahead, or a stream's tail (`step.py`); one graph run a chunk."""
        shape = self.shape
        audio = np.asarray(audio, dtype=np.float32)
        own = shape.chunk * shape.stride
        parts, c0 = [], []
        if audio.size >= shape.samples:
            chunks, extra = divmod(audio.size - shape.samples, shape.advance)
            if extra:
                raise SpeechRNNError(
                    f"a step takes whole chunks ({shape.samples} + k * {shape.advance} samples), "
                    f"got {audio.size}"
                )
            for k in range(chunks + 1):
                window = audio[k * shape.advance : k * shape.advance + shape.samples]
                *outs, state, frame_c0 = self._run(window, shape.frames, state)
                parts.append(outs)
                c0.append(frame_c0 if k == chunks else frame_c0[:own])  # the last chunk's look-ahead too
        else:  # the tail: zero-padded windows, with the number of real frames
            frames = self.features.num_frames(audio.size)
            while frames > 0:
                window = np.zeros(shape.samples, dtype=np.float32)
                have = min(audio.size, window.size)
                window[:have] = audio[:have]
                valid = min(frames, shape.frames)
                steps = min(shape.chunk, math.ceil(valid / shape.stride))
                *outs, state, frame_c0 = self._run(window, valid, state)
                parts.append([o[:steps] for o in outs])
                c0.append(frame_c0[: min(valid, own)])
                audio = audio[shape.advance :]
                frames -= own
        ctc, attn, labels = (np.concatenate(p) for p in zip(*parts, strict=True))
        return StepOutput(ctc, attn, labels, np.concatenate(c0)), state

    def _run(self, window: np.ndarray, frames: int, state: np.ndarray) -> list[np.ndarray]:
        """One graph run: `[ctc_log_probs, attn_logits, label_logits, state_out, c0]`."""
        feeds = {"audio": window, "frames": np.array(frames, dtype=np.int64), "state": state}
        return self.session.run(self._outputs, feeds)
