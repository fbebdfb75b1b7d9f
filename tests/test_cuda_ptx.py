"""The CUDA kernels of refimpl/xp/cuda_tiny.py compile to PTX without a GPU.

:func:`refimpl.xp.cuda_tiny.compile_ptx` runs numba's CUDA front end and
libNVVM for a fixed compute capability (sm_80) with no driver and no device;
``ptxas`` (where the CUDA toolkit has it) then assembles that PTX to a cubin,
which checks that the PTX is complete and valid for the target.  What the
kernels compute is tested in the CUDA simulator (tests/cudasim, started by
tests/test_xp.py); this file checks that the same source builds for a real GPU.

Skips, with the reason, where libNVVM is not found (no CUDA toolkit, no
``nvidia-nvvm`` wheel) or another compiler library is (numba-cuda also loads
NVRTC) and, for the ptxas test, where ``ptxas`` is not found.
The machine image this project's CI runs on has the CUDA 13.0 toolkit in
/usr/local/cuda, so there both run.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CC = (8, 0)  # A100: the oldest architecture CUDA 13 and CuPy 14 both build for


def _skip_without_nvvm():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("the CUDA simulator has no PTX compiler (NUMBA_ENABLE_CUDASIM=1)")
    from numba.cuda.cudadrv import nvvm

    if not nvvm.is_available():
        pytest.skip("libNVVM not found (no CUDA toolkit and no nvidia-nvvm wheel; "
                    "numba looks in CUDA_HOME and /usr/local/cuda)")


@pytest.fixture(scope="module")
def ptx():
    _skip_without_nvvm()
    from refimpl.xp import cuda_tiny

    try:
        return cuda_tiny.compile_ptx(CC)
    except Exception as exc:
        # A missing compiler library skips (numba-cuda also loads NVRTC to
        # pick the architecture); anything else fails, in particular
        # CudaSupportError, a kernel whose compile asks for a driver context.
        if type(exc).__name__ in _MISSING_LIBRARY:
            pytest.skip(f"a CUDA compiler library is missing: {exc}")
        raise


_MISSING_LIBRARY = ("NvvmSupportError", "NvrtcSupportError", "DynamicLibNotFoundError")


def _kernels_in_module():
    from numba.cuda.dispatcher import CUDADispatcher

    from refimpl.xp import cuda_tiny

    return {name for name, v in vars(cuda_tiny).items()
            if isinstance(v, CUDADispatcher) and not v.targetoptions.get("device")}


def test_every_kernel_compiles_to_ptx_for_sm80_without_a_device(ptx):
    kernels = _kernels_in_module()
    assert kernels == {"newton_kernel", "adjoint_kernel"}, kernels
    assert set(ptx) == kernels, "compile_ptx must cover every kernel of the module"
    for name, text in ptx.items():
        assert re.search(rf"^\.target\s+sm_{CC[0]}{CC[1]}\s*$", text, re.M), name
        entries = re.findall(r"^\.visible \.entry (\S+?)\(", text, re.M)
        assert len(entries) == 1 and name in entries[0], (name, entries)
        # The device functions are inlined and libdevice is linked: nothing
        # is left to resolve at load time.
        assert ".extern" not in text, name
        assert re.search(r"^\.address_size 64", text, re.M), name


def _ptxas():
    found = shutil.which("ptxas")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "ptxas").is_file():
            return str(Path(home) / "bin" / "ptxas")
    return None


def test_ptx_assembles_with_ptxas(ptx, tmp_path):
    ptxas = _ptxas()
    if ptxas is None:
        pytest.skip("ptxas not found (no CUDA toolkit on PATH, in CUDA_HOME or /usr/local/cuda)")
    for name, text in ptx.items():
        src, out = tmp_path / f"{name}.ptx", tmp_path / f"{name}.cubin"
        src.write_text(text)
        res = subprocess.run([ptxas, f"-arch=sm_{CC[0]}{CC[1]}", "-v", "-o", str(out), str(src)],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, name + ": " + res.stderr[-2000:]
        assert out.stat().st_size > 0, name
        assert re.search(r"Compiling entry function '\S*" + name, res.stderr), res.stderr[-2000:]


def test_compile_ptx_rejects_a_bad_compute_capability():
    from refimpl.xp import cuda_tiny

    for bad in ((8,), "8.0", (8, -1), (0, 0), (8.5, 0)):
        with pytest.raises(ValueError, match="cc must be"):
            cuda_tiny.compile_ptx(bad)
