"""Only the optional native int8 kernel needs setup.py; everything else is in pyproject.toml.

The kernel is tuned for the building machine (-march=native). A build meant for other machines (a
Docker image, a wheel to share) sets DISTTORCH_MARCH: `none` for the compiler's portable baseline, or
a target such as `x86-64-v3`.
"""
import os

from setuptools import Extension, setup

march = os.environ.get("DISTTORCH_MARCH", "native").strip()

setup(
    ext_modules=[
        Extension(
            "disttorch.quantization._int8kernel",
            ["disttorch/quantization/_int8kernel.c"],
            extra_compile_args=["-O3"] + ([] if march in ("", "none") else [f"-march={march}"]),
            optional=True,  # without a compiler the package still installs; int8 layers use numpy
        )
    ]
)
