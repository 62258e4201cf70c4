#!/usr/bin/env python3
"""Pack a corpus into a small Opus bundle to train on another machine, and unpack it there.

A rented GPU is often reachable only by copying files, under a size limit. The default synthetic corpus is
1 GB of 16-bit WAV; its bundle is about 44 MB: every clip is cut to its speech (plus a margin, from the word
times in `_meta_/clips.jsonl`) and stored as Opus at about 24 kbit/s, and the test split stays behind (it is
scored where the corpus was built). Unpacking writes every WAV back at its full length with the speech at
its old place, so the word times stay true; the split lists and `_meta_/` come along, and `testing_list.txt`
is empty unless the test split was packed. Packing runs where speechrnn is installed; unpacking needs only
numpy and soundfile.

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
MARGIN_S = 0.12  # kept around the speech
LEVEL = 0.94  # libsndfile's Opus compression level: 0.94 is about 24 kbit/s at 16 kHz
CHUNK = 64  # clips per worker task


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
    from speechrnn.corpus import META_DIR, META_FILE, TESTING_LIST, VALIDATION_LIST
    from speechrnn.speechcommands import _read_meta

    root = Path(root)
    if not (root / VALIDATION_LIST).exists():
        raise SystemExit(f"{root} is not a corpus in Speech Commands layout (no {VALIDATION_LIST})")
    testing = (root / TESTING_LIST).read_text() if (root / TESTING_LIST).exists() else ""
    test = set() if with_test else set(testing.split())
    words = {path: r["words"] for path, r in _read_meta(root / META_FILE).items() if r.get("words")}
    rels = sorted(str(p.relative_to(root)) for p in root.rglob("*.wav"))
    rels = [r for r in rels if r not in test]
    jobs_list = [
        (str(root), r, (words[r][0]["start"], words[r][-1]["end"]) if r in words else None, level)
        for r in rels
    ]  # background noise has no word times, so it is kept whole
    index = {}
    with tarfile.open(out, "w:gz") as tar, ProcessPoolExecutor(jobs or os.cpu_count()) as pool:
        for done, (rel, offset, total, data) in enumerate(pool.map(_encode, jobs_list, chunksize=CHUNK), 1):
            _add_bytes(tar, rel[: -len(".wav")] + ".opus", data)
            index[rel] = [offset, total]
            if done % 2000 == 0 or done == len(jobs_list):
                print(f"pack: {done}/{len(jobs_list)} clips", file=sys.stderr, flush=True)
        for name in (VALIDATION_LIST, META_FILE, f"{META_DIR}/voices.json", f"{META_DIR}/build.json"):
            if (root / name).exists():
                tar.add(root / name, name)
        _add_bytes(tar, TESTING_LIST, (testing if with_test else "").encode())  # empty: the test split stayed
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


def unpack(bundle: str | os.PathLike, dest: str | os.PathLike, *, jobs: int | None = None) -> int:
    """Write the corpus in `bundle` under `dest`; returns the number of clips."""
    dest = Path(dest)
    with tarfile.open(bundle, "r:gz") as tar:  # one pass: the index is the last member
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    index = json.loads(members.pop(INDEX))
    clips = []
    for name, data in members.items():
        if name.endswith(".opus"):
            rel = name[: -len(".opus")] + ".wav"
            clips.append((str(dest), rel, data, *index[rel]))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(data)
    with ProcessPoolExecutor(jobs or os.cpu_count()) as pool:
        for _ in pool.map(_decode, clips, chunksize=CHUNK):
            pass
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
