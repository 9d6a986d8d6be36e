"""Only the optional native int8 kernel needs setup.py; everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "disttorch.quantization._int8kernel",
            ["disttorch/quantization/_int8kernel.c"],
            extra_compile_args=["-O3", "-march=native"],
            optional=True,  # without a compiler the package still installs; int8 layers use numpy
        )
    ]
)
