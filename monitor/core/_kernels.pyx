# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-value loops of the hot path in C (built when the package is installed; monitor.core.kernels has their
pure-Python twins, used when this module is absent, and checks that both give the same results)."""

from cpython.dict cimport PyDict_GetItem
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsDouble
from cpython.ref cimport PyObject

import numpy as np

# monitor.core.kernels uses this module only when the numbers match: a module built from an older .pyx (an
# in-place build not redone after a pull) is left aside, not called for a function it lacks. Raise it with
# every change of the functions here.
VERSION = 12

from libc.math cimport INFINITY, NAN, floor

cdef extern from "Python.h":
    bint PyFloat_CheckExact(object o)
    bint PyLong_CheckExact(object o)


cdef void _check_runs(const long long[::1] runs, Py_ssize_t n) except *:
    """Runs that cover exactly ``n`` values, none of negative length (the loops index without checks)."""
    cdef Py_ssize_t r, total = 0
    for r in range(runs.shape[0]):
        if runs[r] < 0:
            raise ValueError("a run of negative length")
        total += runs[r]
    if total != n:
        raise ValueError(f"runs of {total} values for {n}")


def numbers(list values):
    """``values`` as float64 when each is a float or an int (not a boolean), else None; an int beyond float64
    raises OverflowError. Any other type (a float subclass, say) is left to the pure-Python twin: None here
    would not match it."""
    cdef Py_ssize_t n = len(values), i
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] v = out
    cdef object x
    for i in range(n):
        x = values[i]
        if PyFloat_CheckExact(x):
            v[i] = PyFloat_AS_DOUBLE(x)
        elif PyLong_CheckExact(x):
            v[i] = PyLong_AsDouble(x)
        elif x is None or isinstance(x, (str, bool)):
            return None
        else:
            raise TypeError("not a plain number")
    return out


def numbers_with_nulls(list values):
    """``values`` as float64 with NaN for None, and how many were numbers, when each is a float, an int (not a
    boolean) or None; else None (a string or a boolean). An int beyond float64 raises OverflowError; any other
    type is left to the pure-Python twin, as in :func:`numbers`."""
    cdef Py_ssize_t n = len(values), i, present = 0
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] v = out
    cdef object x
    for i in range(n):
        x = values[i]
        if PyFloat_CheckExact(x):
            v[i] = PyFloat_AS_DOUBLE(x)
            present += 1
        elif PyLong_CheckExact(x):
            v[i] = PyLong_AsDouble(x)
            present += 1
        elif x is None:
            v[i] = NAN
        elif isinstance(x, (str, bool)):
            return None
        else:
            raise TypeError("not a plain number")
    return out, present


def row_codes(list columns, Py_ssize_t n):
    """Each row's tuple of the columns' values as a code into the distinct tuples, in order of first
    appearance: (codes, distinct tuples)."""
    cdef dict seen = {}
    cdef Py_ssize_t i, j, k = len(columns)
    cdef Py_ssize_t code
    cdef object key
    cdef PyObject* found
    out = np.empty(n, dtype=np.int64)
    cdef long long[::1] codes = out
    for i in range(n):
        key = tuple([(<list>columns[j])[i] for j in range(k)])
        found = PyDict_GetItem(seen, key)
        if found is NULL:
            code = len(seen)
            seen[key] = code
        else:
            code = <object>found
        codes[i] = code
    return out, list(seen)


def lookup_codes(dict codes_of, list values, long long missing):
    """``codes_of[v]`` for every value, ``missing`` where it has none (a value that cannot be a key, too)."""
    cdef Py_ssize_t n = len(values), i
    cdef PyObject* found
    out = np.empty(n, dtype=np.int64)
    cdef long long[::1] codes = out
    for i in range(n):
        found = PyDict_GetItem(codes_of, values[i])  # (NULL for an unhashable value too: no error is raised)
        codes[i] = missing if found is NULL else <long long>(<object>found)
    return out


def cells_by_run(const double[::1] x, const long long[::1] runs, const double[::1] lo, const double[::1] width,
                 long long bins):
    """monitor.core.cells.cells of values in runs, run ``r`` on the scale (``lo[r]``, ``width[r]``), in one pass:
    the same IEEE operations (subtract, divide, floor), not a number and above ``bins`` to the top cell."""
    cdef Py_ssize_t r, i, at = 0, end
    cdef double place, top = <double>bins
    _check_runs(runs, x.shape[0])
    if lo.shape[0] != runs.shape[0] or width.shape[0] != runs.shape[0]:
        raise ValueError("one scale per run")
    out = np.empty(x.shape[0], dtype=np.int64)
    cdef long long[::1] cell = out
    for r in range(runs.shape[0]):
        end = at + runs[r]
        for i in range(at, end):
            place = floor((x[i] - lo[r]) / width[r])
            if not place <= top:  # (also not a number)
                place = top
            elif place < -1.0:
                place = -1.0
            cell[i] = <long long>place + 1
        at = end
    return out


cdef inline long long _edge_code(double x, long long flat, const long long[::1] below, const double[::1] first,
                                 const long long[::1] inside, const double[::1] edges, long long width_edges,
                                 long long cells) noexcept nogil:
    cdef long long code = below[flat] + (first[flat] < x), k, base
    if inside[flat] > 1:
        base = (flat // cells) * width_edges + below[flat]
        for k in range(1, inside[flat]):
            code += edges[base + k] < x
    return code


def edge_codes(const double[::1] x, const long long[::1] cell, const long long[::1] row,
               const long long[::1] below, const double[::1] first, const long long[::1] inside,
               const double[::1] edges, long long width_edges, long long cells):
    """monitor.core.cells.EdgeLookup.codes in one pass over the values."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef long long flat
    if cell.shape[0] != n or row.shape[0] != n:
        raise ValueError("a cell and a row per value")
    out = np.empty(n, dtype=np.int64)
    cdef long long[::1] codes = out
    for i in range(n):
        flat = row[i] * cells + cell[i]
        if cell[i] < 0 or cell[i] >= cells or flat < 0 or flat >= below.shape[0]:
            raise ValueError("a cell or a row outside the table")
        codes[i] = _edge_code(x[i], flat, below, first, inside, edges, width_edges, cells)
    return out


