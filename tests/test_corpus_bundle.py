"""scripts/corpus_bundle.py: a corpus packed as Opus and unpacked elsewhere is the same corpus, smaller."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SCRIPT = Path(__file__).parents[1] / "scripts" / "corpus_bundle.py"


@pytest.fixture(scope="module")
def bundle_tool():
    spec = importlib.util.spec_from_file_location("corpus_bundle", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["corpus_bundle"] = module  # its worker processes pickle functions by module name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["corpus_bundle"]


def _wavs(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.wav")}


def test_round_trip_keeps_layout_lengths_and_word_places(bundle_tool, fake_corpus, tmp_path):
    info = bundle_tool.pack(fake_corpus, tmp_path / "c.tgz", jobs=2)
    out = tmp_path / "unpacked"
    assert bundle_tool.unpack(tmp_path / "c.tgz", out, jobs=2) == info["clips"]

    test = set((fake_corpus / "testing_list.txt").read_text().split())
    assert test and info["left_out_test"] == len(test)
    assert _wavs(out) == _wavs(fake_corpus) - test  # everything but the test split
    assert (out / "testing_list.txt").read_text() == ""
    for name in ("validation_list.txt", "_meta_/clips.jsonl"):
        assert (out / name).read_text() == (fake_corpus / name).read_text()
    assert info["bundle_mb"] < info["wav_mb"] / 4

    records = [json.loads(line) for line in (out / "_meta_/clips.jsonl").read_text().splitlines()]
    checked = 0
    for record in records:
        if not record.get("words") or record["path"] in test:
            continue
        original, rate = sf.read(fake_corpus / record["path"], dtype="float32")
        copy, rate2 = sf.read(out / record["path"], dtype="float32")
        assert rate2 == rate and len(copy) == len(original)
        lo = int(record["words"][0]["start"] * rate)
        hi = int(record["words"][-1]["end"] * rate)
        assert np.corrcoef(original[lo:hi], copy[lo:hi])[0, 1] > 0.9, record["path"]  # same sound, same place
        margin = int((bundle_tool.MARGIN_S + 0.01) * rate)
        assert not copy[: max(0, lo - margin)].any()  # only the speech and its margin were kept
        checked += 1
    assert checked >= 20
    noises = sorted((out / "_background_noise_").glob("*.wav"))
    assert noises
    for path in noises:  # no word times: kept whole
        copy, rate = sf.read(path, dtype="float32")
        assert np.abs(copy[: rate // 10]).max() > 0 and np.abs(copy[-rate // 10 :]).max() > 0


def test_with_test_packs_everything(bundle_tool, fake_corpus, tmp_path):
    bundle_tool.pack(fake_corpus, tmp_path / "c.tgz", with_test=True, jobs=1)
    out = tmp_path / "unpacked"
    bundle_tool.unpack(tmp_path / "c.tgz", out, jobs=1)
    assert _wavs(out) == _wavs(fake_corpus)
    assert (out / "testing_list.txt").read_text() == (fake_corpus / "testing_list.txt").read_text()


def test_refuses_a_folder_that_is_not_a_corpus(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "pack", str(tmp_path), str(tmp_path / "x.tgz")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode != 0 and "not a corpus" in done.stderr
    assert not (tmp_path / "x.tgz").exists()
