"""Live keyword spotting as a library: blocks of audio in, detections out (`speechrnn.spot`).

The top layer of the live path. `open_step` loads a backend (a checkpoint's `TorchStep` or an exported
`OnnxStep`); `KeywordListener` runs one stream through a `StreamingRecognizer` and the spotters, block by
block, and says what each block produced (for a display: detections, keyword scores, input level); `spot` is
the plain iterator over it.

Three spotters read the recogniser's outputs: the label head's (`spotter.KeywordSpotter`, the trained command
words), the CTC head's (`kws.CTCKeywordSpotter`, any word spelled a-z) and the beam search's
(`search_spotter.SearchSpotter`, the trained command words among common English words, confirmed by the
label head). `DECIDE` says how a trained command word is decided: by the label head alone, the CTC path
alone, the CTC path confirmed by the label head, either, or the search; a keyword outside the model's labels
is always the CTC path's. `speechrnn listen` and `speechrnn serve` only display what these give.
The blocks may come from anywhere: a microphone, a file, a socket.

Torch-free with an ONNX step: torch is imported only to load a checkpoint, or for the search (its decoder).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE
from .config import DECIDE, DECISIONS, END_SILENCE_S, RESET_AFTER_SILENCE_MS, SearchConfig
from .errors import SpeechRNNError
from .kws import CTCKeywordSpotter, KeywordConfig
from .latency import LIVE
from .recognizer import StreamingRecognizer, StreamOutput
from .spotter import NON_KEYWORDS, Detection, KeywordSpotter, SpotterConfig
from .step import Step

SILENT_DBFS = -120.0  # the level reported for an empty block
CONFIRM_S = 1.0  # "both": the label head must have given the keyword this recently ...
CONFIRM_PROB = 0.2  # ... at least this smoothed probability
SAME_EVENT_S = 0.6  # "either": a second event of the same keyword this soon is the same word


def open_step(
    model: str | os.PathLike | Any | None = None,
    onnx: str | os.PathLike | None = None,
    chunk_ms: float = LIVE.chunk_ms,
    lookahead_ms: float = LIVE.lookahead_ms,
    threads: int = 1,
) -> Step:
    """The step backend for a checkpoint or an exported ONNX file.

    Args:
        model: a checkpoint path (None: the model shipped with the package), a loaded `Recognizer`, or a step
            already made (returned as it is).
        onnx: an exported step (`speechrnn export`) to run with onnxruntime instead; its chunk and look-ahead
            are fixed in the file (`chunk_ms`, `lookahead_ms` are then ignored). Imports no torch.
        chunk_ms, lookahead_ms: latency control of a checkpoint's step (multiples of its 20 ms step).
        threads: onnxruntime intra-op threads.

    Raises:
        SpeechRNNError: both a model and an ONNX file; a bad checkpoint, file or setting.
    """
    if onnx is not None:
        if model is not None:
            raise SpeechRNNError("give a checkpoint (--model) or an exported ONNX step (--onnx), not both")
        from .onnx_runner import OnnxStep

        return OnnxStep(onnx, threads=threads)
    if hasattr(model, "shape") and hasattr(model, "init_state"):
        return model  # a step already
    from .checkpoint import load_model
    from .streaming import TorchStep

    net = load_model(model) if model is None or isinstance(model, str | os.PathLike) else model
    return TorchStep(net, chunk_ms, lookahead_ms)


@dataclass(frozen=True)
class Heard:
    """What one block of audio produced."""

    detections: tuple[Detection, ...]  # keywords decided by this block, in order
    output: StreamOutput  # the steps it finalised: ready times, pooled label logits, CTC, c0 energy
    scores: dict[str, float]  # each keyword's highest smoothed probability over those steps (0 if none)
    level_db: float  # RMS level of the block, dBFS
    samples: int  # samples heard so far in the stream


class KeywordListener:
    """One stream's recogniser and spotter: `accept` a block, get what it produced; `finish` at the end.

    Args:
        step: the backend (`open_step`); one step serves any number of listeners.
        keywords: the keywords to spot: trained command words, or any word or short phrase spelled a-z
            (the CTC path's). None: every command word the model was trained on.
        threshold: the score every keyword must reach (None: the model's per-keyword table where it has
            one for the decision, else the decision's default).
        reset_after_silence_ms: forget the recurrent state after this long a pause (see
            `StreamingRecognizer`); None never resets.
        config: the spotter's other settings (`keywords` and `threshold` override its fields).
        decide: how a trained command word is decided, one of `DECISIONS`.
        ctc_config: the CTC path's settings.
        thresholds: per keyword, overriding the model's table and `threshold`.
        search_config: the search's settings (`decide="search"`).

    Raises:
        SpeechRNNError: a keyword that cannot be spelled; out-of-range settings.
    """

    def __init__(
        self,
        step: Step,
        *,
        keywords: Iterable[str] | None = None,
        threshold: float | None = None,
        reset_after_silence_ms: float | None = RESET_AFTER_SILENCE_MS,
        config: SpotterConfig | None = None,
        decide: str = DECIDE,
        ctc_config: KeywordConfig | None = None,
        thresholds: dict[str, float] | None = None,
        search_config: SearchConfig | None = None,
    ):
        if decide not in DECISIONS:
            raise SpeechRNNError(f"expected a decision rule in {DECISIONS}, got {decide!r}")
        self.recognizer = StreamingRecognizer(step, reset_after_silence_ms=reset_after_silence_ms)
        labels = self.recognizer.labels
        trained = [x for x in labels if x not in NON_KEYWORDS]
        asked = None if keywords is None else tuple(" ".join(k.lower().split()) for k in keywords)
        self.keywords = tuple(trained if asked is None else dict.fromkeys(asked))
        spelled = [k for k in self.keywords if k not in labels]  # open vocabulary: the CTC path's
        label_words = [k for k in self.keywords if k in labels]
        config = config or SpotterConfig()
        config = dataclasses.replace(config, keywords=tuple(label_words) or None)
        if threshold is not None:
            config = dataclasses.replace(config, threshold=threshold)
        self.decide = decide
        table = {} if threshold is not None else getattr(step, "thresholds", {})  # calibrated per keyword
        self.spotter = KeywordSpotter(
            labels, self.recognizer.step_seconds, config, {**table.get("label", {}), **(thresholds or {})}
        )
        ctc_decides = decide not in ("label", "search")  # trained words too (`both`: confirmed)
        ctc_words = spelled + (label_words if ctc_decides else [])
        ctc_config = ctc_config or KeywordConfig()
        if threshold is not None and ctc_decides:
            ctc_config = dataclasses.replace(ctc_config, threshold=threshold)
        self.search = None
        if decide == "search" and label_words:
            from .search_spotter import SearchSpotter

            search_config = search_config or SearchConfig()
            if threshold is not None:
                search_config = dataclasses.replace(search_config, threshold=threshold)
            self.search = SearchSpotter(
                label_words, labels, step.window, self.recognizer.step_seconds, search_config, thresholds
            )
        self.ctc = None
        if ctc_words:
            ctc_table = {k: t for k, t in table.get("ctc", {}).items() if k in ctc_words}
            self.ctc = CTCKeywordSpotter(
                ctc_words, self.recognizer.step_seconds, ctc_config, {**ctc_table, **(thresholds or {})}
            )
        self._label_index = {x: i for i, x in enumerate(labels)}
        self._recent: list[tuple[float, np.ndarray]] = []  # (ready time, smoothed label probabilities)
        self._last: dict[str, float] = {}  # keyword -> time of its last event

    def accept(self, audio: np.ndarray) -> Heard:
        """Feed the next block: `(samples,)` float mono at 16 kHz, any length."""
        return self.hear(self.recognizer.accept(audio), _level_db(audio))

    def finish(self, end_silence_s: float = END_SILENCE_S) -> Heard:
        """End the stream: `end_silence_s` of silence, then every remaining step; ready for a new stream."""
        silence = self.recognizer.accept(np.zeros(round(end_silence_s * SAMPLE_RATE), np.float32))
        samples = self.recognizer.samples
        heard = self.hear(StreamOutput.concat([silence, self.recognizer.flush()]), SILENT_DBFS, samples)
        self.spotter.reset()
        for spotter in (self.ctc, self.search):
            if spotter is not None:
                spotter.reset()
        self._recent, self._last = [], {}
        return heard

    def run(self, blocks: Iterable[np.ndarray], end_silence_s: float = END_SILENCE_S) -> Iterator[Heard]:
        """What each block produced, and at the end of `blocks` what `finish` produced."""
        for block in blocks:
            yield self.accept(block)
        yield self.finish(end_silence_s)

    def hear(self, out: StreamOutput, level_db: float = SILENT_DBFS, samples: int | None = None) -> Heard:
        """Spot in the next outputs of a stream (what `accept` does after the recogniser; for outputs
        computed once and read by several listeners, as a benchmark does)."""
        label_events = self.spotter.update(out)
        probs = self.spotter.scores
        best = probs.max(axis=0) if out.steps else np.zeros(len(self.recognizer.labels))
        scores = {
            k: float(best[self._label_index[k]]) if k in self._label_index else 0.0 for k in self.keywords
        }
        asked = set(self.keywords)
        events = (
            []
            if self.decide in ("ctc", "both", "search")
            else [e for e in label_events if e.keyword in asked]
        )
        if self.search is not None:
            first = self.search.step
            for hit in self.search.update(out.ctc_log_probs, out.label_probs()):
                scores[hit.keyword] = max(scores[hit.keyword], hit.score)
                events.append(
                    Detection(hit.keyword, float(out.ready_seconds[hit.step - first]), hit.score, hit.step)
                )
        if self.ctc is not None:
            first = self.ctc.step
            for hit in self.ctc.update(out.ctc_log_probs):
                i = hit.step - first
                time, trained = float(out.ready_seconds[i]), hit.keyword in self._label_index
                scores[hit.keyword] = max(scores.get(hit.keyword, 0.0), hit.score)
                if (
                    self.decide == "both"
                    and trained
                    and not self._confirmed(hit.keyword, time, probs[: i + 1], out)
                ):
                    continue
                if (
                    self.decide == "either"
                    and trained
                    and time - self._last.get(hit.keyword, -1e9) < SAME_EVENT_S
                ):
                    continue
                events.append(Detection(hit.keyword, time, hit.score, hit.step))
        if self.decide == "either":
            events = [e for e in sorted(events, key=lambda e: e.time) if self._new(e)]
        self._remember(out, probs)
        samples = self.recognizer.samples if samples is None else samples
        return Heard(tuple(sorted(events, key=lambda e: e.time)), out, scores, level_db, samples)

    def _confirmed(self, keyword: str, time: float, probs: np.ndarray, out: StreamOutput) -> bool:
        """The label head gave `keyword` at least `CONFIRM_PROB` within `CONFIRM_S` before `time`."""
        k = self._label_index[keyword]
        recent = [p[k] for t, p in self._recent if t >= time - CONFIRM_S]
        here = probs[out.ready_seconds[: len(probs)] >= time - CONFIRM_S, k] if len(probs) else []
        return max([*recent, *here, 0.0]) >= CONFIRM_PROB

    def _new(self, event: Detection) -> bool:
        """`either`: the first event of a word (one of each spotter may report it)."""
        if event.time - self._last.get(event.keyword, -1e9) < SAME_EVENT_S:
            return False
        self._last[event.keyword] = event.time
        return True

    def _remember(self, out: StreamOutput, probs: np.ndarray) -> None:
        """Keep the last `CONFIRM_S` of smoothed label probabilities, for `both`."""
        if self.decide != "both" or not len(probs):
            return
        self._recent += [(float(t), p) for t, p in zip(out.ready_seconds, probs, strict=True)]
        horizon = self._recent[-1][0] - CONFIRM_S
        self._recent = [(t, p) for t, p in self._recent if t >= horizon]


def _level_db(audio: np.ndarray) -> float:
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    if audio.size == 0:
        return SILENT_DBFS
    return float(20 * np.log10(max(float(np.sqrt(np.mean(np.square(audio)))), 1e-6)))


def spot(
    blocks: Iterable[np.ndarray],
    *,
    model: str | os.PathLike | Any | None = None,
    onnx: str | os.PathLike | None = None,
    keywords: Iterable[str] | None = None,
    threshold: float | None = None,
    chunk_ms: float = LIVE.chunk_ms,
    lookahead_ms: float = LIVE.lookahead_ms,
    reset_after_silence_ms: float | None = RESET_AFTER_SILENCE_MS,
    end_silence_s: float = END_SILENCE_S,
    decide: str = DECIDE,
) -> Iterator[Detection]:
    """Spot keywords in a stream of audio blocks, yielding each detection as soon as it is decided.

    Args:
        blocks: consecutive `(samples,)` float32 mono blocks at 16 kHz, of any sizes (a microphone, a file
            read in blocks, a socket).
        model: a checkpoint path (None: the model shipped with the package), a loaded `Recognizer`, or a step
            (`open_step`).
        onnx: an exported step to run with onnxruntime instead (no torch needed).
        keywords: the keywords to spot: trained command words, or any word or short phrase spelled a-z
            (found by the CTC path). None: every command word the model was trained on.
        threshold: the score a keyword must reach (None: the decision's default).
        chunk_ms, lookahead_ms: latency control of a checkpoint (the presets of `latency.LIVE` by default).
        reset_after_silence_ms: forget the recurrent state after this long a pause; None never resets.
        end_silence_s: silence fed after the last block, so that a word at the very end is decided.
        decide: how a trained command word is decided (`DECISIONS`; see the module docstring).

    Yields:
        `Detection(keyword, time, score, step)`, `time` in seconds from the stream's start.

    Raises:
        SpeechRNNError: a bad model, file, keyword or setting; bad audio in a block.
    """
    step = open_step(model, onnx, chunk_ms, lookahead_ms)
    listener = KeywordListener(
        step,
        keywords=keywords,
        threshold=threshold,
        reset_after_silence_ms=reset_after_silence_ms,
        decide=decide,
    )
    for heard in listener.run(blocks, end_silence_s):
        yield from heard.detections