def edge_codes_by_run(const double[::1] x, const long long[::1] cell, const long long[::1] runs,
                      const long long[::1] below, const double[::1] first, const long long[::1] inside,
                      const double[::1] edges, long long width_edges, long long cells):
    """:func:`edge_codes` with row ``r`` for the values of run ``r`` (``runs[r]`` of them, one after another)."""
    cdef Py_ssize_t r, i, at = 0, end
    _check_runs(runs, x.shape[0])
    if cell.shape[0] != x.shape[0] or runs.shape[0] * cells > below.shape[0]:
        raise ValueError("a cell per value and a row of the table per run")
    out = np.empty(x.shape[0], dtype=np.int64)
    cdef long long[::1] codes = out
    for r in range(runs.shape[0]):
        end = at + runs[r]
        for i in range(at, end):
            if cell[i] < 0 or cell[i] >= cells:
                raise ValueError("a cell outside the table")
            codes[i] = _edge_code(x[i], r * cells + cell[i], below, first, inside, edges, width_edges, cells)
        at = end
    return out


cdef void _check_bounds(const long long[::1] bounds, Py_ssize_t edges) except *:
    """Bounds that split ``edges`` values into consecutive slices, none reversed (the loops index without
    checks)."""
    cdef Py_ssize_t k
    if bounds.shape[0] == 0 or bounds[0] < 0 or bounds[bounds.shape[0] - 1] > edges:
        raise ValueError("bounds outside the edges")
    for k in range(bounds.shape[0] - 1):
        if bounds[k + 1] < bounds[k]:
            raise ValueError("bounds out of order")


