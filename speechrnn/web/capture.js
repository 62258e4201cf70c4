// The microphone as blocks of mono audio at `targetRate`: getUserMedia into an AudioWorklet that resamples.

export async function startCapture({ targetRate, blockSamples, onBlock }) {
  if (!navigator.mediaDevices) {
    throw new Error(`browsers lend the microphone only to pages on localhost or https, not ${location.origin}`);
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    // the raw signal: the model never heard a browser's echo cancellation or gain control in training
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext();
  try {
    await context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "speechrnn-capture", {
      processorOptions: { targetRate, blockSamples },
    });
    const mute = context.createGain(); // a path to the output keeps the graph running, without an echo
    mute.gain.value = 0;
    node.port.onmessage = (event) => onBlock(event.data);
    source.connect(node).connect(mute).connect(context.destination);
    await context.resume();
    const track = stream.getAudioTracks()[0];
    return {
      inputRate: context.sampleRate,
      device: track ? track.label : "",
      async stop() {
        node.port.onmessage = null;
        source.disconnect();
        stream.getTracks().forEach((t) => t.stop());
        await context.close();
      },
    };
  } catch (error) {
    stream.getTracks().forEach((t) => t.stop());
    await context.close();
    throw error;
  }
}
