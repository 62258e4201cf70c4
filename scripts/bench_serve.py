#!/usr/bin/env python3
"""Load and soak of `speechrnn serve`: clients at real time at once, then clients coming and going for minutes.

    python scripts/bench_serve.py [--clients 8] [--minutes 10] [--out docs/bench_serve.json]

Starts the server as users do (`python -m speechrnn serve --port 0`, on 127.0.0.1), then
1. load: `--clients` clients each stream the sample clips (data/samples, joined with pauses) at real time at
   once; reports whether each heard what the engine hears alone, the server's compute per second of audio
   (real-time factor), the cores it used and its memory;
2. soak: as many clients for `--minutes`, each in turn streaming to the end, leaving mid-word and sending
   bytes that are not audio (`serve_client.soak`); reports the server's memory over time.
Writes the figures as JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np

from speechrnn.audio import SAMPLE_RATE, list_audio_files, load_audio
from speechrnn.serve import LiveSpotter
from speechrnn.serve_client import ServerProcess, soak, stream_audio

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8, help="clients at once")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_serve.json"))
    args = ap.parse_args()

    pause = np.zeros(round(0.8 * SAMPLE_RATE), np.float32)
    clips = [load_audio(p) for p in list_audio_files([ROOT / "data" / "samples"])]
    audio = np.concatenate([pause] + [x for clip in clips for x in (clip, pause)])
    alone = LiveSpotter(LiveSpotter.load())
    expected = [d.to_dict() for d in alone.feed(audio).detections + alone.finish().detections]

    with ServerProcess("--max-connections", str(args.clients + 4)) as server:
        load = run_load(server.ws, server.stats, audio, expected, args.clients)
        print(f"load: {json.dumps(load)}", flush=True)
        minutes = 60 * args.minutes
        figures = soak(
            server.ws, server.stats, audio, seconds=minutes, clients=args.clients, sample_every=10.0
        )
        after = server.wait_idle()
    soaked = {
        **figures,
        "streams_left": after["streams"],
        "threads_after": after["threads"],
        "rss_first_mb": figures["rss_mb"][0],
        "rss_max_mb": max(figures["rss_mb"]),
        "rss_last_mb": figures["rss_mb"][-1],
    }
    print(f"soak: {json.dumps({k: v for k, v in soaked.items() if k not in ('times_s', 'rss_mb')})}")
    report = {
        "command": f"python scripts/bench_serve.py --clients {args.clients} --minutes {args.minutes:g}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        "stream_s": round(audio.size / SAMPLE_RATE, 1),
        "expected_keywords": [d["keyword"] for d in expected],
        "load": load,
        "soak": soaked,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


def run_load(url: str, stats, audio: np.ndarray, expected: list[dict], clients: int) -> dict:
    """`clients` clients streaming `audio` at real time at once."""
    before = stats()
    results: dict[int, object] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.update({i: stream_audio(url, audio, timeout=120)}))
        for i in range(clients)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    peak = before["rss_mb"]
    while any(t.is_alive() for t in threads):
        peak = max(peak, stats()["rss_mb"])
        time.sleep(1.0)
    wall = time.monotonic() - t0
    after = stats()
    audio_s = after["audio_s"] - before["audio_s"]
    compute_s = after["compute_s"] - before["compute_s"]
    cpu_s = after["cpu_s"] - before["cpu_s"]
    return {
        "clients": clients,
        "all_heard_as_alone": all(results[i].detections == expected for i in range(clients)),
        "detections_per_client": [len(results[i].detections) for i in range(clients)],
        "wall_s": round(wall, 1),
        "audio_s": round(audio_s, 1),
        "compute_s": round(compute_s, 2),
        "real_time_factor": round(compute_s / audio_s, 4),  # engine wall time per second of audio, one stream
        "cpu_per_audio_s": round(cpu_s / audio_s, 4),  # the server's CPU time per second of audio
        "cores_used": round(cpu_s / wall, 2),  # the server's CPU time per second, all streams
        "rss_before_mb": before["rss_mb"],
        "rss_peak_mb": peak,
        "rss_after_mb": after["rss_mb"],
    }


if __name__ == "__main__":
    main()