cdef inline long long _sorted_code(double v, const double[::1] edges, long long first, long long last) noexcept nogil:
    """``searchsorted(edges[first:last], v, side="left")`` on edges in order with no NaN: a NaN value goes after
    every edge, as numpy sorts it. Without a branch on the comparisons: values fall on either side of an edge at
    random, and a mispredicted branch per halving made a plain binary search cost 8x the look-up by cells on
    5,000-row batches. A few edges are counted; more are halved whatever the comparison says, the comparison
    only moving the base."""
    cdef long long base = first, n = last - first, half, k, below = 0
    if v != v:
        return n
    if n <= 16:  # a reference's few edges (bins - 1): count those below, each comparison independent of the last
        for k in range(first, last):
            below += edges[k] < v
        return below
    while n > 1:
        half = n >> 1
        base += half * (edges[base + half - 1] < v)
        n -= half
    return base - first + (edges[base] < v)


def sorted_codes_by_run(const double[::1] x, const long long[::1] runs, const double[::1] edges,
                        const long long[::1] bounds):
    """``searchsorted(edges[bounds[r]:bounds[r + 1]], v, side="left")`` for each value ``v`` of run ``r``
    (``runs[r]`` values, one run after another); each run's edges in order, with no NaN."""
    cdef Py_ssize_t r, i, at = 0, end
    _check_runs(runs, x.shape[0])
    _check_bounds(bounds, edges.shape[0])
    if bounds.shape[0] != runs.shape[0] + 1:
        raise ValueError("a bound either side of each run's edges")
    out = np.empty(x.shape[0], dtype=np.int64)
    cdef long long[::1] codes = out
    for r in range(runs.shape[0]):
        end = at + runs[r]
        for i in range(at, end):
            codes[i] = _sorted_code(x[i], edges, bounds[r], bounds[r + 1])
        at = end
    return out


def sorted_codes(const double[::1] x, const long long[::1] row, const double[::1] edges,
                 const long long[::1] bounds):
    """:func:`sorted_codes_by_run` with each value's own row of edges (``row[i]``)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef long long k
    _check_bounds(bounds, edges.shape[0])
    if row.shape[0] != n:
        raise ValueError("a row per value")
    out = np.empty(n, dtype=np.int64)
    cdef long long[::1] codes = out
    for i in range(n):
        k = row[i]
        if k < 0 or k >= bounds.shape[0] - 1:
            raise ValueError("a row outside the edges")
        codes[i] = _sorted_code(x[i], edges, bounds[k], bounds[k + 1])
    return out


def counts_by_run(const long long[::1] codes, const long long[::1] lengths, long long width):
    """For consecutive runs of ``lengths[r]`` codes each, how many of each code (0 to ``width`` - 1) the run has:
    an array of runs x ``width``."""
    out = np.zeros((lengths.shape[0], width), dtype=np.int64)
    cdef long long[:, ::1] counts = out
    cdef Py_ssize_t r, i, at = 0, end
    cdef long long code
    _check_runs(lengths, codes.shape[0])
    for r in range(lengths.shape[0]):
        end = at + lengths[r]
        for i in range(at, end):
            code = codes[i]
            if code < 0 or code >= width:
                raise ValueError(f"code {code} outside 0 to {width - 1}")
            counts[r, code] += 1
        at = end
    return out


def stream_layout(const double[:, ::1] matrix, const long long[::1] grouped, const long long[:, ::1] ids,
                  const long long[::1] lengths, const double[::1] times, const long long[::1] positions):
    """Every subject's values (rows of ``matrix``) for every bucket, one stream after another: subject f's
    bucket b is ``lengths[b]`` rows of ``grouped`` (the buckets' rows one after another) from its offset; each
    value with its stream ``ids[f, b]``, its row's time and position (``times`` and ``positions`` by place
    in ``grouped``). Returns (values, stream, times, positions)."""
    cdef Py_ssize_t f, b, j, o = 0, at, m = grouped.shape[0]
    cdef Py_ssize_t total = matrix.shape[0] * m
    cdef long long s
    _check_runs(lengths, m)
    if times.shape[0] != m or positions.shape[0] != m or ids.shape[0] != matrix.shape[0] \
            or ids.shape[1] != lengths.shape[0]:
        raise ValueError("a time and position per grouped row, a stream per subject and bucket")
    for j in range(m):
        if grouped[j] < 0 or grouped[j] >= matrix.shape[1]:
            raise ValueError("a grouped row outside the matrix")
    values_out = np.empty(total, dtype=np.float64)
    stream_out = np.empty(total, dtype=np.int64)
    times_out = np.empty(total, dtype=np.float64)
    positions_out = np.empty(total, dtype=np.int64)
    cdef double[::1] v = values_out, t = times_out
    cdef long long[::1] st = stream_out, p = positions_out
    for f in range(matrix.shape[0]):
        at = 0
        for b in range(lengths.shape[0]):
            s = ids[f, b]
            for j in range(at, at + lengths[b]):
                v[o] = matrix[f, grouped[j]]
                st[o] = s
                t[o] = times[j]
                p[o] = positions[j]
                o += 1
            at += lengths[b]
    return values_out, stream_out, times_out, positions_out


cdef inline double _nan_min(double a, double b) noexcept nogil:
    """numpy's minimum: not a number when either is."""
    if a != a or b != b:
        return a + b
    return b if b < a else a


