"""One streaming step of a `Recognizer` as an ONNX graph (written by `speechrnn export`, run by `OnnxStep`).

The graph computes the step of `step.py` for one latency-controlled chunk (what `streaming.TorchStep` computes
with PyTorch; tests/test_export.py holds them equal):

    inputs   audio  (samples,) float32   the chunk's audio *with* the carried context: every sample that the
                                         chunk's `chunk + lookahead` encoder steps (`stride` frames each) read
             frames ()         int64     how many of those MFCC frames are real (all of them, except when
                                         the stream ends: `OnnxStep` then zero-pads the audio)
             state  (layers, 1, state_dim) float32   forward-direction state of every encoder layer
    outputs  ctc_log_probs (chunk, n_vocab), attn_logits (chunk,), label_logits (chunk, n_labels) for the
             chunk's main steps (per step: windowed pooling is the recogniser's), state_out like `state`, and
             c0 ((chunk + lookahead) * stride,): the raw MFCC c0 (log energy) of the chunk's own frames and then
             its look-ahead frames, which the live pause reset reads (so nothing computes the MFCC a second
             time).

Built operator by operator from the weights, not traced with `torch.onnx`: the int8 form must be plain
MatMuls (below), and the front end keeps only the DFT bins the mel filters use.

Audio in, not MFCC frames: the front end is inside the graph, so a deployment (any onnxruntime binding,
any language) needs no DSP code of its own, only a buffer of samples. Framing is a Gather of precomputed
sample indices; the windowed DFT is a MatMul with fixed cos/sin matrices, restricted to the FFT bins the mel
filters use; then power, the mel MatMul, ln(x + 1e-6), the DCT MatMul with the normalisation folded into it,
the valid-frame mask and frame stacking. All exact formulas in plain portable operators (they agree with
torchaudio to ~1e-5 in normalised units); the look-ahead frames are recomputed by the next chunk (about a
seventh of the step's arithmetic at 100 ms + 80 ms), which keeps the front end free of state.

Recurrent layers come in two forms. The float graph uses ONNX's GRU / LSTM / RNN operators: a bidirectional
GRU or RNN layer is one operator whose forward direction starts from the carried state and whose backward
direction starts from zeros at the last valid step (`sequence_lens`); with ~70 nodes it is onnxruntime's
fastest form. The int8 graph (`--quantize`) unrolls each layer over the segment's `chunk + lookahead` steps
into MatMul and elementwise operators, both directions batched per step, because onnxruntime's dynamic
quantisation reaches MatMul but not the GRU operator; there the backward start is a mask. In both, as in
`LatencyControlledRNN`, the forward direction runs through the look-ahead from the chunk's final state
without carrying it on.

The end of the stream: the graph has fixed shapes; `OnnxStep` zero-pads the last window and gives the number
of real frames; the graph zeroes the padded frames (as `Recognizer.prepare` does) and starts the backward
direction at the last valid step, so the last, shorter chunk matches PyTorch.

Everything a deployment needs to know (feature settings, labels, vocabulary, chunk and look-ahead, stride,
window, the shapes above, the normalisation statistics) is JSON in the file's `metadata_props` under
`speechrnn` (`metadata`; `onnx_runner.parse_metadata` reads it back).
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from .errors import SpeechRNNError
from .model import Recognizer
from .onnx_runner import FORMAT, INPUTS, META_KEY, OUTPUTS, VERSION
from .step import StepShape
from .step import step_shape as make_shape
from .streaming import latency_steps, step_ms
from .vocab import VOCAB

OPSET = 17
LOG_OFFSET = 1e-6  # torchaudio MFCC(log_mels=True): ln(mel + 1e-6)
FRONT_END = "frontend/"  # node-name prefix of the front end (kept in float when quantising)
TENSOR_FLOAT, TENSOR_INT32 = 1, 6  # onnx.TensorProto element types (onnx itself is imported lazily)


def step_shape(model: Recognizer, chunk_ms: float, lookahead_ms: float) -> StepShape:
    """The step sizes for chunk and look-ahead lengths in milliseconds (multiples of the model's step).

    Raises:
        SpeechRNNError: lengths that are not whole positive steps.
    """
    if chunk_ms is None:
        raise SpeechRNNError(
            "an exported step needs a chunk length (a multiple of the model's step), got None"
        )
    chunk, lookahead = latency_steps(model, chunk_ms, lookahead_ms)
    if not model.config.bidirectional:
        lookahead = 0  # a causal model reads nothing ahead
    return make_shape(model.features, model.config.stride, chunk, lookahead)


# --- graph building -----------------------------------------------------------------------------------


class _Graph:
    """A few lines over `onnx.helper`: nodes with generated output names, deduplicated constants."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self._consts: dict[tuple, str] = {}
        self._count = 0
        self.prefix = ""  # node-name prefix of what is being built (a scope)

    def const(self, value, dtype=np.float32) -> str:
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            name = f"const{len(self._consts)}"
            self.initializers.append(self.numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def ints(self, *values: int) -> str:
        return self.const(list(values), np.int64)

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs) -> str | list[str]:
        self._count += 1
        name = f"{self.prefix}{op_type}_{self._count}"
        outs = [f"{name}:{i}" for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=name, **attrs))
        return outs[0] if outputs == 1 else outs

    def slice(self, x: str, start: int, end: int, axis: int) -> str:
        return self.op("Slice", x, self.ints(start), self.ints(end), self.ints(axis))

    def split(self, x: str, sizes: list[int], axis: int = -1) -> list[str]:
        return self.op("Split", x, self.ints(*sizes), outputs=len(sizes), axis=axis)

    def linear(self, x: str, weight: torch.Tensor, bias: torch.Tensor | None) -> str:
        """`x @ weight.T + bias` for an `nn.Linear`-style weight `(out, in)`."""
        y = self.op("MatMul", x, self.const(_np(weight).T))
        return y if bias is None else self.op("Add", y, self.const(_np(bias)))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _front_end(g: _Graph, model: Recognizer, shape: StepShape) -> tuple[str, str, str]:
    """audio -> normalised, masked, stacked encoder input `(steps, stride * n_mfcc)`, the number of valid
    steps (an int64 scalar), and the raw MFCC c0 of every frame the step reads, its own and then its
    look-ahead, `(frames,)` (log energy, for the live pause reset, which would otherwise compute the MFCC a
    second time)."""
    feats = model.features
    spec = model.mfcc.transform.MelSpectrogram.spectrogram
    fb = _np(model.mfcc.transform.MelSpectrogram.mel_scale.fb)  # (n_freqs, n_mels)
    dct = _np(model.mfcc.transform.dct_mat)  # (n_mels, n_mfcc)
    span, n_fft = feats.frame_span, feats.n_fft
    window = np.zeros(span)
    left = (n_fft - spec.win_length) // 2  # torch.stft centres a shorter window in the FFT frame
    window[left : left + spec.win_length] = _np(spec.window)
    used = np.flatnonzero(np.abs(fb).sum(axis=1) > 0)  # FFT bins under some mel filter
    bins = np.arange(used.min(), used.max() + 1)
    angle = 2 * np.pi * np.outer(np.arange(span), bins) / n_fft
    dft = np.concatenate([window[:, None] * np.cos(angle), window[:, None] * np.sin(angle)], axis=1)
    mel = np.concatenate([fb[bins], fb[bins]])  # (re^2 | im^2) @ mel = power @ fb
    mean, std = _np(model.feat_mean), _np(model.feat_std)

    g.prefix = FRONT_END
    index = np.arange(shape.frames)[:, None] * feats.hop_length + np.arange(span)[None, :]
    frames = g.op("Gather", "audio", g.const(index, np.int64), axis=0)  # (frames, span)
    ri = g.op("MatMul", frames, g.const(dft))  # (frames, 2 * bins): real and imaginary parts
    power = g.op("Mul", ri, ri)
    logmel = g.op("Log", g.op("Add", g.op("MatMul", power, g.const(mel)), g.const(LOG_OFFSET)))
    x = g.op("Add", g.op("MatMul", logmel, g.const(dct / std)), g.const(-mean / std))  # (mfcc - mean) / std
    c0 = g.op("Reshape", g.op("MatMul", logmel, g.const(dct[:, :1])), g.ints(shape.frames))
    frame_ok = g.op("Less", g.const(np.arange(shape.frames)[:, None], np.int64), "frames")
    x = g.op("Mul", x, g.op("Cast", frame_ok, to=TENSOR_FLOAT))  # padded frames are zeros, as in `prepare`
    x = g.op("Reshape", x, g.ints(shape.steps, shape.stride * model.config.n_input))
    stride = g.const(shape.stride, np.int64)
    valid = g.op("Div", g.op("Add", "frames", g.const(shape.stride - 1, np.int64)), stride)  # ceil
    g.prefix = ""
    return x, valid, c0


