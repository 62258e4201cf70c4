#!/usr/bin/env python3
"""Per-keyword thresholds for `listen`, calibrated on the validation split and written into the model.

One threshold for all 35 command words spends the false-alarm budget badly: "sheila" is rarely heard in
other speech and is lost at a threshold that "off" or "two" need. This script gives each command word its
own threshold, for the label head and for the CTC keyword path, so that on validation the table raises no
more false alarms than the single default threshold does, and finds as many command words as it can with
them.

Material (validation voices, each clip over the split's noise bed at `--snr-db`, as the benchmarks lay it):
- the connected utterances as one live stream (`bench_connected`): a command word heard in a digit, command or
  carrier utterance counts as found up to the number of times it was said there; beyond that, and any
  command word heard in prose or homophone prose, it is a false alarm;
- isolated command words, unknown words and non-command sentences as another stream (`bench_streaming`): a
  detection of the word being said is found; any other is a false alarm.

The rule (greedy, from every keyword at the top of the grid): lower one keyword's threshold at a time, the
move with the most words found per false alarm it adds, while the total false alarms stay within those of
the single default threshold on the same material; a move that finds nothing more is not made. For the
CTC path the budget is the label head's, so the two decisions compare at the same false alarms; where even
the top of the grid spends more than that, the model gets no CTC table.

Fifty examples a word overfit such a table (it lost to the single threshold on the test split once), so each
keyword's threshold is moved only part of the way from the single threshold: `single + w * (own - single)`,
snapped to the grid. The weight `w` is chosen by cross-validation over voices: the validation speakers are
cut in two halves; a table fitted on one half and shrunk by `w` is scored on the other, both ways round; the
weight that finds the most held-out words with no more held-out false alarms than the budget's single
threshold is taken (0: no table, when none finds more than the single threshold does).

Writes the table into `--model` (or `--out`), and the figures to docs/thresholds_validation.json.

Usage:
    .venv/bin/python scripts/calibrate_thresholds.py --data data/synth-default --model runs/x/model.pt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import bench_connected
import bench_streaming
import numpy as np
import torch

from speechrnn.audio import SAMPLE_RATE
from speechrnn.checkpoint import atomic_write, check_thresholds, load_model, read_checkpoint
from speechrnn.config import SpotterConfig
from speechrnn.kws import KeywordConfig
from speechrnn.latency import LIVE
from speechrnn.live import KeywordListener
from speechrnn.streaming import TorchStep
from speechrnn.utterances import command_tokens
from speechrnn.words import SILENCE, UNKNOWN

ROOT = Path(__file__).resolve().parents[1]
GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # 0.3 ... 0.95
TOLERANCE_S = 0.5  # a detection may come this long after its word's end (bench_streaming allows 0.75)
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # how far a keyword's threshold moves from the single one to its own


def material(data: Path, snr_db: float, seed: int, max_words: int) -> list[dict]:
    """The two validation streams: audio, the records in order, and the spoken words with stream times."""
    rng = np.random.default_rng(seed)
    records = bench_streaming.split_records(data, "validation")
    noise = bench_streaming.noise_bed(data, records)
    utterances = bench_connected.utterances(data, "validation", None, seed)
    connected, said = bench_streaming.build_stream(data, utterances, noise, rng, snr_db, (0.4, 1.2))
    labels = {r["label"] for r in records if not r["label"].startswith("_")}
    words = [r for r in records if r["label"] in labels]
    others = [r for r in records if r["label"] in (UNKNOWN, "_sentence_")]
    chosen = [words[i] for i in rng.permutation(len(words))[:max_words]] + others
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    isolated, spoken = bench_streaming.build_stream(data, chosen, noise, rng, snr_db, (0.4, 1.2))
    return [
        {"name": "connected", "audio": connected, "records": utterances, "words": said},
        {"name": "isolated", "audio": isolated, "records": chosen, "words": spoken},
    ]


def _nearest_speaker(words: list[dict]):
    """The speaker of the spoken word nearest in time: whose voice a false alarm is charged to."""
    mids = np.array([(w["start"] + w["end"]) / 2 for w in words])
    order = np.argsort(mids)
    mids, speakers = mids[order], [words[i]["speaker"] for i in order]

    def nearest(t: float) -> str:
        i = int(np.searchsorted(mids, t))
        return speakers[min(range(max(i - 1, 0), min(i + 1, len(mids))), key=lambda j: abs(mids[j] - t))]

    return nearest


def events(stream: dict, detections: list, keywords: list[str]) -> list[tuple[str, str, bool]]:
    """`(keyword, speaker, found)` of each detection of one stream (see the module docstring): a word found,
    or a false alarm charged to the speaker nearest in time."""
    nearest = _nearest_speaker(stream["words"])
    out = []
    if stream["name"] == "connected":
        truth = stream["words"]
        heard = bench_connected._detections_per_utterance(stream["records"], truth, detections)
        for r, got in zip(stream["records"], heard, strict=True):
            said = Counter(command_tokens(r["text"], keywords))
            for k, n in Counter(got).items():
                out += [(k, r["speaker"], i < said[k]) for i in range(n)]
        inside = Counter(w for h in heard for w in h)
        for d in sorted(detections, key=lambda d: d.time):  # heard in the noise between utterances
            if inside[d.keyword]:
                inside[d.keyword] -= 1
            else:
                out.append((d.keyword, nearest(d.time), False))
        return out
    truth = sorted((w for w in stream["words"] if w["word"] in keywords), key=lambda w: w["start"])
    used = [False] * len(truth)
    for d in sorted(detections, key=lambda d: d.time):
        hit = next(
            (i for i, w in enumerate(truth)
             if not used[i] and w["word"] == d.keyword and w["start"] <= d.time <= w["end"] + TOLERANCE_S),
            None,
        )  # fmt: skip
        if hit is None:
            out.append((d.keyword, nearest(d.time), False))
        else:
            used[hit] = True
            out.append((d.keyword, truth[hit]["speaker"], True))
    return out


def tally(swept: dict, speakers: set[str] | None = None) -> dict:
    """Per threshold: words found and false alarms per keyword, of the given speakers (None: all)."""
    table = {}
    for t, evs in swept.items():
        found, false = Counter(), Counter()
        for k, speaker, hit in evs:
            if speakers is None or speaker in speakers:
                (found if hit else false)[k] += 1
        table[t] = (found, false)
    return table


def sweep(step, outputs: list[list], streams: list[dict], keywords: list[str], decide: str) -> dict:
    """Per threshold of `GRID`: the events (`events`) of both streams."""
    swept = {}
    for t in GRID:
        swept[t] = []
        for stream, outs in zip(streams, outputs, strict=True):
            listener = KeywordListener(step, decide=decide, threshold=t)
            detections = [d for out in outs for d in listener.hear(out).detections]
            swept[t] += events(stream, detections, keywords)
    return swept


def calibrate(table: dict, keywords: list[str], budget: int) -> dict[str, float]:
    """The greedy rule of the module docstring: a threshold per keyword."""
    chosen = {k: GRID[-1] for k in keywords}
    spent = sum(table[GRID[-1]][1][k] for k in keywords)
    while True:
        best = None
        for k in keywords:
            now_found, now_false = table[chosen[k]][0][k], table[chosen[k]][1][k]
            for t in sorted((t for t in GRID if t < chosen[k]), reverse=True):  # ties: the higher
                gain, cost = table[t][0][k] - now_found, table[t][1][k] - now_false
                if gain > 0 and spent + cost <= budget:
                    ratio = gain / max(cost, 0.5)
                    if best is None or ratio > best[0]:
                        best = (ratio, k, t, cost)
        if best is None:
            return chosen
        _, k, t, cost = best
        chosen[k], spent = t, spent + cost


def totals(table: dict, chosen: dict[str, float]) -> tuple[int, int]:
    return sum(table[t][0][k] for k, t in chosen.items()), sum(table[t][1][k] for k, t in chosen.items())


def shrink(chosen: dict[str, float], single: float, weight: float) -> dict[str, float]:
    """Each threshold `weight` of the way from `single` to its own, at the nearest grid point."""
    return {k: min(GRID, key=lambda g: abs(g - (single + weight * (t - single)))) for k, t in chosen.items()}


def halves(*swept: dict) -> tuple[set[str], set[str]]:
    """The speakers of any of `swept`'s events in two halves, by a hash of their ids (the same for every
    model and decision)."""
    speakers = sorted({speaker for one in swept for evs in one.values() for _, speaker, _ in evs})
    first = {s for s in speakers if hashlib.blake2b(s.encode(), digest_size=2).digest()[0] % 2 == 0}
    return first, set(speakers) - first


def cross_validate(
    swept: dict, budget_swept: dict, keywords: list[str], single: float, budget_single: float
) -> dict:
    """Per shrink weight: words found and false alarms on held-out voices, summed over both halves, of a
    table fitted on the other half; and of `budget_single` for `budget_swept`, the budget the table must keep."""
    first, second = halves(swept, budget_swept)  # a voice with budget events only is in a half too
    result = {f"{w:g}": [0, 0] for w in WEIGHTS} | {"budget": [0, 0]}
    for fit_on, held in ((first, second), (second, first)):
        fit, test = tally(swept, fit_on), tally(swept, held)
        budget = totals(tally(budget_swept, fit_on), dict.fromkeys(keywords, budget_single))[1]
        chosen = calibrate(fit, keywords, budget)
        for w in WEIGHTS:
            found, false = totals(test, shrink(chosen, single, w))
            result[f"{w:g}"][0] += found
            result[f"{w:g}"][1] += false
        found, false = totals(tally(budget_swept, held), dict.fromkeys(keywords, budget_single))
        result["budget"][0] += found
        result["budget"][1] += false
    return result


def best_weight(cv: dict) -> float:
    """The weight finding the most held-out words within the budget's held-out false alarms and more than
    the budget's single threshold finds; 0 when none does."""
    budget_found, budget_false = cv["budget"]
    fits = [
        (cv[f"{w:g}"][0], w)
        for w in WEIGHTS
        if cv[f"{w:g}"][1] <= budget_false and cv[f"{w:g}"][0] > budget_found
    ]
    return max(fits)[1] if fits else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, type=Path, help="corpus built by `speechrnn synth`")
    parser.add_argument("--model", required=True, type=Path, help="checkpoint to calibrate")
    parser.add_argument(
        "--out", type=Path, default=None, help="write the calibrated model here (default: --model)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=SpotterConfig.threshold,
        help="the single threshold whose false alarms are the budget",
    )
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--max-words", type=int, default=1500, help="isolated command clips in the stream")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path, default=ROOT / "docs" / "thresholds_validation.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    model = load_model(args.model)
    model.thresholds = {}  # calibrate from the single default, not from an earlier table
    keywords = [x for x in model.labels if x not in (SILENCE, UNKNOWN)]
    streams = material(args.data, args.snr_db, args.seed, args.max_words)
    step = TorchStep(model, LIVE.chunk_ms, LIVE.lookahead_ms)
    outputs = [bench_streaming.step_outputs(step, s["audio"]) for s in streams]
    seconds = {s["name"]: round(s["audio"].size / SAMPLE_RATE, 1) for s in streams}
    print(f"calibrate: streams of {seconds} s", file=sys.stderr)

    label_events = sweep(step, outputs, streams, keywords, "label")
    default = args.threshold
    budget = totals(tally(label_events), dict.fromkeys(keywords, default))[1]
    result = {
        "streams_seconds": seconds,
        "snr_db": args.snr_db,
        "budget_false_alarms": budget,
        "speakers_per_half": [len(h) for h in halves(label_events)],
        "decisions": {},
    }
    tables = {}
    for decide, swept, single in (("label", label_events, default),
                                  ("ctc", sweep(step, outputs, streams, keywords, "ctc"), KeywordConfig.threshold)):  # fmt: skip
        table = tally(swept)
        cv = cross_validate(swept, label_events, keywords, single, default)
        weight = best_weight(cv)
        fitted = calibrate(table, keywords, budget)
        chosen = shrink(fitted, single, weight)
        found, false = totals(table, chosen)
        if weight > 0 and false <= budget:  # else no table: the single threshold serves as well
            tables[decide] = chosen
        found1, false1 = totals(table, dict.fromkeys(keywords, single))
        result["decisions"][decide] = {
            "table": chosen,
            "shipped": decide in tables,
            "weight": weight,
            "fitted": fitted,
            "cross_validation": cv,  # weight -> [held-out found, held-out false alarms]; budget: the single's
            "found": found,
            "false_alarms": false,
            f"single_{single:g}": {"found": found1, "false_alarms": false1},
            "per_keyword": {k: [table[t][0][k], table[t][1][k]] for k, t in chosen.items()},  # found, false
            "sweep": {f"{t:g}": list(totals(table, dict.fromkeys(keywords, t))) for t in GRID},
        }
        print(f"{decide}: cross-validated weight {weight:g} ({cv}); table finds {found} with {false} false "
              f"alarms; one threshold {single:g}: {found1} with {false1}", file=sys.stderr)  # fmt: skip
    ckpt = read_checkpoint(args.model)  # everything else of the checkpoint as it was
    ckpt["thresholds"] = check_thresholds(tables, model.labels, str(args.model))
    atomic_write(args.out or args.model, lambda tmp: torch.save(ckpt, tmp))
    args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
