// The page: keyword list and threshold, the live stream to /live, and the drop zone for /transcribe.
import { startCapture } from "./capture.js";
import { ScorePlot, colourOf } from "./plot.js";

const $ = (id) => document.getElementById(id);
const BLOCK_SECONDS = 0.1; // audio per WebSocket message
const MAX_SHOWN = 12; // detections kept in the list

const state = { info: null, enabled: new Set(), socket: null, capture: null, plot: new ScorePlot($("plot")) };

function setStatus(text, kind = "idle") {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

function settings() {
  const all = state.info.keywords.every((k) => state.enabled.has(k));
  return { keywords: all ? null : [...state.enabled], threshold: Number($("threshold").value) };
}

function sendSettings() {
  const { socket } = state;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "config", ...settings() }));
  state.plot.enabled = state.enabled;
  state.plot.threshold = Number($("threshold").value);
  state.plot.dirty = true;
}

function renderKeywords() {
  const box = $("keywords");
  box.replaceChildren();
  for (const keyword of state.info.keywords) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.textContent = keyword;
    chip.dataset.keyword = keyword;
    chip.style.setProperty("--chip", colourOf(keyword, state.info.keywords));
    chip.setAttribute("aria-pressed", String(state.enabled.has(keyword)));
    chip.addEventListener("click", () => {
      if (state.enabled.has(keyword)) state.enabled.delete(keyword);
      else state.enabled.add(keyword);
      chip.setAttribute("aria-pressed", String(state.enabled.has(keyword)));
      sendSettings();
    });
    box.append(chip);
  }
}

function showDetection(d) {
  const latest = $("latest");
  latest.className = "latest flash";
  latest.style.color = colourOf(d.keyword, state.info.keywords);
  latest.replaceChildren(d.keyword, Object.assign(document.createElement("small"), { textContent: d.score.toFixed(2) }));
  void latest.offsetWidth; // restart the animation for a repeated word
  const item = document.createElement("li");
  item.dataset.keyword = d.keyword;
  item.dataset.time = d.time;
  item.innerHTML = `<b></b><span class="muted"></span>`;
  item.querySelector("b").textContent = d.keyword;
  item.querySelector("span").textContent = `${d.time.toFixed(1)} s · ${d.score.toFixed(2)}`;
  $("detections").prepend(item);
  while ($("detections").children.length > MAX_SHOWN) $("detections").lastChild.remove();
  state.plot.mark(d.time, d.keyword);
}

function onUpdate(update) {
  const level = Math.max(0, Math.min(1, (update.level + 60) / 60)); // -60..0 dBFS
  $("level").style.width = `${(100 * level).toFixed(1)}%`;
  $("clock").textContent = `${update.time.toFixed(1)} s`;
  if (update.scores) state.plot.push(update.scores.time, update.scores.p);
  else state.plot.advance(update.time);
  update.detections.forEach(showDetection);
}

async function start() {
  const info = state.info;
  showMessage("");
  $("start").disabled = true;
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/live`);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  state.plot.clear();
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "start", sample_rate: info.sample_rate, format: info.format, ...settings() }));
  };
  socket.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      try {
        state.capture = await startCapture({
          targetRate: info.sample_rate,
          blockSamples: Math.round(BLOCK_SECONDS * info.sample_rate),
          onBlock: (block) => socket.readyState === WebSocket.OPEN && socket.send(block.buffer),
        });
        setStatus(`listening${state.capture.device ? ` · ${state.capture.device}` : ""}`, "live");
        $("start").textContent = "Stop";
        $("start").dataset.on = "true";
      } catch (error) {
        showMessage(`The microphone could not be opened: ${error.message}`);
        socket.close();
      }
      $("start").disabled = false;
    } else if (message.type === "update") {
      onUpdate(message);
    } else if (message.type === "error" || message.type === "warning") {
      showMessage(message.message);
    }
  };
  socket.onclose = (event) => {
    stopCapture();
    $("level").style.width = "0";
    const reason = event.reason && event.code !== 1000 ? `: ${event.reason}` : "";
    setStatus(`not listening${reason}`, event.code === 1000 || event.code === 1005 ? "idle" : "error");
    if (event.code === 1006) showMessage("The connection to the server was lost.");
    $("start").disabled = false;
    $("start").textContent = "Start listening";
    $("start").dataset.on = "false";
    state.socket = null;
  };
}

async function stopCapture() {
  const capture = state.capture;
  state.capture = null;
  if (capture) await capture.stop();
}

async function stop() {
  await stopCapture();
  const socket = state.socket;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
}

// --- the drop zone ----------------------------------------------------------------------------------

async function transcribeFile(file) {
  const result = $("result");
  result.dataset.state = "busy";
  $("result-label").textContent = file.name;
  $("result-score").textContent = "transcribing…";
  $("result-text").textContent = "";
  $("timeline").querySelectorAll(".word").forEach((w) => w.remove());
  $("axis").replaceChildren();
  const [response, audio] = await Promise.all([
    fetch(`/transcribe?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file }),
    decodeForDrawing(file),
  ]);
  const body = await response.json();
  if (!response.ok) {
    result.dataset.state = "error";
    $("result-score").textContent = "";
    $("result-text").textContent = body.error;
    return;
  }
  $("result-label").textContent = body.label;
  $("result-score").textContent = `${body.score.toFixed(2)} · ${body.path} · ${body.duration.toFixed(2)} s`;
  $("result-text").textContent = body.text || "(no words)";
  drawTimeline(body, audio);
  result.dataset.state = "done";
}

