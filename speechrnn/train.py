"""Training: one plain loop with a joint CTC + cross-entropy loss and dynamic chunk training.

Every batch draws a latency setting: full context (chunk None) or a chunk of a few encoder steps with a
look-ahead, so one checkpoint serves offline transcription and live streaming (WeNet U2's dynamic chunks).
Each epoch also holds training streams (`streams.py`: clips end to end, always run chunked) whose label
head is trained at every step as the live spotter reads it, next to CTC on their transcript.

Determinism and exact resume: the data order comes from (seed, epoch), augmentation from (seed, epoch,
item), and each step's chunk choice, SpecAugment masks and dropout from (seed, step), so a run resumed from a
checkpoint continues exactly as an uninterrupted one would. Checkpoints are written at every epoch end, every
`save_minutes`, and on Ctrl-C.

A run's files sit beside `out` (see `train_run`, which writes, saves and resumes them). A new run refuses
to start where one is already (continue it with `resume`, or replace it with `overwrite`); every file is
written atomically, and temp files a kill left are removed when the next run starts. `metrics.jsonl` holds
one line per epoch, rewritten from the checkpoint's history, so a run resumed after a kill never logs an
epoch twice.

DDP: run under `torchrun --nproc_per_node N -m speechrnn train ...`; gloo on CPU, NCCL on GPU; rank 0 writes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler
from tqdm import tqdm

from .augment import AugmentConfig
from .checkpoint import model_from_checkpoint, read_checkpoint
from .config import EVAL_BATCH_SIZE, ModelConfig, TrainConfig, check_device
from .corpus import LONG_LABELS
from .errors import SpeechRNNError
from .evaluate import evaluate_model
from .feature_augment import random_vocal_tract_warp, spec_augment
from .features import FeatureConfig
from .model import Recognizer
from .speechcommands import SpeechCommandsDataset, collate
from .system import usable_cores
from .train_run import Progress, _end_epoch, _open_run, _resume, _save, check_run_out
from .train_streams import IGNORE, StreamConfig, TrainingStreams, windowed_targets
from .utterances import word_balance


def get_lr(step: int, cfg: TrainConfig, total_steps: int, elapsed: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to `min_lr` at `total_steps`, or, under a time budget
    (`max_minutes`), at the end of the budget (`elapsed` seconds spent so far)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.max_minutes:
        progress = min(1.0, elapsed / (cfg.max_minutes * 60))
    else:
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def cpu_threads(threads: int, world: int, cores: int | None = None) -> int:
    """Torch's CPU threads for one of `world` training processes: `threads` if set, else every core of the
    process's share. The data workers need little (a worker used ~6 % of a core on 2 cores, where a second
    torch thread made whole epochs 1.3x faster than leaving a core to the workers). On a machine busy with
    other work, fewer threads can be faster: OpenMP threads then wait for each other."""
    if threads > 0:
        return threads
    return max(1, (cores or usable_cores()) // world)


def _seed_for(*parts: int) -> int:
    """A 63-bit seed mixed from integers (stable across runs and processes)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFF)) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return h


class EpochBatches(Sampler):
    """Batches of a permutation drawn from (seed, epoch), shared out across DDP ranks.

    Long items (phrases, sentences: up to 5 s) are batched only with each other, so a batch of one-second
    words is never padded to the longest phrase; without this nearly every batch held a phrase and cost about
    three times its compute. Batches, not items, are then shuffled and dealt to the ranks, which all get the
    same number. Resuming skips the batches already done. With `weights` (per item), the long items are
    drawn with replacement in proportion to them (`utterances.word_balance`), as many as there are.
    """

    def __init__(
        self,
        long: list[bool],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        weights: Sequence[float] | None = None,
    ):
        self.long, self.batch_size, self.seed, self.rank, self.world = long, batch_size, seed, rank, world
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(_seed_for(self.seed, self.epoch))
        order = torch.randperm(len(self.long), generator=g).tolist()
        batches = []
        longs = [i for i in order if self.long[i]]
        if self.weights is not None and longs:
            drawn = torch.multinomial(self.weights[longs], len(longs), replacement=True, generator=g)
            longs = [longs[j] for j in drawn.tolist()]
        for bucket in ([i for i in order if not self.long[i]], longs):
            full = len(bucket) // self.batch_size * self.batch_size  # drop each bucket's ragged tail
            batches += [bucket[k : k + self.batch_size] for k in range(0, full, self.batch_size)]
        batches = [batches[k] for k in torch.randperm(len(batches), generator=g).tolist()]
        per_rank = len(batches) // self.world
        return batches[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __iter__(self):
        return iter(self._batches()[self.skip :])

    def __len__(self) -> int:
        return len(self._batches()) - self.skip


def _pick_device(name: str) -> torch.device:
    check_device(name, allow_auto=True)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank), initialising the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