cdef inline double _nan_max(double a, double b) noexcept nogil:
    if a != a or b != b:
        return a + b
    return b if b > a else a


def page_hinkley(const double[::1] z, const long long[::1] runs, const long long[::1] owners,
                 double[::1] ph_n, double[::1] ph_sum, double[::1] ph_inc, double[::1] ph_dec, double[::1] ph_min,
                 double[::1] ph_max, double size, double delta, double threshold, double min_instances,
                 double fade):
    """Page-Hinkley over chunks grouped by stream (``runs[r]`` chunks of stream ``owners[r]``, z their
    standardised means), in order, each stream's state read from and left in the ``ph_*`` arrays. A stream that
    fires starts afresh from its next chunk. The same operations, in the same order, as the 2-D numpy pass of
    monitor.core.sequential (a running sum from each start, added to the state it started from). Returns the
    chunks that fired (their index into ``z``) and, for each, how many times its stream had fired before in
    this call."""
    cdef Py_ssize_t r, i, at = 0, end, fired = 0
    cdef long long o, fires, counted
    cdef double g, n, total, dev, inc, dec, low, high, run_sum, run_inc, run_dec
    cdef double n0, sum0, inc0, dec0, min0, max0, drift = size * delta
    _check_runs(runs, z.shape[0])
    if owners.shape[0] != runs.shape[0]:
        raise ValueError("one owner per run")
    for r in range(owners.shape[0]):
        o = owners[r]
        if o < 0 or o >= ph_n.shape[0] or ph_n.shape[0] != ph_sum.shape[0] or ph_n.shape[0] != ph_inc.shape[0] \
                or ph_n.shape[0] != ph_dec.shape[0] or ph_n.shape[0] != ph_min.shape[0] \
                or ph_n.shape[0] != ph_max.shape[0]:
            raise ValueError("an owner outside the state arrays")
    hit_out = np.empty(z.shape[0], dtype=np.int64)
    nth_out = np.empty(z.shape[0], dtype=np.int64)
    cdef long long[::1] hit = hit_out, nth = nth_out
    for r in range(runs.shape[0]):
        o = owners[r]
        end = at + runs[r]
        fires = 0
        n0, sum0, inc0, dec0, min0, max0 = ph_n[o], ph_sum[o], ph_inc[o], ph_dec[o], ph_min[o], ph_max[o]
        counted, run_sum, run_inc, run_dec = 0, 0.0, 0.0, 0.0
        low, high = min0, max0
        for i in range(at, end):
            g = z[i] * size
            counted += 1
            n = n0 + size * <double>counted
            run_sum = run_sum + g
            total = sum0 + run_sum
            dev = g - size * total / n
            if fade == 1.0:
                run_inc = run_inc + (dev - drift)
                run_dec = run_dec + (dev + drift)
                inc = inc0 + run_inc
                dec = dec0 + run_dec
            else:  # a first-order filter, as scipy.signal.lfilter([1], [1, -fade]) from fade * the start
                run_inc = (dev - drift) + fade * (inc0 if counted == 1 else run_inc)
                run_dec = (dev + drift) + fade * (dec0 if counted == 1 else run_dec)
                inc, dec = run_inc, run_dec
            low = _nan_min(low, inc) if counted > 1 else _nan_min(inc, min0)
            high = _nan_max(high, dec) if counted > 1 else _nan_max(dec, max0)
            if n >= min_instances and (inc - low > threshold or high - dec > threshold):
                hit[fired] = i
                nth[fired] = fires
                fired += 1
                fires += 1
                n0 = sum0 = inc0 = dec0 = 0.0
                min0, max0 = INFINITY, -1.0
                counted, run_sum, run_inc, run_dec = 0, 0.0, 0.0, 0.0
                low, high = min0, max0
                continue
        ph_n[o], ph_sum[o] = (n0 + size * <double>counted, sum0 + run_sum) if counted else (n0, sum0)
        if counted:
            ph_inc[o], ph_dec[o] = inc, dec
            ph_min[o], ph_max[o] = low, high
        else:
            ph_inc[o], ph_dec[o], ph_min[o], ph_max[o] = inc0, dec0, min0, max0
        at = end
    return hit_out[:fired], nth_out[:fired]