def _torch_rnns(model: Recognizer, layer: int) -> list[nn.RNNBase]:
    enc = model.encoder
    return [enc.fwd[layer]] + ([enc.bwd[layer]] if enc.bidirectional else [])


def _gates(w: np.ndarray, h: int, order: tuple[int, ...]) -> np.ndarray:
    """Rows of a PyTorch gate-stacked weight or bias, blocks of `h`, rearranged into `order`."""
    return np.concatenate([w[k * h : (k + 1) * h] for k in order])


# ONNX operator gate orders, as indices into PyTorch's (GRU r, z, n; LSTM i, f, g, o).
ONNX_GATES = {"gru": (1, 0, 2), "lstm": (0, 3, 1, 2), "rnn": (0,)}


def _layer_operators(
    g: _Graph, model: Recognizer, layer: int, x: str, state: str, valid: str, shape: StepShape
):
    """One latency-controlled layer with ONNX's GRU / LSTM / RNN operators. Returns `(steps, out_dim)` and
    the layer's new forward state `(1, 1, state_dim)`.

    A bidirectional GRU or RNN is one operator: the forward direction starts from the carried state, the
    backward one from zeros at the last valid step (`sequence_lens`). The LSTM's cell state at the chunk end
    is not among the operator's outputs, so its forward direction runs as two operators (chunk, then
    look-ahead), as in `LatencyControlledRNN`.
    """
    enc, h, cfg = model.encoder, model.config.hidden, model.config
    order = ONNX_GATES[enc.cell]
    rnns = _torch_rnns(model, layer)
    weights = [
        (
            _gates(_np(r.weight_ih_l0), h, order),
            _gates(_np(r.weight_hh_l0), h, order),
            np.concatenate([_gates(_np(r.bias_ih_l0), h, order), _gates(_np(r.bias_hh_l0), h, order)]),
        )
        for r in rnns
    ]
    op_type = {"gru": "GRU", "lstm": "LSTM", "rnn": "RNN"}[enc.cell]
    attrs = {"hidden_size": h}
    if enc.cell == "gru":
        attrs["linear_before_reset"] = 1  # PyTorch applies the reset gate after the recurrent product
    if enc.cell == "rnn":
        attrs["activations"] = ["Relu" if enc.fwd[layer].nonlinearity == "relu" else "Tanh"] * len(rnns)

    def run(x3: str, dirs: list[int], direction: str, h0: str, c0: str | None = None, lens: str = ""):
        w, r, b = (g.const(np.stack([weights[d][k] for d in dirs])) for k in range(3))
        inputs = [x3, w, r, b, lens, h0] + ([c0] if c0 is not None else [])
        a = dict(attrs, direction=direction)
        if "activations" in a:
            a["activations"] = a["activations"][: len(dirs)]
        outs = 3 if enc.cell == "lstm" else 2
        return g.op(op_type, *inputs, outputs=outs, **a)  # Y (steps, dirs, 1, hidden), Y_h[, Y_c]

    g.prefix = f"encoder{layer}/"
    x3 = g.op("Unsqueeze", x, g.ints(1))  # (steps, 1, in)
    s = g.slice(state, layer, layer + 1, axis=0)  # (1, 1, state_dim)
    zeros = g.const(np.zeros((1, 1, h)))
    lens = g.op("Cast", g.op("Reshape", valid, g.ints(1)), to=TENSOR_INT32)
    if enc.cell != "lstm":
        if enc.bidirectional:
            y = run(x3, [0, 1], "bidirectional", g.op("Concat", s, zeros, axis=0), lens=lens)[0]
        else:
            y = run(x3, [0], "forward", s)[0]
        new_state = g.op("Reshape", g.slice(y, shape.chunk - 1, shape.chunk, axis=0), g.ints(-1, 1, h))
        new_state = g.slice(new_state, 0, 1, axis=0)  # the forward direction after the chunk's last step
        y = g.op("Transpose", y, perm=[0, 2, 1, 3])  # (steps, 1, dirs, hidden)
    else:
        hs, cs = g.split(s, [h, h])
        main = g.slice(x3, 0, shape.chunk, axis=0)
        y, h_end, c_end = run(main, [0], "forward", hs, cs)
        new_state = g.op("Concat", h_end, c_end, axis=-1)
        if shape.lookahead:
            future = g.slice(x3, shape.chunk, shape.steps, axis=0)
            y = g.op("Concat", y, run(future, [0], "forward", h_end, c_end)[0], axis=0)
        y = g.op("Transpose", y, perm=[0, 2, 1, 3])
        if enc.bidirectional:
            back = run(x3, [1], "reverse", zeros, zeros, lens=lens)[0]
            y = g.op("Concat", y, g.op("Transpose", back, perm=[0, 2, 1, 3]), axis=2)
    y = g.op("Reshape", y, g.ints(shape.steps, cfg.out_dim))
    g.prefix = ""
    return y, new_state


