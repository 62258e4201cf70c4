"""Generated background noise."""

import numpy as np

from speechrnn import noise


def test_noises():
    rng = np.random.default_rng(0)
    n = 16000
    for name, make in noise.PLAIN_NOISES.items():
        x = make(n, rng)
        assert x.shape == (n,) and x.dtype == np.float32 and np.isfinite(x).all(), name
        assert abs(20 * np.log10(np.sqrt(np.mean(x**2))) - noise.NOISE_RMS_DB) < 1.0, name
    talk = [np.sin(np.arange(8000) * 0.1 * (k + 1)) for k in range(3)]
    assert noise.babble(n, rng, talk).shape == (n,)