def chunk_add(const double[::1] values, const double[::1] times, const long long[::1] runs,
              const long long[::1] streams, long long[::1] count, double[::1] part_sum, double[::1] part_squares,
              double[::1] part_start, long long size):
    """monitor.core.chunks.StreamChunker.add_grouped in one pass: values grouped by stream (``runs[r]`` values
    of stream ``streams[r]``) cut into chunks of ``size`` values, each stream's open chunk continued from the
    state arrays and left there. Sums go value by value from the open chunk's, so a chunk's sum is the same to
    the last bit however its values were cut into batches (the twin sums pieces with numpy's reduceat, whose
    pairwise order can differ in the last bits). Returns the complete chunks: (stream, seq, sum, sum of
    squares, first time, last time)."""
    cdef Py_ssize_t r, i, at = 0, end, made = 0, most = 0
    cdef long long s, k, number
    cdef double piece, squares, start
    cdef bint carried
    _check_runs(runs, values.shape[0])
    if times.shape[0] != values.shape[0] or streams.shape[0] != runs.shape[0] or size < 1:
        raise ValueError("a time per value, a stream per run, a chunk of at least one value")
    for r in range(runs.shape[0]):
        s = streams[r]
        if s < 0 or s >= count.shape[0] or count.shape[0] != part_sum.shape[0] \
                or count.shape[0] != part_squares.shape[0] or count.shape[0] != part_start.shape[0]:
            raise ValueError("a stream outside the state arrays")
    # Each run completes at most (its length + its stream's open chunk) // size chunks, and an open chunk holds
    # fewer than ``size`` values: at most one more chunk per run than its values fill. A bound that holds when a
    # stream comes in several runs too (each continues the count the one before left), not read from the
    # state before the batch, which such a stream outgrows.
    most = values.shape[0] // size + runs.shape[0]
    stream_out = np.empty(most, dtype=np.int64)
    seq_out = np.empty(most, dtype=np.int64)
    sum_out = np.empty(most, dtype=np.float64)
    squares_out = np.empty(most, dtype=np.float64)
    start_out = np.empty(most, dtype=np.float64)
    end_out = np.empty(most, dtype=np.float64)
    cdef long long[::1] o_stream = stream_out, o_seq = seq_out
    cdef double[::1] o_sum = sum_out, o_squares = squares_out, o_start = start_out, o_end = end_out
    for r in range(runs.shape[0]):
        s = streams[r]
        end = at + runs[r]
        k = count[s] % size  # values already in the stream's open chunk
        number = count[s] // size  # complete chunks so far
        carried = k > 0
        piece, squares = (part_sum[s], part_squares[s]) if carried else (0.0, 0.0)
        start = part_start[s] if carried else (times[at] if runs[r] else 0.0)
        for i in range(at, end):
            piece = piece + values[i]
            squares = squares + values[i] * values[i]
            k += 1
            if k == size:
                number += 1
                o_stream[made], o_seq[made] = s, number * size
                o_sum[made], o_squares[made] = piece, squares
                o_start[made], o_end[made] = start, times[i]
                made += 1
                k, piece, squares = 0, 0.0, 0.0
                if i + 1 < end:
                    start = times[i + 1]
        count[s] += runs[r]
        if k:
            part_sum[s], part_squares[s] = piece, squares
            part_start[s] = start
        else:
            part_sum[s], part_squares[s], part_start[s] = 0.0, 0.0, NAN
        at = end
    return stream_out[:made], seq_out[:made], sum_out[:made], squares_out[:made], start_out[:made], end_out[:made]