def _unrolled_weights(model: Recognizer, layer: int) -> dict[str, np.ndarray]:
    """Per-direction weights of one layer stacked on a leading direction axis, for `_layer_unrolled`.

    `w_ih (dirs, in, gates)`, `w_hh (dirs, hidden, gates)`, `b (dirs, 1, gates)` (every bias that simply
    adds), and for the GRU `b_hn (dirs, 1, hidden)` (inside the reset gate's product). LSTM gates are
    reordered from PyTorch's i, f, g, o to i, f, o, g, so the three sigmoids are one operator.
    """
    enc, h = model.encoder, model.config.hidden
    order = {"gru": (0, 1, 2), "lstm": (0, 1, 3, 2), "rnn": (0,)}[enc.cell]
    w_ih, w_hh, b, b_hn = [], [], [], []
    for rnn in _torch_rnns(model, layer):
        wi, wh = _gates(_np(rnn.weight_ih_l0), h, order), _gates(_np(rnn.weight_hh_l0), h, order)
        bi, bh = _gates(_np(rnn.bias_ih_l0), h, order), _gates(_np(rnn.bias_hh_l0), h, order)
        if enc.cell == "gru":
            b.append(bi + np.concatenate([bh[: 2 * h], np.zeros(h)]))
            b_hn.append(bh[2 * h :][None])
        else:
            b.append(bi + bh)
        w_ih.append(wi.T)
        w_hh.append(wh.T)
    out = {"w_ih": np.stack(w_ih), "w_hh": np.stack(w_hh), "b": np.stack(b)[:, None]}
    if b_hn:
        out["b_hn"] = np.stack(b_hn)
    return out


