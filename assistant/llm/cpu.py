"""What the CPU and the installed llama.cpp can do, and whether llama.cpp's extra weight buffers are safe to use."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})
# the features `sofia-qa doctor` shows, as /proc/cpuinfo names them
SHOWN_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
               "amx_tile", "amx_int8", "amx_bf16")


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return frozenset()
    m = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.M)
    return frozenset(m.group(1).split()) if m else frozenset()


def build_features(system_info: str | None = None) -> dict[str, str]:
    """``{"AVX2": "1", "AMX_INT8": "1", ...}`` from llama.cpp's system info line (what the library was built with)."""
    if system_info is None:
        import llama_cpp

        system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return {k.strip(): v.strip() for k, v in re.findall(r"([A-Z0-9_]+) = ([^|]+)", system_info)}


def build_has_amx(features: dict[str, str]) -> bool:
    return features.get("AMX_INT8") == "1"


def extra_buffer_types_allowed(flags: frozenset[str], features: dict[str, str]) -> bool:
    """False where llama.cpp would run its AMX matrix multiply: the CPU has AMX and the library was built with it.
    That code crashes on Q4_K models (docs/RELIABILITY.md, "AMX"); without extra buffer types it is never used."""
    return not (flags & AMX_FLAGS and build_has_amx(features))


@contextmanager
def without_extra_buffer_types(lib) -> Iterator[None]:
    """While a model loads: ``llama_model_params.use_extra_bufts`` off (llama-cpp-python's ``Llama`` does not take
    it as an argument; it asks ``llama_model_default_params`` for its defaults)."""
    original = lib.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = original
