"""Shared fixtures: tiny synthetic corpora and audio, so no test downloads anything."""

from __future__ import annotations

import pytest
import torch
from fakecorpus import make_fake_corpus  # tests/ is on sys.path (pytest rootdir conftest)

# The models under test are small: one thread avoids OpenMP synchronisation costs that dominate small ops
# (measured 9x slower tanh with 2 threads on a busy 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fake_corpus(tmp_path_factory):
    """A tone-based fake Speech Commands corpus (12 words, 6 speakers, phrases, unknown, sentences)."""
    return make_fake_corpus(tmp_path_factory.mktemp("fake_corpus"))
