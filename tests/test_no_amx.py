"""llama.cpp never runs its AMX matrix multiply (it crashes on Q4_K models on Sapphire Rapids class CPUs), proven
on a machine without AMX: the build recipe is compiled as if the CPU had AMX, the installed library is inspected,
and the load path is asked what it would do with the CPU flags of an AMX machine."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from assistant.llm import cpu
from assistant.llm.llamacpp import LlamaCppLLM
from conftest import ROOT, smollm2_path

SCRIPT = ROOT / "scripts" / "llama_wheel.sh"
SAPPHIRE_RAPIDS_FLAGS = cpu.cpu_flags("flags\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16 "
                                      "amx_bf16 amx_tile amx_int8\n")
AMX_INSTRUCTIONS = ("ldtilecfg", "tileloadd", "tdpbssd", "tdpbsud", "tdpbusd", "tdpbuud", "tdpbf16ps")


def _macros(*flags: str) -> set[str]:
    """The macros gcc defines for these flags (what ggml's ``#if defined(__AMX_INT8__)`` sees)."""
    out = subprocess.run(["gcc", *flags, "-dM", "-E", "-x", "c", "-"], input="", capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("#define")}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_the_build_recipe_leaves_amx_out_where_native_would_mean_amx():
    # -march=native on a Sapphire Rapids CPU is -march=sapphirerapids: AMX on, and ggml compiles its AMX backend
    assert {"__AMX_INT8__", "__AMX_TILE__"} <= _macros("-march=sapphirerapids")
    extra = subprocess.run(["bash", str(SCRIPT), "--cflags"], capture_output=True, text=True, check=True).stdout.split()
    # the recipe's flags switch it off whatever their order, and keep the rest of the native instruction sets
    for order in ([*extra, "-march=sapphirerapids"], ["-march=sapphirerapids", *extra]):
        macros = _macros(*order)
        assert not {m for m in macros if m.startswith("__AMX")}, order
        assert {"__AVX2__", "__AVX512F__", "__AVX512VNNI__", "__AVX512BF16__"} <= macros


def test_the_installed_llama_cpp_is_the_wheel_the_recipe_built():
    dist = importlib.metadata.distribution("llama-cpp-python")
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    folder = subprocess.run(["bash", str(SCRIPT), "--dir"], capture_output=True, text=True, check=True).stdout.strip()
    assert url.startswith(Path(folder).as_uri() + "/"), f"llama-cpp-python was installed from {url or 'an index'}"


def test_the_installed_library_has_no_amx_code():
    assert not cpu.build_has_amx(cpu.build_features())
    import llama_cpp

    libs = list(Path(llama_cpp.__file__).parent.glob("lib/libggml-cpu*.so"))
    assert libs, "no libggml-cpu library beside llama_cpp"
    if shutil.which("objdump") is None:
        pytest.skip("needs objdump")
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(libs[0])], capture_output=True, text=True,
                          check=True).stdout
    assert "vfmadd" in text or "vpdpbusd" in text  # the disassembly is read: SIMD code is there
    found = {i for i in AMX_INSTRUCTIONS if f"\t{i}" in text or f" {i} " in text}
    assert not found, f"AMX instructions in {libs[0].name}: {sorted(found)}"


def test_extra_buffer_types_are_refused_only_where_the_amx_code_would_run():
    with_amx, without = {"AVX2": "1", "AMX_INT8": "1"}, {"AVX2": "1", "AVX512": "1"}
    assert not cpu.extra_buffer_types_allowed(SAPPHIRE_RAPIDS_FLAGS, with_amx)
    assert cpu.extra_buffer_types_allowed(SAPPHIRE_RAPIDS_FLAGS, without)
    assert cpu.extra_buffer_types_allowed(SAPPHIRE_RAPIDS_FLAGS - cpu.AMX_FLAGS, with_amx)
    assert cpu.build_features("CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 1 | REPACK = 1 |")["AMX_INT8"] == "1"


def test_on_a_faked_amx_cpu_with_an_amx_build_the_model_loads_without_extra_buffers(monkeypatch):
    """A user's own llama-cpp-python built with AMX, on an AMX CPU: the load path turns the AMX buffers off."""
    monkeypatch.setattr(cpu, "cpu_flags", lambda cpuinfo=None: SAPPHIRE_RAPIDS_FLAGS)
    monkeypatch.setattr(cpu, "build_features", lambda info=None: {"AVX2": "1", "AMX_INT8": "1"})
    llm = LlamaCppLLM(smollm2_path(), n_ctx=512, n_threads=1)
    assert llm.extra_buffer_types is False and llm._llm.model_params.use_extra_bufts is False
    assert llm.chat([{"role": "user", "content": "Say hello."}], max_tokens=4).completion_tokens > 0


def test_on_this_cpu_the_model_keeps_its_extra_buffers():
    llm = LlamaCppLLM(smollm2_path(), n_ctx=512, n_threads=1)
    assert llm.extra_buffer_types is cpu.extra_buffer_types_allowed(cpu.cpu_flags(), cpu.build_features())
    assert llm._llm.model_params.use_extra_bufts is llm.extra_buffer_types
