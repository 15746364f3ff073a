"""Build script for the one optional C extension; everything else is in pyproject.toml.

``stratacache.core.policies._speedups`` holds TinyLFU's inner loops (see the .c file). It is
``optional``: without a C compiler (or on a platform it does not support) the build warns and
the package runs its pure-Python code, with the same results, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "stratacache.core.policies._speedups",
            ["src/stratacache/core/policies/_speedups.c"],
            optional=True,
        )
    ]
)
