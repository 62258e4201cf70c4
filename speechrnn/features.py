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

import numpy as np
import torch
import torchaudio
from torch import nn

from .featureconfig import FeatureConfig  # in a torch-free module: the ONNX live path reads it

DB_PER_NEPER = 10.0 / math.log(10.0)  # librosa's dB-scaled MFCCs are ours times this
CPU_SAMPLES_PER_CALL = 1 << 18  # audio samples per transform call on the CPU (16 one-second clips)


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
