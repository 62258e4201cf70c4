#!/usr/bin/env python3
"""Pack a corpus into a small Opus bundle to train on another machine, and unpack it there.

A rented GPU is often reachable only by copying files, under a size limit. The default synthetic corpus is
1 GB of 16-bit WAV; its bundle is about 44 MB: every clip is cut to its speech (plus a margin, from the word
times in `_meta_/clips.jsonl`) and stored as Opus at about 24 kbit/s, and the test split stays behind (it is
scored where the corpus was built). Unpacking writes every WAV back at its full length with the speech at
its old place, so the word times stay true; the split lists and `_meta_/` come along, and `testing_list.txt`
is empty unless the test split was packed. Unpacking needs only numpy and soundfile.

    python scripts/corpus_bundle.py pack data/synth-default /tmp/corpus.tgz
    python scripts/corpus_bundle.py unpack /tmp/corpus.tgz /tmp/corpus        # on the other machine
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

INDEX = "_bundle_/index.json"  # clip path -> [offset of the kept samples, full length]
CARRIED = ("validation_list.txt", "_meta_/clips.jsonl", "_meta_/voices.json", "_meta_/build.json")
MARGIN_S = 0.12  # kept around the speech
LEVEL = 0.94  # libsndfile's Opus compression level: 0.94 is about 24 kbit/s at 16 kHz
CHUNK = 64  # clips per worker task


def _word_spans(root: Path) -> dict[str, tuple[float, float]]:
    """Clip path -> (first word start, last word end) in seconds, where clips.jsonl knows them."""
    spans = {}
    meta = root / "_meta_" / "clips.jsonl"
    if meta.exists():
        for line in meta.read_text().splitlines():
            record = json.loads(line)
            if record.get("words"):
                spans[record["path"]] = (record["words"][0]["start"], record["words"][-1]["end"])
    return spans


def _encode(job: tuple[str, str, tuple[float, float] | None, float]) -> tuple[str, int, int, bytes]:
    root, rel, span, level = job
    audio, rate = sf.read(os.path.join(root, rel), dtype="float32")
    offset, total = 0, len(audio)
    if span is not None:
        offset = max(0, int((span[0] - MARGIN_S) * rate))
        audio = audio[offset : min(total, int((span[1] + MARGIN_S) * rate))]
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="OGG", subtype="OPUS", compression_level=level)
    return rel, offset, total, buf.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


def pack(root: str | os.PathLike, out: str | os.PathLike, *, with_test: bool = False, level: float = LEVEL,
         jobs: int | None = None) -> dict:  # fmt: skip
    """Write the bundle of corpus `root` to `out` (a .tgz); returns counts and sizes."""
    root = Path(root)
    if not (root / "validation_list.txt").exists():
        raise SystemExit(f"{root} is not a corpus in Speech Commands layout (no validation_list.txt)")
    test = set() if with_test else set((root / "testing_list.txt").read_text().split())
    spans = _word_spans(root)
    rels = sorted(str(p.relative_to(root)) for p in root.rglob("*.wav"))
    rels = [r for r in rels if r not in test]
    background = [r for r in rels if r.startswith("_background_noise_/")]  # noise is kept whole
    jobs_list = [(str(root), r, None if r in background else spans.get(r), level) for r in rels]
    index = {}
    with tarfile.open(out, "w:gz") as tar, ProcessPoolExecutor(jobs or os.cpu_count()) as pool:
        for done, (rel, offset, total, data) in enumerate(pool.map(_encode, jobs_list, chunksize=CHUNK), 1):
            _add_bytes(tar, rel[: -len(".wav")] + ".opus", data)
            index[rel] = [offset, total]
            if done % 2000 == 0 or done == len(jobs_list):
                print(f"pack: {done}/{len(jobs_list)} clips", file=sys.stderr, flush=True)
        for name in CARRIED + (("testing_list.txt",) if with_test else ()):
            if (root / name).exists():
                tar.add(root / name, name)
        _add_bytes(tar, INDEX, json.dumps(index).encode())
    wav_bytes = sum((root / r).stat().st_size for r in rels)
    return {"clips": len(rels), "left_out_test": len(test), "wav_mb": wav_bytes / 1e6,
            "bundle_mb": os.path.getsize(out) / 1e6}  # fmt: skip


def _decode(job: tuple[str, str, bytes, int, int]) -> None:
    dest, rel, data, offset, total = job
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    full = np.zeros(total, dtype=np.float32)
    n = max(0, min(len(audio), total - offset))
    full[offset : offset + n] = audio[:n]
    path = Path(dest) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, full, rate, subtype="PCM_16")


def _jobs(tar: tarfile.TarFile, dest: Path, index: dict):
    """Decode jobs for the clips; other members are written as they come."""
    for member in tar:
        if not member.isfile() or member.name == INDEX:
            continue
        data = tar.extractfile(member).read()
        if member.name.endswith(".opus"):
            rel = member.name[: -len(".opus")] + ".wav"
            yield str(dest), rel, data, *index[rel]
        else:
            (dest / member.name).parent.mkdir(parents=True, exist_ok=True)
            (dest / member.name).write_bytes(data)


def unpack(bundle: str | os.PathLike, dest: str | os.PathLike, *, jobs: int | None = None) -> int:
    """Write the corpus in `bundle` under `dest`; returns the number of clips."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(bundle, "r:gz") as tar:
        index = json.loads(tar.extractfile(INDEX).read())
    with tarfile.open(bundle, "r:gz") as tar, ProcessPoolExecutor(jobs or os.cpu_count()) as pool:
        for _ in pool.map(_decode, _jobs(tar, dest, index), chunksize=CHUNK):
            pass
    if not (dest / "testing_list.txt").exists():
        (dest / "testing_list.txt").write_text("")  # the test split stayed behind
    return len(index)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="corpus -> bundle (.tgz)")
    p.add_argument("corpus", help="corpus root (Speech Commands layout)")
    p.add_argument("bundle", help="bundle to write (.tgz)")
    p.add_argument("--with-test", action="store_true", help="pack the test split too (default: left behind)")
    p.add_argument("--level", type=float, default=LEVEL,
                   help="Opus compression level 0..1: higher is smaller (0.9: ~32, 0.94: ~24 kbit/s)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=None, help="encoding processes (default: all cores)")
    u = sub.add_parser("unpack", help="bundle -> corpus")
    u.add_argument("bundle")
    u.add_argument("dest", help="directory to write the corpus in")
    u.add_argument("--jobs", type=int, default=None, help="decoding processes (default: all cores)")
    args = ap.parse_args()
    start = time.monotonic()
    if args.command == "pack":
        info = pack(args.corpus, args.bundle, with_test=args.with_test, level=args.level, jobs=args.jobs)
        print(f"packed {info['clips']} clips ({info['wav_mb']:.0f} MB of WAV) into {args.bundle}: "
              f"{info['bundle_mb']:.1f} MB; {info['left_out_test']} test clips left behind; "
              f"{time.monotonic() - start:.0f} s")  # fmt: skip
    else:
        n = unpack(args.bundle, args.dest, jobs=args.jobs)
        print(f"unpacked {n} clips into {args.dest} in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