def _layer_unrolled(
    g: _Graph, model: Recognizer, layer: int, x: str, state: str, masks: list[str], shape: StepShape
):
    """One latency-controlled layer unrolled over the segment's steps into MatMul and elementwise operators,
    both directions batched (`(dirs, 1, hidden)` per step). Returns `(steps, out_dim)` and the new state.

    `masks[t]` `(2, 1, 1)`: 1 for the forward direction, and whether the backward direction's step `t` (the
    segment's step `steps - 1 - t`) is valid: it stays at zero until the last valid step, so starts there.
    """
    enc, h = model.encoder, model.config.hidden
    dirs = 2 if enc.bidirectional else 1
    lstm = enc.cell == "lstm"
    w = _unrolled_weights(model, layer)
    rev = g.const(np.arange(shape.steps)[::-1], np.int64)
    g.prefix = f"encoder{layer}/"
    x3 = g.op("Unsqueeze", x, g.ints(0))  # (1, steps, in)
    if dirs == 2:  # the backward direction reads the segment in reverse
        x3 = g.op("Concat", x3, g.op("Gather", x3, rev, axis=1), axis=0)  # (2, steps, in)
    gi = g.op("Add", g.op("MatMul", x3, g.const(w["w_ih"])), g.const(w["b"]))  # (dirs, steps, gates)
    s = g.slice(state, layer, layer + 1, axis=0)  # (1, 1, state_dim)
    hs, cs = g.split(s, [h, h]) if lstm else (s, None)
    zeros = g.const(np.zeros((1, 1, h)))
    h_t = g.op("Concat", hs, zeros, axis=0) if dirs == 2 else hs  # the backward direction starts from zeros
    c_t = (g.op("Concat", cs, zeros, axis=0) if dirs == 2 else cs) if lstm else None
    w_hh = g.const(w["w_hh"])
    outs, new_state = [], None
    for t in range(shape.steps):
        g_t = g.slice(gi, t, t + 1, axis=1)  # (dirs, 1, gates)
        gh = g.op("MatMul", h_t, w_hh)
        if enc.cell == "gru":
            i_rz, i_n = g.split(g_t, [2 * h, h])
            h_rz, h_n = g.split(gh, [2 * h, h])
            r, z = g.split(g.op("Sigmoid", g.op("Add", i_rz, h_rz)), [h, h])
            n = g.op("Tanh", g.op("Add", i_n, g.op("Mul", r, g.op("Add", h_n, g.const(w["b_hn"])))))
            h_t = g.op("Add", n, g.op("Mul", z, g.op("Sub", h_t, n)))  # (1 - z) * n + z * h
        elif lstm:
            sig, cand = g.split(g.op("Add", g_t, gh), [3 * h, h])
            i, f, o = g.split(g.op("Sigmoid", sig), [h, h, h])
            c_t = g.op("Add", g.op("Mul", f, c_t), g.op("Mul", i, g.op("Tanh", cand)))
            h_t = g.op("Mul", o, g.op("Tanh", c_t))
        else:
            act = "Relu" if enc.fwd[layer].nonlinearity == "relu" else "Tanh"
            h_t = g.op(act, g.op("Add", g_t, gh))
        if t == shape.chunk - 1:  # the forward state carried to the next chunk: after its last main step
            new_state = g.slice(h_t, 0, 1, axis=0)
            if lstm:
                new_state = g.op("Concat", new_state, g.slice(c_t, 0, 1, axis=0), axis=-1)
        if dirs == 2:
            h_t = g.op("Mul", h_t, masks[t])
            if lstm:
                c_t = g.op("Mul", c_t, masks[t])
        outs.append(h_t)
    y = g.op("Concat", *outs, axis=1)  # (dirs, steps, hidden), backward in reverse time
    if dirs == 2:
        fwd, bwd = g.split(y, [1, 1], axis=0)
        y = g.op("Concat", fwd, g.op("Gather", bwd, rev, axis=1), axis=-1)  # (1, steps, 2 * hidden)
    y = g.op("Reshape", y, g.ints(shape.steps, model.config.out_dim))
    g.prefix = ""
    return y, new_state


