// The keyword scores of the last seconds on a canvas: one line per keyword that rose above the floor,
// the threshold dashed, each detection marked where it was decided.

const FLOOR = 0.05; // keywords that never reach this in the window are not drawn
const GOLDEN_ANGLE = 137.508; // degrees: consecutive keywords get hues far apart, and no two of 35 the same

export function colourOf(keyword, keywords) {
  const hue = (Math.max(0, keywords.indexOf(keyword)) * GOLDEN_ANGLE + 220) % 360;
  return `hsl(${hue.toFixed(0)} 70% 42%)`;
}

export class ScorePlot {
  constructor(canvas, { seconds = 10 } = {}) {
    this.canvas = canvas;
    this.seconds = seconds;
    this.points = []; // {time, p}: p per label
    this.marks = []; // {time, keyword}
    this.labels = [];
    this.keywords = [];
    this.enabled = new Set();
    this.threshold = 0.5;
    this.now = 0;
    this.dirty = true;
    const frame = () => {
      if (this.dirty) this.draw();
      this.dirty = false;
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  setLabels(labels, keywords) {
    this.labels = labels;
    this.keywords = keywords;
    this.dirty = true;
  }

  push(time, p) {
    this.points.push({ time, p });
    this.now = Math.max(this.now, time);
    this.forget();
  }

  mark(time, keyword) {
    this.marks.push({ time, keyword });
    this.forget();
  }

  advance(time) {
    this.now = Math.max(this.now, time);
    this.forget();
  }

  clear() {
    this.points = [];
    this.marks = [];
    this.now = 0;
    this.dirty = true;
  }

  forget() {
    const start = this.now - this.seconds - 1;
    while (this.points.length && this.points[0].time < start) this.points.shift();
    while (this.marks.length && this.marks[0].time < start) this.marks.shift();
    this.dirty = true;
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const pad = { left: 34, right: 70, top: 10, bottom: 22 };
    const w = width - pad.left - pad.right;
    const h = height - pad.top - pad.bottom;
    const start = Math.max(0, this.now - this.seconds);
    const x = (t) => pad.left + ((t - start) / this.seconds) * w;
    const y = (p) => pad.top + (1 - p) * h;

    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#64748b";
    g.strokeStyle = "#e2e8f0";
    g.lineWidth = 1;
    for (const p of [0, 0.25, 0.5, 0.75, 1]) {
      g.beginPath();
      g.moveTo(pad.left, y(p));
      g.lineTo(pad.left + w, y(p));
      g.stroke();
      g.fillText(p.toFixed(2), 2, y(p) + 4);
    }
    for (let t = Math.ceil(start); t <= start + this.seconds; t++) {
      g.fillText(`${t}s`, x(t) - 6, height - 6);
    }

    g.save();
    g.strokeStyle = "#0f172a";
    g.setLineDash([5, 4]);
    g.beginPath();
    g.moveTo(pad.left, y(this.threshold));
    g.lineTo(pad.left + w, y(this.threshold));
    g.stroke();
    g.restore();

    const visible = this.points.filter((q) => q.time >= start);
    const labelled = [];
    this.labels.forEach((label, i) => {
      if (!this.keywords.includes(label) || !this.enabled.has(label)) return;
      if (!visible.some((q) => q.p[i] >= FLOOR)) return;
      const colour = colourOf(label, this.keywords);
      g.strokeStyle = colour;
      g.lineWidth = 2;
      g.beginPath();
      visible.forEach((q, j) => (j ? g.lineTo(x(q.time), y(q.p[i])) : g.moveTo(x(q.time), y(q.p[i]))));
      g.stroke();
      let peak = visible[0];
      for (const q of visible) if (q.p[i] > peak.p[i]) peak = q;
      labelled.push({ label, colour, at: peak, i });
    });
    for (const { label, colour, at, i } of labelled) {
      g.fillStyle = colour;
      g.font = "600 12px system-ui, sans-serif";
      g.fillText(label, Math.min(x(at.time) + 4, pad.left + w + 4), Math.max(y(at.p[i]) - 4, 12));
    }

    for (const m of this.marks) {
      if (m.time < start) continue;
      g.strokeStyle = colourOf(m.keyword, this.keywords);
      g.lineWidth = 1.5;
      g.beginPath();
      g.moveTo(x(m.time), pad.top);
      g.lineTo(x(m.time), pad.top + h);
      g.stroke();
    }
  }
}
