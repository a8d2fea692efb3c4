"""WKV-6 kernels: every fast backend against the exact token-by-token `wkv6_naive`.

Output and final state are both checked, on an id-named grid of awkward shapes (T=1,
odd T, T not a multiple of the chunk size, a nonzero initial state) and on Hypothesis-
drawn shapes. Decays are realistic: RWKV-6's w = -exp(d) with d up to +3 (a decay of
exp(-20) per step, strong enough to overflow a naive exp(-cumsum) within one chunk) and
fla's logsigmoid decays.

Tolerances (fp32 in, fp32 math in both): relative RMS error <= 1e-5 and max abs error
<= 1e-4 * max(1, max |reference|). The two differ only in summation order.
"""

import shutil

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rwkv_eval.models import wkv_cpu
from rwkv_eval.models.wkv6 import WKV6_BACKENDS, resolve_backend, wkv6, wkv6_chunked, wkv6_naive

# The compiled CPU kernel needs a C compiler: without any on PATH its tests skip (and say so);
# with one, a failed build fails them.
needs_compiler = pytest.mark.skipif(not any(map(shutil.which, wkv_cpu.COMPILERS)),
                                    reason=f"no C compiler ({', '.join(wkv_cpu.COMPILERS)}) on PATH for the CPU kernel")

RTOL_RMS = {torch.float32: 1e-5, torch.bfloat16: 1e-2}
MAX_ABS = {torch.float32: 1e-4, torch.bfloat16: 5e-2}


