"""The MFCC settings of a model, in a module of their own so that the torch-free ONNX live path can read them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .audio import SAMPLE_RATE


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