def _backward_masks(g: _Graph, valid: str, steps: int) -> list[str]:
    """Per unrolled step t: `(2, 1, 1)` = [1, whether segment step `steps - 1 - t` is valid]."""
    g.prefix = "masks/"
    ok = g.op("Less", g.const(np.arange(steps)[::-1], np.int64), valid)  # reversed validity
    ok = g.op("Cast", g.op("Unsqueeze", ok, g.ints(0)), to=TENSOR_FLOAT)  # (1, steps)
    both = g.op("Unsqueeze", g.op("Concat", g.const(np.ones((1, steps))), ok, axis=0), g.ints(-1))
    masks = [g.slice(both, t, t + 1, axis=1) for t in range(steps)]  # (2, steps, 1) -> (2, 1, 1) each
    g.prefix = ""
    return masks


def _heads(g: _Graph, model: Recognizer, enc: str, shape: StepShape) -> tuple[str, str, str]:
    """The main steps' CTC log-probabilities, attention logits and label logits."""
    cfg = model.config
    g.prefix = "heads/"
    main = g.slice(enc, 0, shape.chunk, axis=0)  # (chunk, out_dim)
    first = [model.ctc_head, model.attn[0], model.label_head]  # one MatMul for the three projections
    w = torch.cat([m.weight for m in first])
    b = torch.cat([m.bias for m in first])
    ctc, attn_h, labels = g.split(g.linear(main, w, b), [cfg.n_vocab, cfg.attn_dim, cfg.n_labels])
    ctc = g.op("LogSoftmax", ctc, axis=-1)
    attn = g.linear(g.op("Tanh", attn_h), model.attn[2].weight, model.attn[2].bias)  # (chunk, 1)
    attn = g.op("Reshape", attn, g.ints(shape.chunk))
    g.prefix = ""
    return ctc, attn, labels


