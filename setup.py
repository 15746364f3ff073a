"""Build script for the one optional C extension; everything else is in pyproject.toml.

``stratacache.core._speedups`` holds compiled hot paths: TinyLFU's inner loops and the memory
store's get (see the .c file). It is ``optional``: without a C compiler (or on a platform it
does not support) the build warns and the package runs its pure-Python code, with the same
results, more slowly.
"""

import sys

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "stratacache.core._speedups",
            ["src/stratacache/core/_speedups.c"],
            depends=[  # included by _speedups.c
                "src/stratacache/core/_linkedmap.h",
                "src/stratacache/core/_storelock.h",
            ],
            optional=True,
            # A call to an undeclared function compiles to one returning int: a crash, not
            # a fallback. Make it a build error, so the package falls back to pure Python.
            extra_compile_args=[] if sys.platform == "win32" else ["-Werror=implicit-function-declaration"],
        ),
        Extension(  # the server's request parser (server/fastparse.py falls back without it)
            "stratacache.server._speedups",
            ["src/stratacache/server/_speedups.c"],
            optional=True,
            extra_compile_args=[] if sys.platform == "win32" else ["-Werror=implicit-function-declaration"],
        ),
    ]
)