def run_moments(const double[::1] x, const long long[::1] runs):
    """Per run of values: the sum, the sum of squared deviations from the run's mean, the minimum and the
    maximum (numpy's, not-a-number spreading), two passes over each run."""
    cdef Py_ssize_t r, i, at = 0, end, m = runs.shape[0]
    cdef double total, mean, d, m2, low, high, v
    _check_runs(runs, x.shape[0])
    sum_out = np.empty(m, dtype=np.float64)
    m2_out = np.empty(m, dtype=np.float64)
    min_out = np.empty(m, dtype=np.float64)
    max_out = np.empty(m, dtype=np.float64)
    cdef double[::1] o_sum = sum_out, o_m2 = m2_out, o_min = min_out, o_max = max_out
    for r in range(m):
        end = at + runs[r]
        if end == at:
            raise ValueError("an empty run")
        total, low, high = 0.0, x[at], x[at]
        for i in range(at, end):
            v = x[i]
            total = total + v
            low = _nan_min(low, v)
            high = _nan_max(high, v)
        mean = total / <double>runs[r]
        m2 = 0.0
        for i in range(at, end):
            d = x[i] - mean
            m2 = m2 + d * d
        o_sum[r], o_m2[r], o_min[r], o_max[r] = total, m2, low, high
        at = end
    return sum_out, m2_out, min_out, max_out


def chain_sums(const double[:, ::1] parts, const long long[::1] runs, const double[:, ::1] base):
    """Per run of columns of ``parts`` (rows of quantities, one column per item): each column's running sums
    from the run's ``base`` column, added in order (each sum the previous one plus the item, as value-by-value
    updates give)."""
    cdef Py_ssize_t q = parts.shape[0], c = parts.shape[1], r, i, j, at = 0, end
    cdef double acc
    _check_runs(runs, c)
    if base.shape[0] != q or base.shape[1] != runs.shape[0]:
        raise ValueError("a base column per run, a row per quantity")
    out = np.empty((q, c), dtype=np.float64)
    cdef double[:, ::1] o = out
    for j in range(q):
        at = 0
        for r in range(runs.shape[0]):
            end = at + runs[r]
            acc = base[j, r]
            for i in range(at, end):
                acc = acc + parts[j, i]
                o[j, i] = acc
            at = end
    return out
