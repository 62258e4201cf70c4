"""Training: a tiny model learns, checkpoints round-trip, resume is exact, DDP runs, bad files are refused."""

import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

import speechrnn.train as train_module
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
    base = Recognizer(replace(TINY, n_labels=4), base_labels)
    base.set_normalization(torch.full((40,), 2.0), torch.full((40,), 3.0))
    save_checkpoint(tmp_path / "base.pt", base)
    out = tmp_path / "ft.pt"
    train(_cfg(fake_corpus, epochs=1, limit_batches=1, lr=1e-9, warmup_steps=1), out, init=tmp_path / "base.pt",
          progress_bar=False)  # fmt: skip
    tuned = load_model(out)
    assert tuned.labels != base_labels and len(tuned.labels) == 12
    torch.testing.assert_close(tuned.feat_mean, base.feat_mean)  # not recomputed from the new corpus
    for name, value in base.state_dict().items():
        if not name.startswith("label_head."):
            torch.testing.assert_close(tuned.state_dict()[name], value, atol=1e-6, rtol=1e-5, msg=name)


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


def test_train_config_round_trips_and_an_older_checkpoint_trains_without_the_formant_warp():
    cfg = TrainConfig(data="x", vtlp_range=(0.85, 1.15))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["vtlp_prob"], old["vtlp_range"]  # as a checkpoint written before the warp existed
    assert TrainConfig.from_dict(old).vtlp_prob == 0.0
    with pytest.raises(SpeechRNNError, match="formant warp"):
        TrainConfig(data="x", vtlp_prob=1.5)


def test_train_command_passes_the_formant_warp_and_kept_epochs(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(train_module, "train", lambda cfg, out, **kw: seen.update(cfg=cfg))
    argv = ["train", "--data", "x", "--out", str(tmp_path / "m.pt")]
    assert cli.main([*argv, "--vtlp", "0.6", "--vtlp-range", "0.85", "1.15", "--keep-epochs"]) == 0
    cfg = seen["cfg"]
    assert (cfg.vtlp_prob, cfg.vtlp_range, cfg.keep_epochs) == (0.6, (0.85, 1.15), True)
    assert cli.main(argv) == 0
    defaults = TrainConfig(data="x")
    assert (seen["cfg"].vtlp_prob, seen["cfg"].vtlp_range) == (defaults.vtlp_prob, defaults.vtlp_range)
    assert not seen["cfg"].keep_epochs
