"""The latency-controlled encoder: full context equals a plain bidirectional RNN, and streaming equals
the offline chunked pass frame for frame."""

import pytest
import torch
from torch import nn

from speechrnn.model import (
    LatencyControlledRNN,
    ModelConfig,
    Recognizer,
    pool_labels,
    stack_frames,
    windowed_labels,
)

CELLS = ["gru", "lstm", "rnn"]


def _encoder(cell: str, bidirectional: bool = True, layers: int = 2) -> LatencyControlledRNN:
    torch.manual_seed(0)
    return LatencyControlledRNN(6, 8, layers, cell, bidirectional, dropout=0.0).eval()


@pytest.mark.parametrize("cell", CELLS)
def test_full_context_equals_plain_bidirectional_rnn(cell):
    enc = _encoder(cell)
    ref = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[cell](6, 8, 2, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for layer in range(2):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, f"{name}_l{layer}").copy_(getattr(enc.fwd[layer], f"{name}_l0"))
                getattr(ref, f"{name}_l{layer}_reverse").copy_(getattr(enc.bwd[layer], f"{name}_l0"))
    x = torch.randn(3, 17, 6)
    lengths = torch.tensor([17, 11, 4])
    out, _ = enc(x, lengths, chunk=None)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=17)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(out[b, :n], expected[b, :n], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("chunk,lookahead", [(1, 0), (3, 2), (4, 0), (5, 7)])
def test_streaming_equals_offline_chunked(cell, chunk, lookahead):
    enc = _encoder(cell, layers=3)
    x = torch.randn(1, 23, 6)
    offline, _ = enc(x, torch.tensor([23]), chunk=chunk, lookahead=lookahead)
    state, outs, start = None, [], 0
    while start < 23:
        main = x[:, start : start + chunk]
        future = x[:, start + chunk : start + chunk + lookahead]
        if start + chunk + lookahead > 23:  # end of stream: flush everything that is left in one call
            main, future = x[:, start:], None
        out, state = enc(
            main, torch.tensor([main.shape[1]]), state=state, chunk=chunk, lookahead=lookahead, future=future
        )
        outs.append(out)
        start += main.shape[1]
    torch.testing.assert_close(torch.cat(outs, dim=1), offline, atol=1e-5, rtol=1e-5)


def test_lookahead_bounds_what_a_step_sees():
    """Changing input beyond chunk end + look-ahead leaves earlier outputs untouched; inside, it changes them."""
    enc = _encoder("gru", layers=3)
    x = torch.randn(1, 20, 6)
    base, _ = enc(x, torch.tensor([20]), chunk=4, lookahead=2)
    y = x.clone()
    y[:, 9:] += 1.0  # step 9 is look-ahead for chunk [4, 8) (it sees up to 9), beyond chunk [0, 4) (up to 5)
    changed, _ = enc(y, torch.tensor([20]), chunk=4, lookahead=2)
    torch.testing.assert_close(changed[:, :4], base[:, :4])
    assert not torch.allclose(changed[:, 4:8], base[:, 4:8])


def test_unidirectional_is_causal_and_streams_exactly():
    enc = _encoder("gru", bidirectional=False)
    x = torch.randn(1, 12, 6)
    full, _ = enc(x, torch.tensor([12]))
    a, s = enc(x[:, :5], torch.tensor([5]))
    b, _ = enc(x[:, 5:], torch.tensor([7]), state=s)
    torch.testing.assert_close(torch.cat([a, b], 1), full, atol=1e-6, rtol=1e-6)


def test_padding_does_not_leak_into_valid_steps():
    enc = _encoder("gru", layers=2)
    x = torch.randn(2, 15, 6)
    x[1, 9:] = 0
    lengths = torch.tensor([15, 9])
    out, _ = enc(x, lengths, chunk=4, lookahead=3)
    x2 = x.clone()
    x2[1, 9:] = 5.0  # garbage in the padding
    out2, _ = enc(x2, lengths, chunk=4, lookahead=3)
    torch.testing.assert_close(out[1, :9], out2[1, :9])
    alone, _ = enc(x[1:, :9], torch.tensor([9]), chunk=4, lookahead=3)
    torch.testing.assert_close(out[1, :9], alone[0], atol=1e-5, rtol=1e-5)


def test_stack_frames_pads_and_counts():
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    y, n = stack_frames(x, torch.tensor([5, 2]), 2)
    assert y.shape == (2, 3, 6)
    assert n.tolist() == [3, 1]
    torch.testing.assert_close(y[0, 0], torch.cat([x[0, 0], x[0, 1]]))
    assert y[0, 2, 3:].abs().sum() == 0


def test_windowed_pooling_matches_direct_pooling():
    torch.manual_seed(1)
    attn, labels = torch.randn(2, 30), torch.randn(2, 30, 5)
    win = windowed_labels(attn, labels, window=7)
    for t in (0, 3, 6, 7, 29):
        lo = max(0, t - 6)
        direct = pool_labels(attn[:, lo : t + 1], labels[:, lo : t + 1], torch.tensor([t + 1 - lo] * 2))
        torch.testing.assert_close(win[:, t], direct, atol=1e-5, rtol=1e-5)


def test_recognizer_shapes_and_streaming_with_stride():
    torch.manual_seed(0)
    model = Recognizer(ModelConfig(n_labels=5, hidden=16, layers=2, dropout=0.0)).eval()
    feats = torch.randn(2, 41, 40)
    out, state = model(feats, torch.tensor([41, 30]), chunk=3, lookahead=2)
    assert out.ctc_log_probs.shape == (2, 21, model.config.n_vocab)
    assert out.label_logits.shape == (2, 21, 5)
    assert out.lengths.tolist() == [21, 15]
    assert state.shape == (2, 2, 16)
    assert out.pooled_logits().shape == (2, 5)
    torch.testing.assert_close(out.ctc_log_probs.exp().sum(-1), torch.ones(2, 21))