def make_inputs(B, T, H, K, decay, seed, with_state, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    r, k, v = (torch.randn(B, T, H, K, generator=g) for _ in range(3))
    if decay == "rwkv6":  # w = -exp(d), d in [-6, 3]: from almost no decay to exp(-20) per step
        w = -torch.exp(torch.rand(B, T, H, K, generator=g) * 9 - 6)
    elif decay == "logsigmoid":
        w = torch.nn.functional.logsigmoid(torch.randn(B, T, H, K, generator=g) * 3)
    elif decay == "strong":
        w = -torch.exp(torch.rand(B, T, H, K, generator=g) + 2.5)  # about -12 .. -33 per step
    else:
        raise ValueError(decay)
    u = torch.randn(H, K, generator=g)
    state = torch.randn(B, H, K, K, generator=g) if with_state else None
    return tuple(x.to(dtype) for x in (r, k, v, w)) + (u, state)


def assert_close(name, got, ref, dtype=torch.float32):
    got, ref = got.float(), ref.float()
    diff = (got - ref).abs().max().item()
    rel_rms = ((got - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp(min=1e-30)).item()
    scale = max(1.0, ref.abs().max().item())
    assert torch.isfinite(got).all(), f"{name}: non-finite values"
    assert rel_rms <= RTOL_RMS[dtype] and diff <= MAX_ABS[dtype] * scale, (
        f"{name}: max abs diff {diff:.3g} (limit {MAX_ABS[dtype] * scale:.3g}), "
        f"relative RMS {rel_rms:.3g} (limit {RTOL_RMS[dtype]:.3g})")


GRID = [  # (B, T, H, K, chunk_size, decay, initial state)
    (1, 1, 1, 4, 16, "rwkv6", False),
    (2, 1, 3, 8, 16, "rwkv6", True),
    (2, 15, 2, 8, 16, "logsigmoid", False),
    (2, 17, 2, 8, 16, "rwkv6", True),
    (1, 33, 4, 16, 8, "strong", True),
    (3, 64, 2, 8, 16, "rwkv6", False),
    (1, 100, 2, 16, 32, "logsigmoid", True),
    (2, 37, 1, 64, 16, "rwkv6", True),
]


@pytest.mark.parametrize("B,T,H,K,chunk,decay,with_state", GRID,
                         ids=[f"B{g[0]}-T{g[1]}-H{g[2]}-K{g[3]}-c{g[4]}-{g[5]}{'-state' if g[6] else ''}" for g in GRID])
def test_chunked_matches_naive_grid(B, T, H, K, chunk, decay, with_state):
    r, k, v, w, u, s0 = make_inputs(B, T, H, K, decay, seed=T * 7 + K, with_state=with_state)
    ref_out, ref_state = wkv6_naive(r, k, v, w, u, s0)
    out, state = wkv6_chunked(r, k, v, w, u, s0, chunk_size=chunk)
    assert out.shape == (B, T, H, K) and state.shape == (B, H, K, K)
    assert_close("out", out, ref_out)
    assert_close("final state", state, ref_state)


@given(B=st.integers(1, 3), T=st.integers(1, 70), H=st.integers(1, 3), K=st.sampled_from([1, 2, 4, 8, 16]),
       chunk=st.sampled_from([1, 3, 8, 16, 32]), decay=st.sampled_from(["rwkv6", "logsigmoid", "strong"]),
       with_state=st.booleans(), seed=st.integers(0, 2**16))
def test_chunked_matches_naive_property(B, T, H, K, chunk, decay, with_state, seed):
    r, k, v, w, u, s0 = make_inputs(B, T, H, K, decay, seed, with_state)
    ref_out, ref_state = wkv6_naive(r, k, v, w, u, s0)
    out, state = wkv6_chunked(r, k, v, w, u, s0, chunk_size=chunk)
    assert_close("out", out, ref_out)
    assert_close("final state", state, ref_state)


def test_without_final_state_the_outputs_are_the_same():
    """An encoder asks for outputs only: the chunked backend then skips the last state update."""
    r, k, v, w, u, s0 = make_inputs(2, 45, 2, 8, "rwkv6", seed=9, with_state=True)
    out, state = wkv6(r, k, v, w, u, s0, backend="chunked", chunk_size=16)
    out2, none = wkv6(r, k, v, w, u, s0, backend="chunked", chunk_size=16, final_state=False)
    assert none is None and torch.equal(out, out2) and state is not None
    # one chunk from an empty state: no state path at all
    out, _ = wkv6(r, k, v, w, u, backend="chunked", chunk_size=64)
    out2, none = wkv6(r, k, v, w, u, backend="chunked", chunk_size=64, final_state=False)
    assert none is None and torch.allclose(out, out2, rtol=0, atol=1e-6)
    ref, _ = wkv6_naive(r, k, v, w, u)
    assert_close("one chunk, no state", out2, ref)


def test_strong_decays_halve_the_chunk_and_match_the_reference(monkeypatch):
    """Past UNSAFE_SHARE of pairwise chunks a call reruns with chunks half as long, to
    MIN_CHUNK_SIZE: the result is the reference's either way, and the halving happens."""
    import rwkv_eval.models.wkv6 as wkv6_module

    r, k, v, w, u, s0 = make_inputs(2, 64, 2, 8, "strong", seed=4, with_state=True)
    calls = []
    inner = wkv6_module.wkv6_chunked

    def spy(*args, **kwargs):
        calls.append(kwargs.get("chunk_size"))
        return inner(*args, **kwargs)

    monkeypatch.setattr(wkv6_module, "wkv6_chunked", spy)
    out, state = wkv6_module.wkv6_chunked(r, k, v, w, u, s0, chunk_size=64)
    assert calls == [64, 32, 16]  # -12..-33 per step: every chunk of 4+ tokens passes FACTORIZE_LIMIT
    ref_out, ref_state = wkv6_naive(r, k, v, w, u, s0)
    assert_close("out", out, ref_out)
    assert_close("final state", state, ref_state)


def test_chunked_bf16_inputs_fp32_math():
    r, k, v, w, u, s0 = make_inputs(2, 21, 2, 8, "rwkv6", seed=3, with_state=True, dtype=torch.bfloat16)
    ref_out, ref_state = wkv6_naive(r, k, v, w, u, s0)
    out, state = wkv6_chunked(r, k, v, w, u, s0)
    assert out.dtype == torch.bfloat16 and state.dtype == torch.float32
    assert_close("out bf16", out, ref_out, torch.bfloat16)
    assert_close("final state bf16", state, ref_state)


def test_split_sequence_equals_whole():
    """Carrying the final state into the next call is the same as one long call."""
    r, k, v, w, u, _ = make_inputs(2, 40, 2, 8, "rwkv6", seed=5, with_state=False)
    whole, s_whole = wkv6_chunked(r, k, v, w, u)
    first, s1 = wkv6_chunked(r[:, :23], k[:, :23], v[:, :23], w[:, :23], u)
    second, s2 = wkv6_chunked(r[:, 23:], k[:, 23:], v[:, 23:], w[:, 23:], u, s1)
    assert_close("split out", torch.cat([first, second], 1), whole)
    assert_close("split state", s2, s_whole)


def test_backend_by_name_only():
    r, k, v, w, u, _ = make_inputs(1, 5, 1, 4, "rwkv6", seed=0, with_state=False)
    for name in WKV6_BACKENDS:
        wkv6(r, k, v, w, u, backend=name, final_state=False)
    with pytest.raises(ValueError, match="unknown WKV-6 backend 'cuda'"):
        wkv6(r, k, v, w, u, backend="cuda")
    with pytest.raises(ValueError, match=r"u of shape \(H, K\)"):
        wkv6(r, k, v, w, u[:, :2])


def test_both_chunk_paths_agree_with_naive_in_one_call():
    """A chunk whose summed decay passes FACTORIZE_LIMIT takes the pairwise form, its
    neighbours the factorised one: mixed in one sequence, both must match the reference."""
    from rwkv_eval.models.wkv6 import FACTORIZE_LIMIT

    r, k, v, w, u, s0 = make_inputs(2, 48, 2, 8, "rwkv6", seed=11, with_state=True)
    w = w.clamp(min=-0.5)  # weak decay everywhere: the factorised form is safe
    w[0, 16:32] = -10.0  # one chunk of batch row 0 decays by 160 > FACTORIZE_LIMIT in total
    assert 16 * 10.0 > FACTORIZE_LIMIT > 16 * 0.5
    ref_out, ref_state = wkv6_naive(r, k, v, w, u, s0)
    out, state = wkv6_chunked(r, k, v, w, u, s0, chunk_size=16)
    assert_close("out", out, ref_out)
    assert_close("final state", state, ref_state)


PACKED = [  # (sequence lengths per row (each row exactly filled), H, K, chunk_size, decay)
    ([[5, 11], [16]], 2, 8, 16, "rwkv6"),  # a start inside a chunk; a row with one sequence
    ([[1, 1, 3, 16, 2, 9]], 1, 4, 8, "logsigmoid"),  # T=1 sequences, a start on a chunk boundary
    ([[7, 20, 6], [30, 3]], 2, 8, 8, "strong"),  # decays that take the pairwise (unfactorised) path
    ([[13, 4], [17]], 2, 16, 16, "rwkv6"),  # T=17 not a multiple of the chunk, pad after the last
]


@pytest.mark.parametrize("rows,H,K,chunk_size,decay", PACKED,
                         ids=[f"rows{'_'.join('-'.join(map(str, r)) for r in p[0])}-K{p[2]}-L{p[3]}-{p[4]}" for p in PACKED])
@pytest.mark.parametrize("backend", ["auto", "chunked", "naive"])  # with a state, "auto" is "chunked"
def test_packed_rows_reset_the_state_at_each_start(rows, H, K, chunk_size, decay, backend):
    """Sentences packed one after another in a row, with `starts` at each: every output equals
    that sentence run alone from an empty state, and the final state is the last sentence's."""
    T = sum(rows[0])
    assert all(sum(r) == T for r in rows)
    r, k, v, w, u, s0 = make_inputs(len(rows), T, H, K, decay, seed=5, with_state=True)
    starts = torch.zeros(len(rows), T, dtype=torch.bool)
    for b, lengths in enumerate(rows):
        starts[b, torch.tensor([0, *lengths[:-1]]).cumsum(0)] = True
    out, state = wkv6(r, k, v, w, u, s0, backend=backend, chunk_size=chunk_size, starts=starts)
    for b, lengths in enumerate(rows):
        a = 0
        for n in lengths:
            sl = (slice(b, b + 1), slice(a, a + n))
            ref_out, ref_state = wkv6_naive(r[sl], k[sl], v[sl], w[sl], u)
            assert_close(f"{backend} row {b} tokens {a}..{a + n - 1}", out[sl], ref_out)
            a += n
        assert_close(f"{backend} row {b} final state", state[b:b + 1], ref_state)
    with pytest.raises(ValueError, match=r"starts as a \(B, T\)"):
        wkv6(r, k, v, w, u, starts=starts[:, 1:], backend=backend)


CPU_SHAPES = [  # (B, T, H, K, decay): every head size the kernel unrolls (8, 16, 32, 64) and the generic loop
    (1, 1, 1, 4, "rwkv6"), (2, 17, 2, 8, "rwkv6"), (3, 40, 2, 16, "logsigmoid"), (1, 33, 3, 32, "strong"),
    (2, 37, 2, 64, "rwkv6"), (2, 21, 1, 12, "strong"),
]


@needs_compiler
@pytest.mark.parametrize("B,T,H,K,decay", CPU_SHAPES, ids=[f"B{c[0]}-T{c[1]}-H{c[2]}-K{c[3]}-{c[4]}" for c in CPU_SHAPES])
def test_cpu_kernel_matches_naive(B, T, H, K, decay):
    r, k, v, w, u, _ = make_inputs(B, T, H, K, decay, seed=T + K, with_state=False)
    out, state = wkv6(r, k, v, w, u, backend="cpu", final_state=False)
    assert state is None and out.shape == (B, T, H, K) and out.dtype == torch.float32
    assert_close("cpu", out, wkv6_naive(r, k, v, w, u)[0])
    # non-contiguous inputs (the model's views) give the same
    t = lambda x: x.transpose(1, 2).contiguous().transpose(1, 2)  # noqa: E731
    assert torch.equal(wkv6(t(r), t(k), t(v), t(w), u, backend="cpu", final_state=False)[0], out)


@needs_compiler
@pytest.mark.parametrize("rows,H,K,chunk_size,decay", PACKED,
                         ids=[f"rows{'_'.join('-'.join(map(str, r)) for r in p[0])}-K{p[2]}-{p[4]}" for p in PACKED])
def test_cpu_kernel_restarts_at_each_start(rows, H, K, chunk_size, decay):
    """The kernel runs each row as segments from its start and every `starts` on, each from an
    empty state: every sentence's outputs are those of the sentence alone."""
    T = sum(rows[0])
    r, k, v, w, u, _ = make_inputs(len(rows), T, H, K, decay, seed=5, with_state=False)
    starts = torch.zeros(len(rows), T, dtype=torch.bool)
    for b, lengths in enumerate(rows):
        starts[b, torch.tensor([0, *lengths[:-1]]).cumsum(0)] = True
    starts[:, 0] = False  # a row's start is a segment start without the mark
    out, _ = wkv6(r, k, v, w, u, backend="cpu", starts=starts, final_state=False)
    for b, lengths in enumerate(rows):
        a = 0
        for n in lengths:
            sl = (slice(b, b + 1), slice(a, a + n))
            assert_close(f"row {b} tokens {a}..{a + n - 1}", out[sl], wkv6_naive(r[sl], k[sl], v[sl], w[sl], u)[0])
            a += n


@needs_compiler
def test_cpu_kernel_is_the_same_on_any_thread_count_and_in_half_precision():
    r, k, v, w, u, _ = make_inputs(3, 50, 4, 64, "rwkv6", seed=2, with_state=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = wkv6(r, k, v, w, u, backend="cpu", final_state=False)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, wkv6(r, k, v, w, u, backend="cpu", final_state=False)[0])  # a head is one thread's work
    half = tuple(x.bfloat16() for x in (r, k, v, w))
    out, _ = wkv6(*half, u, backend="cpu", final_state=False)
    assert out.dtype == torch.bfloat16
    assert_close("bf16", out, wkv6_naive(*half, u)[0], torch.bfloat16)


@needs_compiler
def test_cpu_kernel_refuses_what_it_does_not_compute():
    r, k, v, w, u, s0 = make_inputs(1, 5, 1, 4, "rwkv6", seed=0, with_state=True)
    with pytest.raises(ValueError, match="takes no `state` and returns no final state"):
        wkv6(r, k, v, w, u, s0, backend="cpu", final_state=False)
    with pytest.raises(ValueError, match="takes no `state` and returns no final state"):
        wkv6(r, k, v, w, u, backend="cpu")  # final_state defaults to True
    with pytest.raises(ValueError, match="computes CPU tensors in float32; got torch.float64"):
        wkv6(*(x.double() for x in (r, k, v, w)), u, backend="cpu", final_state=False)
    assert resolve_backend("auto", "cpu", torch.float32) == "cpu"
    assert resolve_backend("auto", "cpu", torch.float64) == resolve_backend("auto", "cuda", torch.float32) == "chunked"
    # "auto" with a state is the chunked form
    torch.testing.assert_close(wkv6(r, k, v, w, u, s0)[0], wkv6_chunked(r, k, v, w, u, s0)[0], rtol=0, atol=0)


def test_without_a_compiler_auto_says_why_and_runs_chunked(monkeypatch, tmp_path):
    """No compiler: "auto" warns with the reason and runs the chunked form; "cpu" is an error."""
    monkeypatch.setattr(wkv_cpu, "_built", {})
    monkeypatch.setattr(wkv_cpu, "COMPILERS", ("no-such-compiler-here",))
    r, k, v, w, u, _ = make_inputs(2, 9, 1, 4, "rwkv6", seed=0, with_state=False)
    with pytest.warns(RuntimeWarning, match="running the chunked PyTorch form.*no C compiler on PATH"):
        assert resolve_backend("auto", "cpu", torch.float32) == "chunked"
    with pytest.warns(RuntimeWarning):
        out, _ = wkv6(r, k, v, w, u, final_state=False)
    assert_close("auto without kernel", out, wkv6_naive(r, k, v, w, u)[0])
    with pytest.raises(wkv_cpu.KernelUnavailable, match="no C compiler on PATH"):
        wkv6(r, k, v, w, u, backend="cpu", final_state=False)
    # a compiler that fails: its own message, remembered (one build attempt per process)
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\necho 'fatal: omp.h not found' >&2\nexit 1\n")
    cc.chmod(0o755)
    monkeypatch.setattr(wkv_cpu, "_built", {})
    monkeypatch.setattr(wkv_cpu, "COMPILERS", (str(cc),))
    with pytest.raises(wkv_cpu.KernelUnavailable, match=r"(?s)failed \(exit 1\).*fatal: omp.h not found.*'chunked'"):
        wkv_cpu.library()
    cc.unlink()
    assert "omp.h not found" in wkv_cpu.unavailable()
