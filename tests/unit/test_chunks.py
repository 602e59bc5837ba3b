"""Chunks of each stream are cut by the stream's own count: the same values give the same chunks at any
batch size, and each chunk holds exactly its values."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.chunks import StreamChunker, small_unique


def _by_stream(values: np.ndarray, times: np.ndarray, stream: np.ndarray, size: int) -> list[tuple]:
    """The chunks computed one stream at a time, directly."""
    out = []
    for s in np.unique(stream).tolist():
        x, t = values[stream == s], times[stream == s]
        for k in range(x.size // size):
            part = slice(k * size, (k + 1) * size)
            out.append((s, (k + 1) * size, x[part].sum(), (x[part] ** 2).sum(), t[part][0], t[part][-1]))
    return out


def _rows(chunks) -> list[tuple]:
    return list(
        zip(
            chunks.stream.tolist(),
            chunks.seq.tolist(),
            chunks.total.tolist(),
            chunks.squares.tolist(),
            chunks.start_time.tolist(),
            chunks.end_time.tolist(),
            strict=True,
        )
    )


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 600),
    st.integers(1, 40),
    st.integers(1, 6),
    st.lists(st.integers(0, 600), max_size=8),
    st.integers(0, 1000),
)
def test_chunks_do_not_depend_on_batching(n, size, streams, cuts, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, n).round(3)
    times = np.arange(n, dtype=np.float64)
    stream = rng.integers(0, streams, n)
    chunker = StreamChunker(size)
    got = []
    bounds = sorted({0, n, *(c % (n + 1) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        got += _rows(chunker.add(values[lo:hi], times[lo:hi], stream[lo:hi]))
    expect = _by_stream(values, times, stream, size)
    assert len(got) == len(expect)
    for g, e in zip(sorted(got), sorted(expect), strict=True):
        assert g[:2] == e[:2] and g[4:] == e[4:]
        np.testing.assert_allclose(g[2:4], e[2:4], atol=1e-9)
    for s in range(streams):  # what is left over waits in the stream's incomplete chunk
        left, total = chunker.partial(s)
        mine = values[stream == s]
        assert left == mine.size % size
        assert abs(total - mine[mine.size - left :].sum()) < 1e-9


def test_integer_values_and_times_are_chunked_as_floats() -> None:
    ints, floats = StreamChunker(3), StreamChunker(3)
    stream = np.array([0, 0, 0, 0, 1, 1, 1])
    got = _rows(ints.add_grouped(np.arange(7), np.arange(7), stream))
    want = _rows(floats.add_grouped(np.arange(7.0), np.arange(7.0), stream))
    assert got == want and isinstance(got[0][4], float)
    assert _rows(ints.add_grouped(np.array([5, 6]), np.array([8, 9]), np.array([0, 0]))) == [
        (0, 6, 14.0, 70.0, 3.0, 9.0)
    ]


def test_absurd_values_overflow_quietly() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = StreamChunker(4).add_grouped(np.full(8, 1e308), np.arange(8.0), np.zeros(8, dtype=np.int64))
    assert np.isinf(out.total).all()


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.integers(0, 300), max_size=200))
def test_small_unique_is_numpys_unique_with_its_inverse(keys):
    """The values in order and each key's place among them, as np.unique gives them (empty included)."""
    a = np.asarray(keys, dtype=np.int64)
    values, inverse = small_unique(a)
    want_values, want_inverse = np.unique(a, return_inverse=True)
    assert values.tolist() == want_values.tolist()
    assert inverse.tolist() == want_inverse.tolist()
