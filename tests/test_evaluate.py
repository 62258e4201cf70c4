"""`speechrnn eval`: the JSON contract, streaming mode, plots, and clear errors."""

import json

import pytest
import torch

from speechrnn.checkpoint import save_checkpoint
from speechrnn.cli import main
from speechrnn.evaluate import evaluate_model
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.speechcommands import SpeechCommandsDataset
from speechrnn.streaming import latency_steps


@pytest.fixture(scope="module")
def tiny_ckpt(fake_corpus, tmp_path_factory):
    ds = SpeechCommandsDataset(fake_corpus, "train", "12")
    torch.manual_seed(0)
    model = Recognizer(ModelConfig(n_labels=len(ds.labels), hidden=16, layers=1), ds.labels)
    path = tmp_path_factory.mktemp("eval") / "tiny.pt"
    save_checkpoint(path, model)
    return path


def test_eval_json_contract(fake_corpus, tiny_ckpt, capsys, tmp_path):
    png = tmp_path / "confusion.png"
    code = main(["eval", "--model", str(tiny_ckpt), "--data", str(fake_corpus), "--split", "test", "--json",
                 "--plot", str(png)])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert {"accuracy", "per_class", "n", "wer", "cer", "confusion", "labels"} <= result.keys()
    assert 0.0 <= result["accuracy"] <= 1.0 and result["n"] > 0
    assert sum(map(sum, result["confusion"])) == result["n"]
    assert set(result["per_class"]) == set(result["labels"])
    assert png.stat().st_size > 1000


def test_streaming_eval_differs_only_by_latency_control(fake_corpus, tiny_ckpt, capsys):
    assert main(["eval", "--model", str(tiny_ckpt), "--data", str(fake_corpus), "--json",
                 "--chunk-ms", "120", "--lookahead-ms", "80"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["chunk_steps"] == 6 and result["lookahead_steps"] == 4


def test_constant_predictor_scores_are_exact(fake_corpus):
    """A model that always says label k: accuracy = share of k, recall(k) = 1, precision(k) = that share."""
    ds = SpeechCommandsDataset(fake_corpus, "validation", "12", phrases=False)
    model = Recognizer(ModelConfig(n_labels=len(ds.labels), hidden=8, layers=1), ds.labels).eval()
    k = ds.labels.index("yes")
    with torch.no_grad():
        model.label_head.weight.zero_()
        model.label_head.bias.fill_(-10.0)
        model.label_head.bias[k] = 10.0
    result = evaluate_model(model, ds, progress_bar=False)
    share = sum(1 for i in range(len(ds)) if ds.entry(i)[1] == k) / len(ds)
    assert result["n"] == len(ds)
    assert result["accuracy"] == pytest.approx(share)
    assert result["per_class"]["yes"]["recall"] == pytest.approx(1.0)
    assert result["per_class"]["yes"]["precision"] == pytest.approx(share)
    assert result["per_class"]["no"]["recall"] == 0.0


def test_bad_latency_settings_are_explained(tiny_ckpt):
    from speechrnn.checkpoint import load_model
    from speechrnn.errors import SpeechRNNError

    model = load_model(tiny_ckpt)
    assert latency_steps(model, 120, 80) == (6, 4)
    with pytest.raises(SpeechRNNError, match="multiple of the model's 20 ms step"):
        latency_steps(model, 130, 0)


def test_eval_missing_corpus_is_a_clear_error(tiny_ckpt, tmp_path, capsys):
    assert main(["eval", "--model", str(tiny_ckpt), "--data", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