def build_graph(
    model: Recognizer, chunk_ms: float, lookahead_ms: float, unrolled: bool = False, source: str = ""
):
    """The ONNX model of one streaming step (see the module docstring). Returns an `onnx.ModelProto`.

    Args:
        unrolled: recurrent layers as MatMul and elementwise operators over the segment's steps (the form
            dynamic quantisation reaches) instead of ONNX's recurrent operators (the faster float form).
    """
    onnx = import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    model = model.eval()
    shape = step_shape(model, chunk_ms, lookahead_ms)
    cfg = model.config
    g = _Graph(helper, numpy_helper)
    x, valid, c0 = _front_end(g, model, shape)
    masks = _backward_masks(g, valid, shape.steps) if unrolled and cfg.bidirectional else []
    states = []
    for layer in range(cfg.layers):
        if unrolled:
            x, s = _layer_unrolled(g, model, layer, x, "state", masks, shape)
        else:
            x, s = _layer_operators(g, model, layer, x, "state", valid, shape)
        states.append(s)
    ctc, attn, labels = _heads(g, model, x, shape)
    state_out = g.op("Concat", *states, axis=0) if len(states) > 1 else states[0]
    for src, dst in zip((ctc, attn, labels, state_out, c0), OUTPUTS, strict=True):
        g.nodes.append(helper.make_node("Identity", [src], [dst], name=f"output/{dst}"))

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    state_dims = [cfg.layers, 1, cfg.state_dim]
    graph = helper.make_graph(
        g.nodes,
        "speechrnn_step",
        [
            helper.make_tensor_value_info("audio", f32, [shape.samples]),
            helper.make_tensor_value_info("frames", i64, []),
            helper.make_tensor_value_info("state", f32, state_dims),
        ],
        [
            helper.make_tensor_value_info("ctc_log_probs", f32, [shape.chunk, cfg.n_vocab]),
            helper.make_tensor_value_info("attn_logits", f32, [shape.chunk]),
            helper.make_tensor_value_info("label_logits", f32, [shape.chunk, cfg.n_labels]),
            helper.make_tensor_value_info("state_out", f32, state_dims),
            helper.make_tensor_value_info("c0", f32, [shape.frames]),
        ],
        initializer=g.initializers,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="speechrnn"
    )
    proto.ir_version = min(proto.ir_version, 8)  # opset 17's IR: readable by older runtimes too
    proto.doc_string = "speechrnn streaming step: audio chunk + state -> per-step scores + state"
    set_metadata(proto, metadata(model, shape, source=source, quantized=False))
    onnx.checker.check_model(proto)
    return proto


# --- metadata -----------------------------------------------------------------------------------------


def metadata(model: Recognizer, shape: StepShape, source: str = "", quantized: bool = False) -> dict:
    """The JSON description stored in the file: everything a deployment needs besides the graph."""
    ms = step_ms(model)
    return {
        "format": FORMAT,
        "version": VERSION,
        "source": source,
        "quantized": quantized,
        "feature_config": model.features.to_dict(),
        "model_config": model.config.to_dict(),
        "labels": list(model.labels),
        "vocab": list(VOCAB),
        "thresholds": model.thresholds,
        "step": asdict(shape),
        "chunk_ms": shape.chunk * ms,
        "lookahead_ms": shape.lookahead * ms,
        "step_ms": ms,
        "window": model.config.window,
        "state_shape": [model.config.layers, 1, model.config.state_dim],
        "inputs": list(INPUTS),
        "outputs": list(OUTPUTS),
        "normalization": {"mean": _np(model.feat_mean).tolist(), "std": _np(model.feat_std).tolist()},
        "parameters": model.num_parameters(),
    }


def set_metadata(proto, meta: dict) -> None:
    """Store `meta` as JSON under `META_KEY` in the model's metadata_props (replacing an earlier one)."""
    kept = [p for p in proto.metadata_props if p.key != META_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)


def import_onnx():
    try:
        import onnx
    except ImportError:
        raise SpeechRNNError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    return onnx
