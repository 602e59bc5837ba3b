"""Builds the compiled per-value loops (monitor/core/_kernels.pyx) with the package; everything else is in
pyproject.toml. The extension is optional: without a C compiler the install still succeeds and
monitor.core.kernels runs its pure-Python twins (slower, same results)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("monitor.core._kernels", ["monitor/core/_kernels.pyx"], optional=True)],
        language_level=3,
        quiet=True,
    )
)
