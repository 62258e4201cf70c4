"""Training: a tiny model learns, checkpoints round-trip, resume is exact, DDP runs, bad files are refused."""

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

import speechrnn.train as train_module
import speechrnn.train_run as train_run
from speechrnn import cli
from speechrnn.checkpoint import average_checkpoints, load_model, read_checkpoint, save_checkpoint
from speechrnn.errors import SpeechRNNError
from speechrnn.model import ModelConfig, Recognizer
from speechrnn.speechcommands import SpeechCommandsDataset, collate
from speechrnn.train import TrainConfig, compute_loss, train

TINY = ModelConfig(n_labels=0, hidden=24, layers=2, dropout=0.0)


def _cfg(corpus, **kw) -> TrainConfig:
    base = dict(data=str(corpus), task="12", epochs=2, batch_size=8, lr=3e-3, warmup_steps=5, workers=0,
                device="cpu", norm_clips=64, save_minutes=1e9, streams=16, val_streams=4)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_model_overfits_a_tiny_batch(fake_corpus):
    torch.manual_seed(0)
    ds = SpeechCommandsDataset(fake_corpus, "train", "12", phrases=True)
    batch = collate([ds[i] for i in range(min(12, len(ds)))])
    model = Recognizer(replace(TINY, n_labels=len(ds.labels)), ds.labels)
    cfg = _cfg(fake_corpus, spec_augment=False, full_context_prob=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for step in range(150):
        loss, parts = compute_loss(model, batch, cfg, step, torch.device("cpu"))
        first = first if first is not None else parts["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert parts["loss"] < 0.1 * first
    model.eval()
    with torch.no_grad():
        out, _ = model(*model.featurize(batch.audio, batch.audio_lengths))
    labelled = batch.labels >= 0
    assert (out.pooled_logits()[labelled].argmax(-1) == batch.labels[labelled]).all()


def test_train_writes_checkpoint_metrics_and_curves(fake_corpus, tmp_path):
    out = tmp_path / "m.pt"
    train(_cfg(fake_corpus, limit_batches=4, keep_epochs=True), out, model_config=TINY, progress_bar=False)
    for suffix in (".pt", ".last.pt", ".metrics.jsonl", ".curves.png", ".epoch1.pt", ".epoch2.pt"):
        assert out.with_suffix(suffix).is_file(), suffix
    model = load_model(out)
    assert model.labels[:2] == ("_silence_", "_unknown_")
    last = read_checkpoint(out.with_suffix(".last.pt"))
    assert last["train"]["progress"]["epoch"] == 2
    assert len(last["train"]["progress"]["history"]) == 2
    best = read_checkpoint(out)["train"]["progress"]  # the best epoch's state
    assert best["best"] == max(h["val_accuracy"] for h in best["history"])
    assert not torch.allclose(model.feat_std, torch.ones_like(model.feat_std))  # statistics were computed
    kept = [read_checkpoint(out.with_suffix(f".epoch{n}.pt")) for n in (1, 2)]
    assert [k["train"]["progress"]["epoch"] for k in kept] == [1, 2]
    assert all("optimizer" not in k["train"] for k in kept)  # weights alone
    for name, value in last["model"].items():  # the last epoch kept is the run's end
        torch.testing.assert_close(kept[1]["model"][name], value, msg=name)
    assert any(not torch.equal(kept[0]["model"][n], v) for n, v in last["model"].items())


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    model = Recognizer(replace(TINY, n_labels=3, cell="lstm"), ("a", "b", "c")).eval()
    save_checkpoint(tmp_path / "x.pt", model, info={"note": "hi"})
    loaded = load_model(tmp_path / "x.pt")
    assert (
        loaded.labels == model.labels and loaded.config == model.config and loaded.features == model.features
    )
    feats = torch.randn(1, 30, 40)
    a, _ = model(feats, torch.tensor([30]))
    b, _ = loaded(feats, torch.tensor([30]))
    torch.testing.assert_close(a.ctc_log_probs, b.ctc_log_probs)
    assert torch.load(tmp_path / "x.pt", weights_only=True)["info"] == {"note": "hi"}
    assert loaded.thresholds == {}
    model.thresholds = {"label": {"a": 0.8}, "ctc": {"lights on": 0.6}}  # a table calibrated for the weights
    save_checkpoint(tmp_path / "t.pt", model)
    assert load_model(tmp_path / "t.pt").thresholds == model.thresholds
    for bad in ({"label": {"zz": 0.8}}, {"ctc": {"a": 0.0}}, {"vote": {}}, [0.5]):
        model.thresholds = bad
        save_checkpoint(tmp_path / "bad.pt", model)
        with pytest.raises(SpeechRNNError, match="thresholds"):
            load_model(tmp_path / "bad.pt")


def test_average_checkpoints_means_the_weights_and_refuses_other_models(tmp_path):
    models = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        models.append(Recognizer(replace(TINY, n_labels=3), ("a", "b", "c")))
        models[-1].feat_mean.copy_(torch.arange(40.0))  # one normalisation, as fine-tunes of one model share
        save_checkpoint(tmp_path / f"{seed}.pt", models[-1])
    paths = [tmp_path / f"{seed}.pt" for seed in (1, 2, 3)]
    run = subprocess.run(
        [sys.executable, "scripts/average_checkpoints.py", *map(str, paths), "--out", str(tmp_path / "avg.pt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    averaged = load_model(tmp_path / "avg.pt")
    for name, value in averaged.state_dict().items():
        expected = sum(m.state_dict()[name] for m in models) / 3
        torch.testing.assert_close(value, expected, msg=name)
    assert read_checkpoint(tmp_path / "avg.pt")["info"]["averaged_from"] == list(map(str, paths))

    save_checkpoint(tmp_path / "other.pt", Recognizer(replace(TINY, n_labels=2), ("a", "b")))
    with pytest.raises(SpeechRNNError, match="model_config differs"):
        average_checkpoints([paths[0], tmp_path / "other.pt"])
    undropped = Recognizer(
        replace(TINY, n_labels=3, dropout=0.3), ("a", "b", "c")
    )  # a fine-tune's own dropout
    undropped.load_state_dict(models[1].state_dict())
    save_checkpoint(tmp_path / "undropped.pt", undropped)
    torch.testing.assert_close(
        average_checkpoints([paths[1], tmp_path / "undropped.pt"]).state_dict(), models[1].state_dict()
    )
    models[0].feat_std.mul_(2)
    save_checkpoint(tmp_path / "renormed.pt", models[0])
    with pytest.raises(SpeechRNNError, match="feat_std differs"):
        average_checkpoints([paths[1], tmp_path / "renormed.pt"])


def test_resume_continues_exactly(fake_corpus, tmp_path, monkeypatch):
    straight = tmp_path / "a" / "m.pt"
    train(_cfg(fake_corpus, epochs=2, limit_batches=4), straight, model_config=TINY, progress_bar=False)
    stopped = tmp_path / "b" / "m.pt"
    # Ctrl-C during the second batch of the first epoch: the state is saved, then the run resumes.
    calls = {"n": 0}
    real_loss = train_module.compute_loss

    def interrupt_on_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_module, "compute_loss", interrupt_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(fake_corpus, epochs=2, limit_batches=4), stopped, model_config=TINY, progress_bar=False)
    monkeypatch.setattr(train_module, "compute_loss", real_loss)
    first = read_checkpoint(stopped.with_suffix(".last.pt"))["train"]["progress"]
    assert first["epoch"] == 0 and first["batch"] == 1
    train(
        _cfg(fake_corpus, epochs=2, limit_batches=4),
        stopped,
        model_config=TINY,
        resume=True,
        progress_bar=False,
    )
    a = read_checkpoint(straight.with_suffix(".last.pt"))
    b = read_checkpoint(stopped.with_suffix(".last.pt"))
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, atol=1e-6, rtol=1e-5, msg=k)
    assert a["train"]["progress"]["step"] == b["train"]["progress"]["step"]


def test_the_spelling_phase_trains_ctc_alone_and_resumes_where_it_stopped(
    fake_corpus, tmp_path, monkeypatch, capsys
):
    # A learning rate of ~0 after the phase: what moved, the phase moved.
    cfg = _cfg(fake_corpus, epochs=1, limit_batches=1, lr=1e-9, warmup_steps=1, spell_steps=4, spell_lr=1e-2,
               weight_decay=0.0)  # fmt: skip
    torch.manual_seed(3)
    base = Recognizer(replace(TINY, n_labels=12), SpeechCommandsDataset(fake_corpus, "train", "12").labels)
    save_checkpoint(tmp_path / "base.pt", base)
    seen = []
    real_loss = train_module.compute_loss

    def spy(model, batch, cfg, step, device):
        seen.append((step, bool((batch.labels >= 0).any()), cfg.full_context_prob))
        return real_loss(model, batch, cfg, step, device)

    monkeypatch.setattr(train_module, "compute_loss", spy)
    train(cfg, tmp_path / "a" / "m.pt", init=tmp_path / "base.pt", progress_bar=False)
    assert "spelling phase: 4 CTC steps" in capsys.readouterr().out
    phase = [s for s in seen if s[0] < 0]
    assert len(phase) == 4 and not any(labelled for _, labelled, _ in phase)  # phrases and utterances only
    assert {p for _, _, p in phase} == {1.0}  # full context
    tuned = read_checkpoint(tmp_path / "a" / "m.last.pt")
    assert tuned["train"]["progress"]["spelled"] == 4 and tuned["train"]["progress"]["step"] == 1
    moved = {k: (tuned["model"][k] - v).abs().max().item() for k, v in base.state_dict().items()}
    assert moved["ctc_head.weight"] > 1e-3 and moved["label_head.weight"] < 1e-6  # no label loss in the phase

    # Ctrl-C in the phase's third step: the two done are saved, and --resume does the other two.
    def interrupt_third(model, batch, cfg, step, device):
        if step == -3:
            raise KeyboardInterrupt
        return real_loss(model, batch, cfg, step, device)

    monkeypatch.setattr(train_module, "compute_loss", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "b" / "m.pt", init=tmp_path / "base.pt", progress_bar=False)
    stopped = read_checkpoint(tmp_path / "b" / "m.last.pt")["train"]["progress"]
    assert (stopped["spelled"], stopped["step"], stopped["seconds"]) == (2, 0, 0.0)
    monkeypatch.setattr(train_module, "compute_loss", real_loss)
    train(cfg, tmp_path / "b" / "m.pt", resume=True, progress_bar=False)
    resumed = read_checkpoint(tmp_path / "b" / "m.last.pt")
    assert resumed["train"]["progress"]["spelled"] == 4
    for k, v in tuned["model"].items():
        torch.testing.assert_close(resumed["model"][k], v, atol=1e-5, rtol=1e-4, msg=k)


def test_the_spelling_phase_checkpoints_as_it_goes(fake_corpus, tmp_path, monkeypatch):
    saved = []
    real_save = train_module._save
    monkeypatch.setattr(train_module, "_save", lambda path, model, cfg, progress, *a: saved.append(progress.spelled)
                        or real_save(path, model, cfg, progress, *a))  # fmt: skip
    cfg = _cfg(fake_corpus, epochs=1, limit_batches=1, spell_steps=3, save_minutes=1e-9)
    train(cfg, tmp_path / "m.pt", model_config=TINY, progress_bar=False)
    assert saved[:4] == [1, 2, 3, 3]  # after every step (a save is due each time), then at the phase's end


def test_phrases_and_utterances_are_batched_apart_from_words(fake_corpus):
    data = train_module._make_data(_cfg(fake_corpus))
    kinds = [
        clip.label if clip is not None else None for clip, _ in map(data.train.entry, range(len(data.train)))
    ]
    assert {"_phrase_", "_utterance_"} <= set(kinds)
    assert data.long[: len(kinds)] == [k in ("_phrase_", "_sentence_", "_utterance_") for k in kinds]
    assert all(data.long[len(kinds) :])  # the streams


def test_balanced_words_weigh_the_long_items_the_spelling_phase_and_the_streams(
    fake_corpus, tmp_path, monkeypatch
):
    from speechrnn.utterances import word_balance

    data = train_module._make_data(_cfg(fake_corpus, balance_words=True))
    clips = [clip for clip, _ in map(data.train.entry, range(len(data.train)))]
    texts = [c.text if c is not None else "" for c in clips]
    np.testing.assert_allclose(data.weights[: len(texts)], word_balance(texts, data.train.labels))
    assert len(set(data.weights[: len(texts)])) > 2 and all(w == 1.0 for w in data.weights[len(texts) :])
    assert data.streams._clip_p[4] is not None and data.streams._clip_p[0] is None  # utterances, not words
    assert train_module._make_data(_cfg(fake_corpus)).weights is None
    balanced = []
    monkeypatch.setattr(
        train_module, "word_balance", lambda t, w: balanced.append(len(t)) or word_balance(t, w)
    )
    train(_cfg(fake_corpus, epochs=1, limit_batches=1, spell_steps=2, balance_words=True), tmp_path / "m.pt",
          model_config=TINY, progress_bar=False)  # fmt: skip
    assert len(balanced) == 2  # the epochs' items, then the spelling phase's pool


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a checkpoint at all", "not a speechrnn checkpoint"),
        (None, "not a speechrnn checkpoint"),  # a torch file of someone else's
        ("newer", "newer than this speechrnn"),
    ],
)
def test_bad_checkpoints_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif content == "newer":
        model = Recognizer(replace(TINY, n_labels=2), ("a", "b"))
        save_checkpoint(path, model)
        ckpt = torch.load(path, weights_only=True)
        ckpt["version"] = 99
        torch.save(ckpt, path)
    else:
        path.write_bytes(content)
    with pytest.raises(SpeechRNNError, match=message):
        load_model(path)
    with pytest.raises(SpeechRNNError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")


@pytest.mark.slow
def test_ddp_two_cpu_processes(fake_corpus, tmp_path):
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "speechrnn", "train", "--data", str(fake_corpus), "--out", str(out), "--task", "12",
           "--epochs", "1", "--batch-size", "4", "--hidden", "16", "--layers", "1", "--workers", "0",
           "--device", "cpu", "--streams", "8"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    assert out.is_file() and load_model(out).labels[0] == "_silence_"


def test_time_budget_ends_training_with_a_validated_checkpoint(fake_corpus, tmp_path):
    out = tmp_path / "m.pt"
    train(_cfg(fake_corpus, epochs=50, max_minutes=0.05), out, model_config=TINY, progress_bar=False)
    history = read_checkpoint(out.with_suffix(".last.pt"))["train"]["progress"]["history"]
    assert history and history[-1].get("partial") and len(history) < 50
    assert load_model(out).labels[0] == "_silence_"


def test_torch_gets_every_core_of_its_process_share(fake_corpus, tmp_path, monkeypatch):
    # The data workers are light: on 2 cores a second torch thread trained 1.3x faster than leaving a
    # core to them.
    assert train_module.cpu_threads(0, world=1, cores=2) == 2
    assert train_module.cpu_threads(0, world=2, cores=16) == 8  # torchrun shares the cores out
    assert train_module.cpu_threads(0, world=4, cores=2) == 1
    assert train_module.cpu_threads(3, world=1, cores=2) == 3  # --threads
    chosen = []
    monkeypatch.setattr(train_module.torch, "set_num_threads", chosen.append)
    train(_cfg(fake_corpus, epochs=1, limit_batches=1, threads=3), tmp_path / "m.pt", model_config=TINY,
          progress_bar=False)  # fmt: skip
    assert chosen == [3]


def test_init_fine_tunes_from_a_checkpoint(fake_corpus, tmp_path):
    """--init keeps the encoder, heads and normalisation; a different label set gets a fresh label head."""
    base_labels = ("_silence_", "_unknown_", "cat", "dog")
    torch.manual_seed(5)
    base = Recognizer(replace(TINY, n_labels=4, dropout=0.2), base_labels)
    base.set_normalization(torch.full((40,), 2.0), torch.full((40,), 3.0))
    base.thresholds = {"label": {"cat": 0.9}}  # calibrated for the base's weights, not the tuned ones
    save_checkpoint(tmp_path / "base.pt", base)
    out = tmp_path / "ft.pt"
    train(_cfg(fake_corpus, epochs=1, limit_batches=1, lr=1e-9, warmup_steps=1), out, init=tmp_path / "base.pt",
          progress_bar=False)  # fmt: skip
    tuned = load_model(out)
    assert tuned.labels != base_labels and len(tuned.labels) == 12 and tuned.thresholds == {}
    torch.testing.assert_close(tuned.feat_mean, base.feat_mean)  # not recomputed from the new corpus
    for name, value in base.state_dict().items():
        if not name.startswith("label_head."):
            torch.testing.assert_close(tuned.state_dict()[name], value, atol=1e-6, rtol=1e-5, msg=name)
    # Dropout is training's to choose: a fine-tune may train with less than its checkpoint, all else kept.
    again = tmp_path / "again.pt"
    train(_cfg(fake_corpus, epochs=1, limit_batches=1, lr=1e-9, warmup_steps=1), again, init=out, progress_bar=False,
          init_dropout=0.0)  # fmt: skip
    undropped = load_model(again)
    assert undropped.config.dropout == 0.0 and tuned.config.dropout == 0.2  # the checkpoint's, unless told
    for name, value in tuned.state_dict().items():  # the label head too: the labels agree
        torch.testing.assert_close(undropped.state_dict()[name], value, atol=1e-6, rtol=1e-5, msg=name)


def test_epoch_batches_bucket_long_items_and_share_ranks_evenly():
    from speechrnn.train import EpochBatches

    long = [i % 5 == 0 for i in range(103)]  # every fifth item is a phrase
    sampler = EpochBatches(long, batch_size=4, seed=1)
    batches = list(sampler)
    assert all(len(b) == 4 for b in batches)
    assert all(len({long[i] for i in b}) == 1 for b in batches)  # never a phrase among words
    assert len({i for b in batches for i in b}) == 4 * len(batches)  # no item twice
    assert batches == list(EpochBatches(long, 4, seed=1))  # deterministic
    sampler.set_epoch(1)
    assert list(sampler) != batches
    sampler.set_epoch(0, skip=3)
    assert list(sampler) == batches[3:] and len(sampler) == len(batches) - 3
    ranks = [list(EpochBatches(long, 4, seed=1, rank=r, world=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(batches) // 2
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}


def test_epoch_batches_draw_long_items_by_their_weights():
    from speechrnn.train import EpochBatches

    long = [i % 2 == 0 for i in range(400)]
    weights = [4.0 if i % 4 == 0 else 1.0 for i in range(400)]  # half the long items weigh four times more
    seen = [i for b in EpochBatches(long, 4, seed=1, weights=weights) for i in b]
    heavy = sum(i % 4 == 0 for i in seen)
    light = sum(i % 4 == 2 for i in seen)
    assert heavy + light == 200 and heavy > 3 * light  # as many long items as before, drawn 4:1
    assert sum(not long[i] for i in seen) == 200 and len({i for i in seen if not long[i]}) == 200


def test_train_config_round_trips_and_an_older_checkpoint_trains_without_the_formant_warp():
    cfg = TrainConfig(data="x", vtlp_range=(0.85, 1.15))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["vtlp_prob"], old["vtlp_range"]  # as a checkpoint written before the warp existed
    assert TrainConfig.from_dict(old).vtlp_prob == 0.0
    with pytest.raises(SpeechRNNError, match="formant warp"):
        TrainConfig(data="x", vtlp_prob=1.5)
    with pytest.raises(SpeechRNNError, match="spelling phase"):
        TrainConfig(data="x", spell_steps=10, phrases=False)


def test_train_command_passes_the_formant_warp_and_kept_epochs(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(train_module, "train", lambda cfg, out, **kw: seen.update(cfg=cfg))
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")]  # checked: a folder
    assert (
        cli.main([*argv, "--vtlp", "0.6", "--vtlp-range", "0.85", "1.15", "--keep-epochs", "--balance-words"])
        == 0
    )
    cfg = seen["cfg"]
    assert (cfg.vtlp_prob, cfg.vtlp_range, cfg.keep_epochs, cfg.balance_words) == (
        0.6,
        (0.85, 1.15),
        True,
        True,
    )
    assert cli.main(argv) == 0
    defaults = TrainConfig(data=str(tmp_path))
    assert (seen["cfg"].vtlp_prob, seen["cfg"].vtlp_range) == (defaults.vtlp_prob, defaults.vtlp_range)
    assert not seen["cfg"].keep_epochs


# ------------------------------------------------------------------------ a run's files (issue 31)


def test_an_existing_run_is_refused_and_overwrite_replaces_it(fake_corpus, tmp_path):
    out = tmp_path / "m.pt"
    train(_cfg(fake_corpus, epochs=2, limit_batches=1, keep_epochs=True), out, model_config=TINY,
          progress_bar=False)  # fmt: skip
    before = out.read_bytes()
    with pytest.raises(SpeechRNNError, match="a training run is there already .*--resume.*--overwrite"):
        train(_cfg(fake_corpus, epochs=1, limit_batches=1), out, model_config=TINY, progress_bar=False)
    assert out.read_bytes() == before
    with pytest.raises(SpeechRNNError, match="give one, not both"):
        train(_cfg(fake_corpus), out, model_config=TINY, resume=True, overwrite=True, progress_bar=False)
    train(_cfg(fake_corpus, epochs=1, limit_batches=1, seed=3), out, model_config=TINY, overwrite=True,
          progress_bar=False)  # fmt: skip
    lines = out.with_suffix(".metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]  # the old run's two lines are gone
    assert not out.with_suffix(".epoch2.pt").exists()  # and its kept epochs
    assert read_checkpoint(out)["train"]["config"]["seed"] == 3


def test_a_folder_as_out_is_refused_before_any_work(fake_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "SpeechCommandsDataset", None)  # the work would start here
    for out in (tmp_path, tmp_path / "m.pt/", ""):
        with pytest.raises(SpeechRNNError, match="folder|expected the path of a checkpoint"):
            (tmp_path / "m.pt").mkdir(exist_ok=True)
            train(_cfg(fake_corpus), out, model_config=TINY, progress_bar=False)


class Killed(BaseException):
    """A kill -9: nothing of train's own handling runs."""


def test_a_kill_while_saving_resumes_without_logging_an_epoch_twice(fake_corpus, tmp_path, monkeypatch):
    out = tmp_path / "m.pt"
    real_save = train_run.save_checkpoint

    def killed_while_saving_last_of_epoch_2(path, model, train=None, info=None):
        if Path(path).name == "m.last.pt" and train["progress"]["epoch"] == 2:
            (tmp_path / ".m.last.pt.k1ll3d00.tmp").write_bytes(b"half a checkpoint")  # the rename never came
            raise Killed
        real_save(path, model, train=train, info=info)

    monkeypatch.setattr(train_run, "save_checkpoint", killed_while_saving_last_of_epoch_2)
    with pytest.raises(Killed):
        train(_cfg(fake_corpus, epochs=2, limit_batches=2), out, model_config=TINY, progress_bar=False)
    monkeypatch.setattr(train_run, "save_checkpoint", real_save)
    metrics = out.with_suffix(".metrics.jsonl")
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2]
    (tmp_path / ".m.pt.a1b2c3d4").write_bytes(b"left by an older version")  # no .tmp suffix then
    (tmp_path / ".m.pt.notes").write_text("the user's own file")
    train(
        _cfg(fake_corpus, epochs=2, limit_batches=2), out, model_config=TINY, resume=True, progress_bar=False
    )
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2]
    assert [
        h["epoch"] for h in read_checkpoint(out.with_suffix(".last.pt"))["train"]["progress"]["history"]
    ] == [
        1,
        2,
    ]
    assert sorted(p.name for p in tmp_path.glob(".*")) == [".m.pt.notes"]


def test_a_time_budget_record_is_replaced_when_its_epoch_finishes(fake_corpus, tmp_path):
    out = tmp_path / "m.pt"
    train(_cfg(fake_corpus, epochs=1, max_minutes=1e-6), out, model_config=TINY, progress_bar=False)
    first = read_checkpoint(out.with_suffix(".last.pt"))["train"]["progress"]["history"]
    assert [(h["epoch"], h.get("partial")) for h in first] == [(1, True)]
    train(
        _cfg(fake_corpus, epochs=1, limit_batches=2), out, model_config=TINY, resume=True, progress_bar=False
    )
    lines = [json.loads(line) for line in out.with_suffix(".metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("partial")) for r in lines] == [(1, None)]


# ------------------------------------------------------------- checkpoints and resume (issue 29)


def _tiny_checkpoint(path: Path, labels=("a", "b", "c"), **train_state) -> Recognizer:
    torch.manual_seed(1)
    model = Recognizer(replace(TINY, n_labels=len(labels)), labels)
    save_checkpoint(path, model, train=train_state or None)
    return model


def test_a_checkpoint_from_another_vocabulary_or_with_mismatched_weights_is_refused(tmp_path):
    path = tmp_path / "x.pt"
    _tiny_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "vocab": ckpt["vocab"][:-1]}, tmp_path / "vocab.pt")
    with pytest.raises(SpeechRNNError, match="vocab.pt: checkpoint vocabulary differs"):
        load_model(tmp_path / "vocab.pt")
    torch.save({**ckpt, "model_config": {**ckpt["model_config"], "hidden": 32}}, tmp_path / "config.pt")
    with pytest.raises(
        SpeechRNNError, match="config.pt: checkpoint does not describe a valid model .*size mismatch"
    ):
        load_model(tmp_path / "config.pt")
    torch.save({**ckpt, "model_config": {**ckpt["model_config"], "dropout": 2.0}}, tmp_path / "dropout.pt")
    with pytest.raises(SpeechRNNError, match="dropout.pt: .*dropout: expected a finite number in"):
        load_model(tmp_path / "dropout.pt")


def test_a_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "x.pt"
    _tiny_checkpoint(path)
    data = path.read_bytes()
    for size in (len(data) // 2, len(data) - 100, 10):
        path.write_bytes(data[:size])
        with pytest.raises(SpeechRNNError, match="x.pt: not a speechrnn checkpoint [(]could not be loaded"):
            load_model(path)


def test_a_failed_write_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    _tiny_checkpoint(path)
    before = path.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        _tiny_checkpoint(path, labels=("x", "y"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]


def test_resume_errors_are_explained(fake_corpus, tmp_path):
    out = tmp_path / "m.pt"
    with pytest.raises(SpeechRNNError, match="no checkpoint to resume from at .*m.last.pt"):
        train(_cfg(fake_corpus), out, resume=True, progress_bar=False)
    _tiny_checkpoint(out.with_suffix(".last.pt"))  # weights only: no training state
    with pytest.raises(SpeechRNNError, match="m.last.pt: holds no training state to resume from"):
        train(_cfg(fake_corpus), out, resume=True, progress_bar=False)
    model = Recognizer(replace(TINY, n_labels=3), ("a", "b", "c"))
    optimizer = torch.optim.AdamW(model.parameters())
    state = {"config": _cfg(fake_corpus).to_dict(), "progress": asdict(train_module.Progress()),
             "optimizer": optimizer.state_dict()}  # fmt: skip
    save_checkpoint(out.with_suffix(".last.pt"), model, train=state)
    with pytest.raises(
        SpeechRNNError, match="m.last.pt: its labels differ from the corpus's '12' task labels"
    ):
        train(_cfg(fake_corpus), out, resume=True, progress_bar=False)
    state["progress"] = {"epoch": "one"} | {"unknown_field": 1}
    save_checkpoint(out.with_suffix(".last.pt"), model, train=state)
    with pytest.raises(SpeechRNNError, match="its training state cannot be read"):
        train(_cfg(fake_corpus), out, resume=True, progress_bar=False)


def test_the_schedule_follows_the_time_budget():
    cfg = TrainConfig(data="x", lr=1e-2, min_lr=1e-4, warmup_steps=10, max_minutes=10.0)
    assert train_module.get_lr(0, cfg, total_steps=1000) == pytest.approx(1e-3)  # warm-up counts steps
    budget = 600.0
    assert train_module.get_lr(50, cfg, 1000, elapsed=0.0) == pytest.approx(1e-2)
    assert train_module.get_lr(50, cfg, 1000, elapsed=budget / 2) == pytest.approx((1e-2 + 1e-4) / 2)
    # Steps do not matter under a budget: only the time spent does.
    assert train_module.get_lr(999, cfg, 1000, elapsed=budget / 2) == pytest.approx((1e-2 + 1e-4) / 2)
    for elapsed in (budget, 2 * budget):
        assert train_module.get_lr(60, cfg, 1000, elapsed=elapsed) == pytest.approx(1e-4)
    lrs = [train_module.get_lr(60, cfg, 1000, elapsed=t) for t in range(0, 700, 50)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_a_non_finite_gradient_skips_its_step(fake_corpus, tmp_path, monkeypatch):
    reference = tmp_path / "a" / "m.pt"
    train(_cfg(fake_corpus, epochs=1, limit_batches=1), reference, model_config=TINY, progress_bar=False)
    real_loss = train_module.compute_loss
    calls = {"n": 0}

    def nan_on_the_second_batch(*args, **kwargs):
        calls["n"] += 1
        loss, parts = real_loss(*args, **kwargs)
        return (loss * float("nan") if calls["n"] == 2 else loss), parts

    monkeypatch.setattr(train_module, "compute_loss", nan_on_the_second_batch)
    skipped = tmp_path / "b" / "m.pt"
    train(_cfg(fake_corpus, epochs=1, limit_batches=2), skipped, model_config=TINY, progress_bar=False)
    assert calls["n"] == 2
    a = read_checkpoint(reference.with_suffix(".last.pt"))["model"]
    b = read_checkpoint(skipped.with_suffix(".last.pt"))["model"]  # loads: every weight is finite
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, msg=name)  # the NaN batch changed nothing
