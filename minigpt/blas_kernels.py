"""Which of OpenBLAS's kernels NumPy's matrix products run, and why minigpt picks them on AMD.

NumPy's wheels ship one OpenBLAS built for many CPUs. When the library loads (the first
`import numpy`), it reads the CPU and picks a set of kernels, unless the environment variable
OPENBLAS_CORETYPE names one. On AMD's Zen 1-3 and (OpenBLAS 0.3.31) Zen 5 it picks its
"Haswell" kernels (AVX2). On Zen 4, which has AVX-512, it picks "SkylakeX", the kernels
tuned for Intel's AVX-512 CPUs. Those pack a weight more slowly before a product of several
rows. On a 2-vCPU Zen 4 EPYC (CPU family 25, model 17), gpt2's 48 block weights and its head
for 8 rows took 38 ms with SkylakeX against 30-33 ms with Haswell; one row took the same
(16 ms), 512 rows 630-645 against 606-612 ms. That is most of batched sampling's step on 8
prompts (41-46 ms with Haswell); benchmarks/README.md has the runs.

So `import minigpt` asks for the Haswell kernels on an AMD CPU with AVX-512, when:
- OPENBLAS_CORETYPE is not set: a value of yours (even "SkylakeX") is kept, which is also how
  to opt out;
- NumPy is not imported yet: OpenBLAS reads the variable once, when it loads, so importing
  NumPy before minigpt keeps OpenBLAS's own choice (nothing breaks, products of several rows
  are slower).
The kernels change only speed and the order of float additions: tests compare with tolerances
that hold for any kernel. A NumPy built on another BLAS (MKL, Accelerate) ignores the variable.

`loaded_kernels()` says which kernels the running process got (the benchmark prints it).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
WANTED_ON_AMD_AVX512 = "Haswell"
# How OpenBLAS builds name the function that reports the kernels: plain, and the prefixed
# 64-bit-integer build that NumPy's wheels ship (scipy-openblas).
CORENAME_FUNCTIONS = (
    "openblas_get_corename",
    "scipy_openblas_get_corename64_",
    "scipy_openblas_get_corename",
    "openblas_get_corename64_",
)


def kernels_for(cpuinfo: str) -> str | None:
    """The OPENBLAS_CORETYPE to ask for on the CPU `cpuinfo` (/proc/cpuinfo's text) describes,
    or None to leave OpenBLAS's choice.

    >>> kernels_for("vendor_id : AuthenticAMD\\nflags : fpu avx2 fma avx512f avx512bw")
    'Haswell'
    >>> kernels_for("vendor_id : GenuineIntel\\nflags : fpu avx2 fma avx512f") is None
    True
    """
    fields = first_cpu(cpuinfo)
    flags = set(fields.get("flags", "").split())
    amd = fields.get("vendor_id") == "AuthenticAMD"
    # Without AVX-512, OpenBLAS already runs Haswell's kernels on AMD (or older ones, which
    # Haswell's would crash: hence avx2 and fma too).
    if amd and {"avx2", "fma", "avx512f"} <= flags:
        return WANTED_ON_AMD_AVX512
    return None


def first_cpu(cpuinfo: str) -> dict[str, str]:
    """/proc/cpuinfo's fields ("vendor_id", "flags", "model name", ...) of its first CPU."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():  # "key<tabs> : value", one CPU after another
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def first_cpu_text() -> str:
    """/proc/cpuinfo up to its first blank line: the first CPU's block, or "" where there is
    no such file (not Linux). Every `import minigpt` reads it, and the whole file has a block
    per CPU, hundreds on a server."""
    try:
        with CPUINFO.open(errors="replace") as lines:
            return "".join(itertools.takewhile(str.strip, lines))
    except OSError:
        return ""


def choose(environ: MutableMapping[str, str] = os.environ, modules=sys.modules) -> str | None:
    """Set OPENBLAS_CORETYPE for this process when it helps and is still in time (see above).
    Returns the value set, or None when nothing was set."""
    if "OPENBLAS_CORETYPE" in environ or "numpy" in modules:
        return None
    wanted = kernels_for(first_cpu_text())  # no cpuinfo: no vendor, OpenBLAS's choice stays
    if wanted is not None:
        environ["OPENBLAS_CORETYPE"] = wanted
    return wanted


def loaded_kernels() -> str | None:
    """The kernels the OpenBLAS in this process runs ("Haswell", "SkylakeX", ...), or None when
    NumPy uses no OpenBLAS we can find (Linux only: the library is found in /proc/self/maps)."""
    import numpy  # noqa: F401  (loads the BLAS, if it is not loaded yet)

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = {line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower()}
    for path in sorted(p for p in paths if p.startswith("/")):
        library = ctypes.CDLL(path)  # already loaded: this only finds it
        for name in CORENAME_FUNCTIONS:
            function = getattr(library, name, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                return function().decode()
    return None
