// Streaming resampler: windowed-sinc interpolation, low-passed below the lower rate's Nyquist frequency.
// Its output does not depend on how the input is cut into blocks, so the worklet can feed it 128 frames at a time.

const ZERO_CROSSINGS = 16; // sinc lobes each side: about 70 dB of stop band with the Blackman window
const TABLE_STEPS = 512; // kernel samples per input sample, linearly interpolated between

export class Resampler {
  constructor(inRate, outRate) {
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate; // input samples per output sample
    this.cutoff = Math.min(1, outRate / inRate) * 0.95; // of the input's Nyquist frequency, leaving a transition band
    this.half = Math.ceil(ZERO_CROSSINGS / this.cutoff); // kernel half-width in input samples
    this.table = kernelTable(this.half, this.cutoff);
    // History starts with `half` zeros so that the first output sample sits at input sample 0.
    this.buffer = new Float32Array(4 * this.half + 4096);
    this.length = this.half;
    this.count = 0; // output samples made so far
    this.dropped = 0; // input samples no longer held in `buffer`
  }

  // Takes any number of input samples; returns the output samples they complete. Positions are computed
  // from the output's index, never accumulated, so that rounding cannot depend on the block sizes.
  process(input) {
    this.append(input);
    const out = [];
    for (;;) {
      const position = this.count * this.step; // in input samples from the start of the stream
      const whole = Math.floor(position);
      const base = whole + this.half - this.dropped; // that input sample's index in `buffer`
      if (base + this.half >= this.length) break;
      out.push(this.sample(base, position - whole));
      this.count++;
    }
    const next = Math.floor(this.count * this.step) + this.half - this.dropped;
    const drop = Math.max(0, next - this.half);
    this.buffer.copyWithin(0, drop, this.length);
    this.length -= drop;
    this.dropped += drop;
    return Float32Array.from(out);
  }

  append(input) {
    if (this.length + input.length > this.buffer.length) {
      const bigger = new Float32Array(2 * (this.length + input.length));
      bigger.set(this.buffer.subarray(0, this.length));
      this.buffer = bigger;
    }
    this.buffer.set(input, this.length);
    this.length += input.length;
  }

  sample(base, frac) {
    let sum = 0;
    for (let k = -this.half + 1; k <= this.half; k++) {
      const x = (k - frac) * TABLE_STEPS + this.half * TABLE_STEPS; // kernel index of distance k - frac
      const i = Math.floor(x);
      const w = this.table[i] + (x - i) * (this.table[i + 1] - this.table[i]);
      sum += this.buffer[base + k] * w;
    }
    return sum;
  }
}

function kernelTable(half, cutoff) {
  const n = 2 * half * TABLE_STEPS + 2;
  const table = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = i / TABLE_STEPS - half; // distance in input samples
    const t = (x / half + 1) / 2; // 0..1 across the window
    const window = t <= 0 || t >= 1 ? 0 : 0.42 - 0.5 * Math.cos(2 * Math.PI * t) + 0.08 * Math.cos(4 * Math.PI * t);
    const arg = Math.PI * cutoff * x;
    table[i] = cutoff * (x === 0 ? 1 : Math.sin(arg) / arg) * window;
  }
  return table;
}
