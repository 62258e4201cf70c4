"""MFCC features that are the same whether a clip is computed whole or in chunks.

torchaudio's default MFCC converts mel power to dB clamped 80 dB below the loudest frame of whatever it is
given, so a chunk and the whole clip disagree. We use natural-log mel energies (`log_mels=True`) and no
centre padding (`center=False`): each frame then depends only on its own 512 samples, and a streaming caller
that carries the last `context_samples` samples between chunks gets exactly the offline frames.

Relation to librosa: `librosa.feature.mfcc(S=librosa.power_to_db(M))` uses 10*log10 where we use ln, so
librosa's coefficients are ours times `10 / ln(10)` (with `htk=True`, `norm=None` mel filters and
`center=False`), apart from the floor of the log: ln(x + 1e-6) here, 10*log10(max(x, 1e-10)) there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torchaudio
from torch import nn

from .audio import SAMPLE_RATE

DB_PER_NEPER = 10.0 / math.log(10.0)  # librosa's dB-scaled MFCCs are ours times this
CPU_SAMPLES_PER_CALL = 1 << 18  # audio samples per transform call on the CPU (16 one-second clips)


@dataclass(frozen=True)
class FeatureConfig:
    """MFCC settings. They are part of a model's identity and are stored in every checkpoint."""

    sample_rate: int = SAMPLE_RATE  # Hz of the input audio
    win_ms: float = 25.0  # analysis window length
    hop_ms: float = 10.0  # frame shift: 100 frames a second
    n_fft: int = 512  # FFT size (window zero-padded to it)
    n_mels: int = 40  # mel bands
    n_mfcc: int = 40  # cepstral coefficients kept (all of them: the GRU learns what to ignore)
    f_min: float = 20.0  # lowest mel filter edge, Hz
    f_max: float = 7600.0  # highest mel filter edge, Hz (below Nyquist, where telephone-like channels cut)

    def __post_init__(self) -> None:
        # torch.stft would fail later, deep in a forward pass, on most of these.
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"window of {self.win_length} samples must fit in n_fft={self.n_fft}")
        if self.hop_length <= 0:
            raise ValueError(f"hop of {self.hop_ms} ms is {self.hop_length} samples, expected at least 1")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            nyquist = self.sample_rate / 2
            raise ValueError(
                f"expected 0 <= f_min < f_max <= {nyquist:g} Hz, got {self.f_min:g}, {self.f_max:g}"
            )
        if not 0 < self.n_mfcc <= self.n_mels:
            raise ValueError(f"expected 0 < n_mfcc <= n_mels = {self.n_mels}, got n_mfcc = {self.n_mfcc}")

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def frame_span(self) -> int:
        """Samples one frame reads: the FFT size (the window sits zero-padded in its middle)."""
        return max(self.n_fft, self.win_length)

    @property
    def context_samples(self) -> int:
        """Samples a streaming caller must carry from one chunk to the next."""
        return self.frame_span - self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames produced from `num_samples` samples (0 if shorter than one frame)."""
        if num_samples < self.frame_span:
            return 0
        return 1 + (num_samples - self.frame_span) // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


class MFCC(nn.Module):
    """Batched MFCC: `(batch, samples)` float audio -> `(batch, frames, n_mfcc)` features."""

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        super().__init__()
        self.config = config
        self.transform = torchaudio.transforms.MFCC(
            sample_rate=config.sample_rate,
            n_mfcc=config.n_mfcc,
            dct_type=2,
            norm="ortho",
            log_mels=True,
            melkwargs=dict(
                n_fft=config.n_fft,
                win_length=config.win_length,
                hop_length=config.hop_length,
                f_min=config.f_min,
                f_max=config.f_max,
                n_mels=config.n_mels,
                center=False,
                power=2.0,
                mel_scale="htk",
                norm=None,
            ),
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio `(batch, samples)` or `(samples,)` -> `(batch, frames, n_mfcc)` or `(frames, n_mfcc)`."""
        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio.unsqueeze(0)
        frames = self.config.num_frames(audio.shape[-1])
        if frames == 0:
            out = audio.new_zeros(audio.shape[0], 0, self.config.n_mfcc)
        elif audio.device.type == "cpu":
            # Batches the size of the cache: one transform over a whole large batch runs ~3x slower.
            per_call = max(1, CPU_SAMPLES_PER_CALL // audio.shape[-1])
            out = torch.cat([self.transform(part) for part in audio.split(per_call)]).transpose(1, 2)
        else:
            out = self.transform(audio).transpose(1, 2)  # (batch, frames, n_mfcc)
        return out[0] if squeeze else out


_CACHE: dict[FeatureConfig, MFCC] = {}


def mfcc(audio: np.ndarray | torch.Tensor, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """MFCC of a clip `(samples,)` or a batch `(batch, samples)` -> `(..., frames, n_mfcc)` float32 tensor."""
    if config not in _CACHE:
        _CACHE[config] = MFCC(config)
    x = torch.as_tensor(audio, dtype=torch.float32)
    with torch.no_grad():
        return _CACHE[config].to(x.device)(x)


def frame_lengths(num_samples: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Valid frame counts of padded clips, from their sample counts (vectorised `num_frames`)."""
    n = (num_samples - config.frame_span).div(config.hop_length, rounding_mode="floor") + 1
    return n.clamp(min=0)


class StreamingMFCC:
    """Turns audio chunks of any size into the same frames `mfcc` gives for the whole signal.

    Carries the samples that the next frame still needs (at most one window), so per-chunk work is
    proportional to the chunk.
    """

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        self.config = config
        self._module = MFCC(config)
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float32)

    def __call__(self, chunk: np.ndarray) -> torch.Tensor:
        """Args: chunk `(samples,)` float audio. Returns `(frames, n_mfcc)`, possibly zero frames."""
        buf = np.concatenate([self._buffer, np.asarray(chunk, dtype=np.float32)])
        n = self.config.num_frames(buf.size)
        if n == 0:
            self._buffer = buf
            return torch.zeros(0, self.config.n_mfcc)
        used = (n - 1) * self.config.hop_length + self.config.frame_span
        with torch.no_grad():
            frames = self._module(torch.from_numpy(buf[:used]))
        self._buffer = buf[n * self.config.hop_length :]
        return frames


def librosa_mfcc(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The same MFCC computed by librosa, in librosa's dB units: `(n_mfcc, frames)` for `(samples,)` input,
    `(clips, n_mfcc, frames)` for `(clips, samples)`. A slow reference for tests and benchmarks; divide by
    `DB_PER_NEPER` to compare with `mfcc`.

    Three calls, not `librosa.feature.mfcc(y=...)` alone: that one passes its `norm` to the DCT, so the mel
    filters would keep librosa's Slaney normalisation, and it floors the dB at 80 below the peak.
    """
    import librosa

    mel_power = librosa.feature.melspectrogram(
        y=audio,
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window="hann",
        center=False,
        power=2.0,
        n_mels=config.n_mels,
        fmin=config.f_min,
        fmax=config.f_max,
        htk=True,
        norm=None,
    )
    db = librosa.power_to_db(mel_power, top_db=None)
    return librosa.feature.mfcc(S=db, n_mfcc=config.n_mfcc, dct_type=2, norm="ortho")