@torch.no_grad()
def feature_statistics(
    dataset: SpeechCommandsDataset, model: Recognizer, clips: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of MFCCs over a seeded sample of `dataset` (give it one without augmentation)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[:clips].tolist()
    total = torch.zeros(model.config.n_input, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    count = 0
    for start in range(0, len(idx), 128):
        batch = collate([dataset[i] for i in idx[start : start + 128]])
        feats, lengths = model.featurize(batch.audio, batch.audio_lengths)
        mask = torch.arange(feats.shape[1])[None, :] < lengths[:, None]
        valid = feats[mask].double()
        total += valid.sum(0)
        total_sq += (valid**2).sum(0)
        count += valid.shape[0]
    if count == 0:
        raise SpeechRNNError("no training audio to compute feature statistics from")
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(1e-8).sqrt()
    return mean.float(), std.float()


def compute_loss(
    model: nn.Module, batch, cfg: TrainConfig, step: int, device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    """Joint loss of one batch under the latency setting drawn for `step`."""
    g = torch.Generator().manual_seed(_seed_for(cfg.seed, step, 7))
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    feats, lengths = core.featurize(batch.audio, batch.audio_lengths)
    if cfg.vtlp_prob > 0:  # before the masks, which it would smear
        feats = random_vocal_tract_warp(feats, g, cfg.vtlp_prob, cfg.vtlp_range, core.features)
    if cfg.spec_augment:
        feats = spec_augment(feats, lengths, g)
    full_context = torch.rand((), generator=g).item() < cfg.full_context_prob
    chunk = cfg.chunk_steps[int(torch.randint(len(cfg.chunk_steps), (), generator=g))]
    lookahead = cfg.lookahead_steps[int(torch.randint(len(cfg.lookahead_steps), (), generator=g))]
    streams = batch.stream_rows
    if full_context and not streams:  # streams always run as the live recogniser runs them
        chunk, lookahead = None, 0
    out, _ = model(feats, lengths, chunk=chunk, lookahead=lookahead)
    losses: dict[str, float] = {}
    total = feats.new_zeros(())
    has_label = batch.labels >= 0
    if has_label.any():
        logits = out.pooled_logits()[has_label]
        ce = nn.functional.cross_entropy(logits, batch.labels[has_label])
        total = total + ce
        losses["ce"] = ce.item()
    if cfg.ctc_weight > 0 and batch.has_text.any():
        sel = batch.has_text
        log_probs = out.ctc_log_probs[sel].transpose(0, 1).float()  # (steps, batch, vocab) for ctc_loss
        ctc = nn.functional.ctc_loss(
            log_probs,
            batch.targets[sel],
            out.lengths[sel],
            batch.target_lengths[sel],
            blank=0,
            reduction="mean",
            zero_infinity=True,
        )
        total = total + cfg.ctc_weight * ctc
        losses["ctc"] = ctc.item()
    if streams and cfg.stream_weight > 0:
        ce = _stream_loss(core, out, batch.spans, streams)
        if ce is not None:
            total = total + cfg.stream_weight * ce
            losses["stream"] = ce.item()
    # Every head takes part in every loss, if only with weight zero, so that DDP finds gradients for all
    # parameters even in a batch of phrases only (no label head) or of silence only (no CTC).
    total = total + 0.0 * (out.pooled_logits().sum() + out.ctc_log_probs.sum())
    losses["loss"] = total.item()
    return total, losses


def _spell(
    net: nn.Module,
    data: _Data,
    cfg: TrainConfig,
    progress: Progress,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    rank: int,
    world: int,
    progress_bar: bool,
    save: Callable[[], None],
) -> None:
    """The spelling phase: the steps of `cfg.spell_steps` not yet done, CTC alone, full context, at the
    constant `cfg.spell_lr`, on random batches of the training split's phrases and utterances (the items
    without a class label), half a batch each as they are seconds long. Counts its steps in
    `progress.spelled`, so that an interrupted phase resumes where it stopped; on rank 0, calls `save`
    every `cfg.save_minutes` and at its end."""
    pool = [i for i in range(len(data.train)) if data.train.entry(i)[1] < 0]
    if not pool:
        raise SpeechRNNError(
            f"{cfg.data}: the spelling phase needs phrases or utterances; the training split has none"
        )
    size = min(max(1, cfg.batch_size // 2), len(pool))
    per_pass = len(pool) // size
    weights = None
    if cfg.balance_words:
        texts = [data.train.entry(i)[0].text for i in pool]
        weights = torch.as_tensor(word_balance(texts, data.train.labels))

    def batch_of(k: int) -> list[int]:  # the k-th batch over all ranks: passes of fresh draws
        g = torch.Generator().manual_seed(_seed_for(cfg.seed, k // per_pass, 13))
        if weights is None:
            order = torch.randperm(len(pool), generator=g)
        else:
            order = torch.multinomial(weights, len(pool), replacement=True, generator=g)
        return [pool[j] for j in order[(k % per_pass) * size : (k % per_pass + 1) * size].tolist()]

    steps = range(progress.spelled, cfg.spell_steps)
    data.set_epoch(progress.epoch)
    loader = DataLoader(data.train, batch_sampler=[batch_of(s * world + rank) for s in steps], collate_fn=collate,
                        num_workers=cfg.workers, pin_memory=device.type == "cuda")  # fmt: skip
    phase = replace(cfg, full_context_prob=1.0, ctc_weight=1.0, stream_weight=0.0)
    for group in optimizer.param_groups:
        group["lr"] = cfg.spell_lr
    net.train()
    losses, last_save = [], time.monotonic()
    with tqdm(total=cfg.spell_steps, initial=progress.spelled, desc="spelling", unit="batch", dynamic_ncols=True,
              disable=not progress_bar or rank != 0) as bar:  # fmt: skip
        for batch in loader:
            torch.manual_seed(_seed_for(cfg.seed, progress.spelled, 17))  # dropout masks
            # Negative step numbers: masks and warps other than those of the recipe's steps.
            loss, parts = compute_loss(net, batch.to(device), phase, -1 - progress.spelled, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if torch.isfinite(nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad)):
                optimizer.step()
            progress.spelled += 1
            losses.append(parts.get("ctc", float("nan")))
            bar.set_postfix(ctc=f"{losses[-1]:.3f}")
            bar.update(1)
            if rank == 0 and time.monotonic() - last_save > cfg.save_minutes * 60:
                save()
                last_save = time.monotonic()
            if rank == 0 and bar.disable and progress.spelled % 50 == 0:  # a log, not a terminal
                print(f"spelling: step {progress.spelled}/{cfg.spell_steps}, CTC loss "
                      f"{sum(losses[-50:]) / len(losses[-50:]):.3f}", flush=True)  # fmt: skip
    if rank == 0:
        save()
    if rank == 0 and losses:
        n = max(1, min(50, len(losses) // 4))
        print(f"spelling phase: {progress.spelled} CTC steps on {len(pool)} phrases and utterances, CTC loss "
              f"{sum(losses[:n]) / n:.3f} -> {sum(losses[-n:]) / n:.3f}", flush=True)  # fmt: skip


def _stream_loss(core: Recognizer, out, spans: tuple, rows: list[int]) -> torch.Tensor | None:
    """Cross-entropy of the label head pooled over the window ending at each step of the training streams
    `rows`, against `streams.step_targets`; None when every step is without a target."""
    pooled, targets = windowed_targets(core, out, spans, rows)
    if not (targets != IGNORE).any():
        return None
    return nn.functional.cross_entropy(
        pooled.reshape(-1, pooled.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
    )


def _warm_start(
    init: str | os.PathLike, labels: tuple[str, ...], seed: int, dropout: float | None = None
) -> Recognizer:
    """A model with `init`'s weights and normalisation; its label head is kept only if the labels agree.
    `dropout` replaces the checkpoint's (a setting of training, not of the architecture); None keeps it."""
    base = model_from_checkpoint(read_checkpoint(init), str(init))
    base.thresholds = {}  # calibrated for the weights training will change
    same = tuple(base.labels) == tuple(labels)
    if same and dropout in (None, base.config.dropout):
        return base
    torch.manual_seed(seed)
    config = replace(
        base.config, n_labels=len(labels), dropout=base.config.dropout if dropout is None else dropout
    )
    model = Recognizer(config, labels, base.features)
    state = {k: v for k, v in base.state_dict().items() if same or not k.startswith("label_head.")}
    model.load_state_dict(state, strict=same)
    return model


def train(
    cfg: TrainConfig,
    out: str | os.PathLike,
    model_config: ModelConfig | None = None,
    features: FeatureConfig | None = None,
    resume: bool = False,
    init: str | os.PathLike | None = None,
    progress_bar: bool = True,
    overwrite: bool = False,
    init_dropout: float | None = None,
) -> Path:
    """Train a model and write the best checkpoint to `out` (plus `<out>.last.pt`, metrics and curves).

    The stages are functions (`check_run_out`, `_resume`, `_make_data`, `_new_model`, `_open_run`,
    `_validate`, `_end_epoch`); the epoch and step loops stay here, in view, as in nanoGPT's train.py, which
    makes this function longer than the others.

    Args:
        cfg: training settings.
        out: path of the best checkpoint.
        model_config: architecture (its `n_labels` is set from the task); default architecture if None.
        features: MFCC settings; defaults if None.
        resume: continue from `<out>.last.pt` exactly where it stopped.
        init: start from this checkpoint's weights, architecture and normalisation (fine-tuning, e.g. the
            shipped model on your own recordings); a label head whose labels differ is re-initialised.
        progress_bar: show a tqdm bar per epoch.
        overwrite: where a run is at `out` already, delete its files and start a new one (without this
            or `resume`, an existing run is refused).
        init_dropout: with `init`, the dropout to train with in place of the checkpoint's; None keeps it.

    Returns:
        The path of the best checkpoint.

    Raises:
        SpeechRNNError: before any work, for a bad `out` (see `check_run_out`), device, corpus or
            checkpoint.
    """
    files = check_run_out(out, resume=resume, overwrite=overwrite)
    rank, world, local_rank = _distributed()
    device = _pick_device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.threads, world))
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)

    # 1. The run: resumed from its last state, or new.
    progress, model, optimizer_state = Progress(), None, None
    if resume:
        cfg, progress, model, optimizer_state = _resume(files.last, cfg)
    data = _make_data(cfg)
    if model is None:
        model = _new_model(cfg, data, model_config, features, init, init_dropout)
    elif tuple(model.labels) != tuple(data.train.labels):
        raise SpeechRNNError(f"{files.last}: its labels differ from the corpus's {cfg.task!r} task labels")
    model.to(device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    sampler = EpochBatches(data.long, cfg.batch_size, cfg.seed, rank, world, data.weights)
    batches_per_epoch = min(len(sampler), cfg.limit_batches or len(sampler))
    if batches_per_epoch == 0:
        raise SpeechRNNError(
            f"{cfg.data}: {len(data.train)} training clips are fewer than one batch of {cfg.batch_size}"
        )
    total_steps = batches_per_epoch * cfg.epochs
    if rank == 0:
        _open_run(files, progress, overwrite=overwrite)
        print(
            f"training {model.num_parameters():,} parameters on {len(data.train)} clips "
            f"({len(data.train.labels)} labels), {world} process(es) on {device}",
            flush=True,
        )

    # 2. The spelling phase, then epochs: the step loop, validation and the saves.
    start_time = time.monotonic() - progress.seconds
    last_save = time.monotonic()
    interrupted = out_of_time = False
    try:
        if progress.spelled < cfg.spell_steps:
            _spell(net, data, cfg, progress, optimizer, device, rank, world, progress_bar,
                   save=lambda: _save(files.last, model, cfg, progress, optimizer))  # fmt: skip
            start_time = last_save = time.monotonic()  # --max-minutes is the budget of what follows
        while progress.epoch < cfg.epochs and not out_of_time:
            epoch = progress.epoch
            data.set_epoch(epoch)
            sampler.set_epoch(epoch, skip=progress.batch)
            loader = DataLoader(data.both, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.workers,
                                persistent_workers=False, pin_memory=device.type == "cuda")  # fmt: skip
            net.train()
            bar = tqdm(total=batches_per_epoch, initial=progress.batch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not progress_bar or rank != 0, unit="batch", dynamic_ncols=True)  # fmt: skip
            sums: dict[str, float] = {}
            seen, t0, lr = 0, time.monotonic(), get_lr(progress.step, cfg, total_steps)
            for batch in loader:
                if progress.batch >= batches_per_epoch:
                    break
                batch = batch.to(device)
                lr = get_lr(progress.step, cfg, total_steps, time.monotonic() - start_time)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                torch.manual_seed(_seed_for(cfg.seed, progress.step, 11))  # dropout masks
                loss, parts = compute_loss(net, batch, cfg, progress.step, device)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                if torch.isfinite(grad_norm):  # one bad batch must not turn every weight into NaN
                    optimizer.step()
                progress.step += 1
                progress.batch += 1
                seen += batch.audio.shape[0] * world
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                rate = seen / max(time.monotonic() - t0, 1e-9)
                bar.set_postfix(loss=f"{parts['loss']:.3f}", lr=f"{lr:.1e}", clips_s=f"{rate:.0f}")
                bar.update(1)
                if rank == 0 and time.monotonic() - last_save > cfg.save_minutes * 60:
                    progress.seconds = time.monotonic() - start_time
                    _save(files.last, model, cfg, progress, optimizer)
                    last_save = time.monotonic()
                if cfg.max_minutes and time.monotonic() - start_time > cfg.max_minutes * 60:
                    out_of_time = True
                    break
            bar.close()
            n = max(progress.batch, 1)
            record = {"epoch": epoch + 1, "step": progress.step}
            record.update({f"train_{k}": sums.get(k, 0.0) / n for k in ("loss", "ce", "ctc", "stream")})
            record.update(_validate(model, data, cfg, device))
            progress.seconds = time.monotonic() - start_time
            record.update(
                clips_per_s=seen / max(time.monotonic() - t0, 1e-9), seconds=progress.seconds, lr=lr
            )
            if out_of_time:
                record["partial"] = True  # the budget ended mid-epoch; --resume would finish the epoch
            else:
                progress.epoch += 1
                progress.batch = 0
            if rank == 0:
                _end_epoch(
                    files, model, cfg, progress, optimizer, record, keep=cfg.keep_epochs and not out_of_time
                )
                last_save = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
        if rank == 0:
            if progress.spelled >= cfg.spell_steps:
                progress.seconds = time.monotonic() - start_time
            _save(files.last, model, cfg, progress, optimizer)
            print(f"stopped: saved training state to {files.last}; continue with --resume", flush=True)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0 and not files.best.exists():
        _save(files.best, model, cfg, progress, optimizer)
    if interrupted:
        raise KeyboardInterrupt
    return files.best


@dataclass
class _Data:
    """A run's datasets: training clips (and streams), validation words and phrases, validation streams."""

    train: SpeechCommandsDataset
    streams: TrainingStreams | None
    val: SpeechCommandsDataset  # clips and phrases, full context
    val_words: Dataset  # isolated words (and validation streams), scored as when streaming
    long: list[bool]  # per training item: batched with the other long items (phrases, sentences, streams)
    weights: list[float] | None = None  # per training item: drawn in proportion (`TrainConfig.balance_words`)

    @property
    def both(self) -> Dataset:
        return self.train if self.streams is None else ConcatDataset([self.train, self.streams])

    def set_epoch(self, epoch: int) -> None:
        self.train.set_epoch(epoch)
        if self.streams is not None:
            self.streams.set_epoch(epoch)


def _make_data(cfg: TrainConfig) -> _Data:
    augment = AugmentConfig() if cfg.augment else None
    train_set = SpeechCommandsDataset(
        cfg.data, "train", cfg.task, augment=augment, seed=cfg.seed, phrases=cfg.phrases
    )
    labels = train_set.labels
    streams = None
    if cfg.streams > 0:
        streams = TrainingStreams(
            train_set.corpus,
            labels,
            StreamConfig(per_epoch=cfg.streams, balance_words=cfg.balance_words),
            augment,
            cfg.seed,
        )
    val = SpeechCommandsDataset(
        cfg.data, "validation", cfg.task, seed=cfg.seed, phrases=cfg.phrases, labels=labels
    )
    val_words: Dataset = SpeechCommandsDataset(cfg.data, "validation", cfg.task, seed=cfg.seed, phrases=False,
                                               labels=labels)  # fmt: skip
    if min(cfg.streams, cfg.val_streams) > 0:  # streamed validation: isolated words, then streams
        n_val = StreamConfig(per_epoch=min(cfg.streams, cfg.val_streams))
        val_streams = TrainingStreams(
            train_set.corpus, labels, n_val, AugmentConfig(), cfg.seed, split="validation"
        )
        val_words = ConcatDataset([val_words, val_streams])
    clips = [clip for clip, _ in map(train_set.entry, range(len(train_set)))]
    n_streams = len(streams) if streams is not None else 0
    long = [clip is not None and clip.label in LONG_LABELS for clip in clips] + [True] * n_streams
    weights = None
    if cfg.balance_words:
        texts = [clip.text if clip is not None else "" for clip in clips]
        weights = word_balance(texts, labels).tolist() + [1.0] * n_streams
    return _Data(train_set, streams, val, val_words, long, weights)


def _new_model(
    cfg: TrainConfig,
    data: _Data,
    model_config: ModelConfig | None,
    features: FeatureConfig | None,
    init: str | os.PathLike | None,
    init_dropout: float | None = None,
) -> Recognizer:
    """Weights to start from: `init`'s (fine-tuning), or fresh ones with statistics from the corpus."""
    labels = data.train.labels
    if init is not None:
        return _warm_start(init, labels, cfg.seed, init_dropout).train()
    mc = replace(model_config or ModelConfig(n_labels=len(labels)), n_labels=len(labels))
    torch.manual_seed(cfg.seed)
    model = Recognizer(mc, labels, features or FeatureConfig(n_mfcc=mc.n_input))
    plain = SpeechCommandsDataset(cfg.data, "train", cfg.task, seed=cfg.seed, phrases=cfg.phrases)
    model.set_normalization(*feature_statistics(plain, model, cfg.norm_clips, cfg.seed))
    return model.train()


def _validate(model: Recognizer, data: _Data, cfg: TrainConfig, device: torch.device) -> dict:
    """Validation metrics of one epoch: full context, and as the live recogniser streams."""
    batch_size = max(cfg.batch_size, EVAL_BATCH_SIZE)
    metrics = evaluate_model(model, data.val, device=device, batch_size=batch_size, progress_bar=False)
    stream = evaluate_model(model, data.val_words, device=device, batch_size=batch_size, chunk=6, lookahead=4,
                            progress_bar=False)  # fmt: skip
    return {
        "val_loss": metrics["loss"],
        "val_accuracy": metrics["accuracy"],
        "val_accuracy_streaming": stream["accuracy"],
        "val_stream_accuracy": stream.get("stream_accuracy"),
        "val_wer": metrics.get("wer"),
    }
