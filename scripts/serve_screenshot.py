#!/usr/bin/env python3
"""The README's picture of `speechrnn serve`: the page in Debian's headless Chromium, hearing the sample clips
through a fake microphone, with a dropped phrase transcribed.

    python scripts/serve_screenshot.py [--out docs/serve.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from playwright.sync_api import sync_playwright

from speechrnn.audio import SAMPLE_RATE, list_audio_files, load_audio
from speechrnn.serve_client import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/lib/chromium/chromium"
MIC_RATE = 48000  # what sound cards give; the page resamples it


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "serve.png"))
    ap.add_argument("--detections", type=int, default=7, help="take the picture once this many are shown")
    args = ap.parse_args()

    pause = np.zeros(round(0.7 * SAMPLE_RATE), np.float32)
    clips = [load_audio(p) for p in list_audio_files([ROOT / "data" / "samples"]) if "phrase" not in p.name]
    audio = np.concatenate([pause] + [x for clip in clips for x in (clip, pause)])
    with tempfile.TemporaryDirectory() as tmp, ServerProcess() as server, sync_playwright() as p:
        mic = Path(tmp) / "mic.wav"
        sf.write(mic, AF.resample(torch.from_numpy(audio), SAMPLE_RATE, MIC_RATE).numpy(), MIC_RATE)
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}",
            ],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 860}, device_scale_factor=1)
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.click("#start")
        page.set_input_files("#file", str(ROOT / "data" / "samples" / "phrase_03e8039f.flac"))
        page.wait_for_selector("#result[data-state=done]", timeout=60000)
        page.wait_for_function(
            f"document.querySelectorAll('#detections li').length >= {args.detections}", timeout=120000
        )
        page.wait_for_function("parseFloat(document.getElementById('level').style.width) > 50", timeout=30000)
        page.screenshot(path=args.out)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
