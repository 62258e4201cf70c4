"""scripts/remote_finetune.sh: fine-tunes side by side from a corpus bundle and brings back slim ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechrnn.checkpoint import load_model, read_checkpoint

ROOT = Path(__file__).parents[1]


def _run(fake_corpus, tmp_path, **env) -> subprocess.CompletedProcess:
    bundle = tmp_path / "corpus.tgz"
    subprocess.run([sys.executable, "scripts/corpus_bundle.py", "pack", str(fake_corpus), str(bundle), "--jobs", "2"],
                   cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    env = os.environ | {
        "PY": sys.executable, "BUNDLE": str(bundle), "CORPUS": str(tmp_path / "corpus"),
        "OUT_DIR": str(tmp_path / "out"), "WORK": str(tmp_path / "work"), "RUNS": "3:1e-4 4:2e-4",
        "MINUTES": "0.05", "DEVICE": "cpu", "WORKERS": "1", "BATCH": "8", "STREAMS": "8",
        "WHEELS": str(tmp_path / "no-wheels"),
    } | env  # fmt: skip
    done = subprocess.run(
        ["bash", "scripts/remote_finetune.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.slow
def test_two_runs_from_a_bundle_write_their_ends_without_optimiser_state(fake_corpus, tmp_path):
    done = _run(fake_corpus, tmp_path)
    out = tmp_path / "out"
    for seed, lr in (("3", 1e-4), ("4", 2e-4)):
        end = out / f"seed{seed}.end.pt"
        ckpt = read_checkpoint(end)
        assert "optimizer" not in ckpt["train"]  # weights, config and history only
        assert ckpt["train"]["config"]["seed"] == int(seed) and ckpt["train"]["config"]["lr"] == lr
        assert ckpt["train"]["progress"]["history"], "no epoch was recorded"
        assert (out / f"seed{seed}.log").read_text().strip()
        model = load_model(end)
        assert all(torch.isfinite(p).all() for p in model.parameters())
        assert f"seed{seed}: " in done.stdout
    assert end.stat().st_size < (tmp_path / "work/seed4/model.last.pt").stat().st_size / 2


def test_a_missing_bundle_is_a_clear_error(tmp_path):
    env = os.environ | {"PY": sys.executable, "BUNDLE": str(tmp_path / "none.tgz"),
                        "CORPUS": str(tmp_path / "corpus"), "OUT_DIR": str(tmp_path / "out"),
                        "WHEELS": str(tmp_path / "no-wheels")}  # fmt: skip
    done = subprocess.run(
        ["bash", "scripts/remote_finetune.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert f"no corpus at {tmp_path / 'corpus'} and no bundle at {tmp_path / 'none.tgz'}" in done.stderr


@pytest.mark.slow
def test_init_none_trains_from_scratch(fake_corpus, tmp_path):
    """A fresh model, not the shipped one: its normalisation is the fake corpus's own."""
    _run(fake_corpus, tmp_path, INIT="none", RUNS="5:1e-3")
    fresh, shipped = load_model(tmp_path / "out/seed5.end.pt"), load_model(ROOT / "speechrnn/assets/model.pt")
    assert not torch.equal(fresh.feat_mean, shipped.feat_mean)
