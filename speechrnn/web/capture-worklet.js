// AudioWorklet: the microphone's first channel, resampled to the server's rate, posted in blocks.
import { Resampler } from "./resample.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate, blockSamples } = options.processorOptions;
    this.resampler = new Resampler(sampleRate, targetRate);
    this.block = new Float32Array(blockSamples);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      let samples = this.resampler.process(channel);
      while (samples.length) {
        const n = Math.min(samples.length, this.block.length - this.filled);
        for (let i = 0; i < n; i++) {
          this.block[this.filled + i] = Math.max(-1, Math.min(1, samples[i])); // the sinc's ripple can overshoot full scale
        }
        this.filled += n;
        samples = samples.subarray(n);
        if (this.filled === this.block.length) {
          this.port.postMessage(this.block.slice(0)); // a copy: the block is reused
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("speechrnn-capture", CaptureProcessor);
