# cython: language_level=3, boundscheck=False, wraparound=False
"""Per-value loops of the hot path in C (built when the package is installed; monitor.core.kernels has their
pure-Python twins, used when this module is absent, and checks that both give the same results)."""

from cpython.dict cimport PyDict_GetItem
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsDouble
from cpython.ref cimport PyObject

import numpy as np

cdef extern from "Python.h":
    bint PyFloat_CheckExact(object o)
    bint PyLong_CheckExact(object o)


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
