"""minigpt/blas_kernels.py: `import minigpt` asks OpenBLAS for its Haswell kernels on AMD CPUs
with AVX-512, only while it is still in time (NumPy not loaded) and never over a user's own
OPENBLAS_CORETYPE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minigpt import blas_kernels

ROOT = Path(__file__).resolve().parents[1]


def cpuinfo(vendor: str, family: int, model: int, flags: str) -> str:
    return (
        f"vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nflags\t\t: {flags}\n"
    )


ZEN4 = cpuinfo("AuthenticAMD", 25, 17, "fpu sse2 avx avx2 fma avx512f avx512bw")
ZEN3 = cpuinfo("AuthenticAMD", 25, 1, "fpu sse2 avx avx2 fma")
SKYLAKE_X = cpuinfo("GenuineIntel", 6, 85, "fpu avx2 fma avx512f")


@pytest.mark.parametrize(
    "cpuinfo, wanted",
    [
        (ZEN4, "Haswell"),
        (ZEN4 + "\n" + ZEN4, "Haswell"),  # one block per CPU: the first decides
        (ZEN3, None),  # OpenBLAS already runs Haswell's kernels there
        (SKYLAKE_X, None),  # the AVX-512 kernels were made for these
        ("vendor_id : AuthenticAMD\nflags : fpu avx512f\n", None),  # no AVX2: Haswell's would crash
        ("", None),
    ],
)
def test_kernels_for(cpuinfo, wanted):
    assert blas_kernels.kernels_for(cpuinfo) == wanted


@pytest.fixture
def cpuinfo_file(tmp_path, monkeypatch):
    def write(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(blas_kernels, "CPUINFO", path)

    return write


def test_choose_sets_the_variable_on_zen4_while_numpy_is_not_loaded(cpuinfo_file):
    cpuinfo_file(ZEN4)
    environ: dict[str, str] = {}
    assert blas_kernels.choose(environ, modules={}) == "Haswell"
    assert environ == {"OPENBLAS_CORETYPE": "Haswell"}


def test_choose_leaves_other_cpus_alone(cpuinfo_file):
    cpuinfo_file(SKYLAKE_X)
    environ: dict[str, str] = {}
    assert blas_kernels.choose(environ, modules={}) is None
    assert environ == {}


def test_choose_keeps_the_users_value(cpuinfo_file):
    cpuinfo_file(ZEN4)
    environ = {"OPENBLAS_CORETYPE": "SkylakeX"}
    assert blas_kernels.choose(environ, modules={}) is None
    assert environ == {"OPENBLAS_CORETYPE": "SkylakeX"}


def test_choose_does_nothing_once_numpy_is_loaded(cpuinfo_file):
    # OpenBLAS has read the environment already: setting it now would only mislead.
    cpuinfo_file(ZEN4)
    environ: dict[str, str] = {}
    assert blas_kernels.choose(environ, modules={"numpy": object()}) is None
    assert environ == {}


def test_choose_without_proc_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.setattr(blas_kernels, "CPUINFO", tmp_path / "missing")
    environ: dict[str, str] = {}
    assert blas_kernels.choose(environ, modules={}) is None
    assert environ == {}


def run_python(code: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


REPORT = (
    "import json, os; from minigpt import blas_kernels; "
    "print(json.dumps({'env': os.environ.get('OPENBLAS_CORETYPE'), "
    "'loaded': blas_kernels.loaded_kernels()}))"
)


def this_cpu_wants() -> str | None:
    try:
        return blas_kernels.kernels_for(Path("/proc/cpuinfo").read_text())
    except OSError:
        return None


def test_import_minigpt_first_gets_the_kernels_this_cpu_wants():
    got = run_python("import minigpt; " + REPORT)
    wanted = this_cpu_wants()
    print(f"this CPU wants {wanted}; the process got {got}")
    assert got["env"] == wanted
    if wanted is not None and got["loaded"] is not None:  # None: NumPy runs another BLAS
        assert got["loaded"] == wanted


def test_import_numpy_first_keeps_openblas_own_choice():
    got = run_python("import numpy, minigpt; " + REPORT)
    print(f"the process got {got}")
    assert got["env"] is None