async function decodeForDrawing(file) {
  try {
    return (await new OfflineAudioContext(1, 1, 16000).decodeAudioData(await file.arrayBuffer())).getChannelData(0);
  } catch {
    return null; // a format this browser cannot decode: the server may still read it
  }
}

function drawTimeline(body, audio) {
  const duration = Math.max(body.duration, 1e-3);
  const timeline = $("timeline");
  const canvas = $("wave");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * ratio);
  canvas.height = Math.round(canvas.clientHeight * ratio);
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (audio) {
    g.fillStyle = "#94a3b8";
    const columns = canvas.width;
    const per = audio.length / columns;
    let peak = 1e-6;
    for (let i = 0; i < audio.length; i++) peak = Math.max(peak, Math.abs(audio[i]));
    for (let c = 0; c < columns; c++) {
      let top = 0;
      for (let i = Math.floor(c * per); i < Math.floor((c + 1) * per); i++) top = Math.max(top, Math.abs(audio[i]));
      const half = (top / peak) * canvas.height * 0.45;
      g.fillRect(c, canvas.height / 2 - half, 1, Math.max(1, 2 * half));
    }
  }
  for (const w of body.words) {
    const box = document.createElement("div");
    box.className = "word";
    box.dataset.word = w.word;
    box.style.left = `${(100 * w.start) / duration}%`;
    box.style.width = `${(100 * (w.end - w.start)) / duration}%`;
    box.title = `${w.word}: ${w.start.toFixed(2)}–${w.end.toFixed(2)} s, score ${w.score.toFixed(2)}`;
    box.textContent = w.word;
    timeline.append(box);
  }
  const step = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 600].find((s) => duration / s <= 10) || 1200;
  for (let t = 0; t <= duration + 1e-9; t += step) {
    const tick = document.createElement("span");
    tick.style.left = `${(100 * t) / duration}%`;
    tick.textContent = `${+t.toFixed(2)} s`;
    $("axis").append(tick);
  }
}

function setUpDropZone() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) transcribeFile(event.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", () => {
    if ($("file").files.length) transcribeFile($("file").files[0]);
    $("file").value = "";
  });
}

async function main() {
  state.info = await (await fetch("/info")).json();
  $("model").textContent = state.info.model;
  state.enabled = new Set(state.info.keywords);
  state.plot.setLabels(state.info.labels, state.info.keywords);
  $("threshold").value = state.info.threshold;
  $("threshold-value").textContent = Number(state.info.threshold).toFixed(2);
  $("threshold").addEventListener("input", () => {
    $("threshold-value").textContent = Number($("threshold").value).toFixed(2);
    state.plot.threshold = Number($("threshold").value);
    state.plot.dirty = true;
  });
  $("threshold").addEventListener("change", sendSettings);
  $("all").addEventListener("click", () => {
    state.enabled = new Set(state.info.keywords);
    renderKeywords();
    sendSettings();
  });
  $("none").addEventListener("click", () => {
    state.enabled = new Set();
    renderKeywords();
    sendSettings();
  });
  renderKeywords();
  sendSettings();
  setUpDropZone();
  $("start").addEventListener("click", () => (state.socket ? stop() : start()));
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  setStatus("the server did not answer", "error");
  showMessage(String(error));
});
