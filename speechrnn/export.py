"""Deployment: write the streaming step of a `Recognizer` as an ONNX file, optionally in dynamic int8.

The graph is built in `onnx_graph.py` (its docstring describes inputs, outputs and operators) and run by
`onnx_runner.OnnxStep`. Everything a deployment needs besides the graph is JSON in the file's
`metadata_props` under `speechrnn`; `read_metadata` returns it.

Quantisation: `--quantize` writes the graph with every MatMul of the encoder and heads in dynamic int8
(onnxruntime `quantize_dynamic`: int8 weights, activations quantised per call); the front end stays float.
`quantize_torch` gives the PyTorch counterpart (`torch.ao.quantization.quantize_dynamic` of GRU, LSTM and
Linear) for comparison in the benchmark.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import SpeechRNNError
from .latency import LIVE
from .model import Recognizer
from .onnx_graph import FRONT_END, build_graph, import_onnx, set_metadata
from .onnx_runner import parse_metadata


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON description of an exported file (needs the `onnx` package)."""
    onnx = import_onnx()
    path = Path(path)
    if not path.is_file():
        raise SpeechRNNError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises several types for foreign files
        raise SpeechRNNError(f"{path}: not an ONNX file ({type(err).__name__})") from None
    return parse_metadata({p.key: p.value for p in proto.metadata_props}, str(path))


# --- export and quantisation --------------------------------------------------------------------------


def export_onnx(
    model: Recognizer,
    path: str | os.PathLike,
    *,
    chunk_ms: float = LIVE.chunk_ms,
    lookahead_ms: float = LIVE.lookahead_ms,
    quantize: bool = False,
    source: str = "",
) -> Path:
    """Write the streaming step of `model` to `path` (atomically), optionally in dynamic int8.

    Args:
        model: the recogniser.
        path: the .onnx file to write.
        chunk_ms, lookahead_ms: the latency control baked into the graph (multiples of the model's step).
        quantize: int8 weights for the encoder and head MatMuls (onnxruntime `quantize_dynamic`).
        source: where the model came from, recorded in the metadata.

    Returns:
        The path written.
    """
    proto = build_graph(model, chunk_ms, lookahead_ms, unrolled=quantize, source=source)
    path = Path(path)
    try:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            import_onnx().save(proto, str(fp32))
            final = fp32
            if quantize:
                final = Path(tmp) / "int8.onnx"
                quantize_onnx(fp32, final)
            os.replace(final, path)
    except OSError as err:
        raise SpeechRNNError(f"{path}: cannot write the ONNX file ({err.strerror or err})") from None
    return path


def quantize_onnx(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Dynamic int8 quantisation of an exported step's encoder and head MatMuls; the front end stays float.

    Weights become int8 (symmetric, per tensor); activations are quantised to uint8 on the fly per call.
    """
    onnx = import_onnx()
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise SpeechRNNError("int8 export needs onnxruntime: pip install onnxruntime") from None
    proto = onnx.load(str(src))
    meta = parse_metadata({p.key: p.value for p in proto.metadata_props}, str(src))
    exclude = [n.name for n in proto.graph.node if n.name.startswith(FRONT_END)]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice to pre-process; the graph is already plain
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=exclude,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)
    out = onnx.load(str(dst))
    meta["quantized"] = True
    set_metadata(out, meta)
    onnx.save(out, str(dst))
    return Path(dst)


def quantize_torch(model: Recognizer) -> Recognizer:
    """A copy of `model` with dynamic int8 GRU, LSTM and Linear layers (PyTorch eager, CPU).

    Plain RNN layers stay float: PyTorch has no dynamic quantised `nn.RNN`.
    """
    import copy

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        return quantize_dynamic(
            copy.deepcopy(model).cpu().eval(), {nn.GRU, nn.LSTM, nn.Linear}, dtype=torch.qint8
        )


def file_size(path: str | os.PathLike) -> int:
    return Path(path).stat().st_size


def main_export(
    *,
    model: str | None,
    format: str,
    out: str,
    quantize: bool = False,
    chunk_ms: float = LIVE.chunk_ms,
    lookahead_ms: float = LIVE.lookahead_ms,
) -> int:
    """The `speechrnn export` command: load the checkpoint, write the file, print one line about it."""
    from .checkpoint import default_model_path, load_model

    if format != "onnx":
        raise SpeechRNNError(f"--format must be onnx, got {format!r}")
    if not out.endswith(".onnx"):
        raise SpeechRNNError(f"--out should name a .onnx file, got {out!r}")
    recognizer = load_model(model)
    source = str(model) if model else str(default_model_path().name)
    path = export_onnx(
        recognizer, out, chunk_ms=chunk_ms, lookahead_ms=lookahead_ms, quantize=quantize, source=source
    )
    meta = read_metadata(path)
    print(
        f"wrote {path} ({file_size(path) / 2**20:.2f} MiB{', int8' if quantize else ''}): "
        f"chunk {meta['chunk_ms']:g} ms + look-ahead {meta['lookahead_ms']:g} ms, "
        f"{meta['step']['samples']} samples per step ({meta['step']['advance']} new), "
        f"{len(meta['labels'])} labels"
    )
    return 0
