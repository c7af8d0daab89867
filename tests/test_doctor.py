"""``sofia-qa doctor`` as a user runs it: every check passes on a working install, and a missing, corrupted or
unloadable model, or an empty index, is a failure that says what to do. The faults are real files."""

from __future__ import annotations

import json
import os

import pytest

from assistant.llm import model_files
from conftest import run_cli, smollm2_path
from test_app import build_index


@pytest.fixture(scope="module")
def index_db(request):
    return build_index(request.config)


def doctor(*args: str, **env: str):
    out = run_cli("doctor", *args, env={**os.environ, "SOFIA_QA_CHROMA_URL": "", **env}, timeout=900)
    return out, (json.loads(out.stdout) if "--json" in args else None)


def test_doctor_passes_on_this_machine_and_reports_what_matters(index_db):
    out, report = doctor("--json", SOFIA_QA_DB=str(index_db))
    assert out.returncode == 0 and report["ok"], out.stdout + out.stderr
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == ["cpu", "llama.cpp", "model", "index", "self-test"]
    assert "AVX2" in checks["cpu"]["detail"] and "AMX" in checks["cpu"]["detail"]
    assert checks["llama.cpp"]["data"]["version"] == "0.3.36" and "AMX_INT8" not in checks["llama.cpp"]["data"]["features"]
    assert checks["model"]["data"]["verified"] is True and "sha256 verified" in checks["model"]["detail"]
    assert checks["index"]["data"]["documents"] >= 8 and checks["index"]["data"]["chunks"] > 100
    assert checks["index"]["data"]["embedding_model"] == "multilingual-e5-small"
    test = checks["self-test"]
    assert test["status"] == "ok" and "sofia" in test["data"]["reply"].lower()
    assert test["data"]["prompt_tokens_per_s"] > 0 and test["data"]["generated_tokens_per_s"] > 0
    assert all(c["status"] != "fail" and not (c["status"] == "ok" and c["fix"]) for c in checks.values())


def test_a_missing_model_file_fails_with_the_fix(index_db, tmp_path):
    out, _ = doctor(SOFIA_QA_DB=str(index_db), SOFIA_QA_MODEL_PATH=str(tmp_path / "nowhere.gguf"))
    assert out.returncode == 1
    assert "FAIL  model" in out.stdout and "nowhere.gguf" in out.stdout
    assert "fix: point SOFIA_QA_MODEL_PATH at a GGUF file" in out.stdout
    assert "self-test" not in out.stdout  # nothing to test without a model


@pytest.mark.parametrize("size", [model_files.BUNDLED_SIZE, 4096], ids=["same-size", "short"])
def test_a_corrupted_bundled_model_fails_with_the_fix(index_db, tmp_path, size):
    damaged = tmp_path / model_files.BUNDLED_NAME
    with open(damaged, "wb") as f:  # sparse: the size of the real file, none of its bytes
        f.truncate(size)
    out, report = doctor("--json", SOFIA_QA_DB=str(index_db), SOFIA_QA_MODEL_CACHE=str(tmp_path))
    assert out.returncode == 1 and not report["ok"]
    model = next(c for c in report["checks"] if c["name"] == "model")
    assert model["status"] == "fail" and model["data"]["verified"] is False
    assert ("sha256 mismatch" if size == model_files.BUNDLED_SIZE else "size mismatch") in model["detail"]
    assert model["fix"].startswith(f"delete {damaged}") and "joined anew" in model["fix"]


def test_a_model_that_cannot_load_fails_the_self_test(index_db, tmp_path):
    half = tmp_path / "half.gguf"
    half.write_bytes(smollm2_path().read_bytes()[: 2**20])  # an interrupted download
    out, report = doctor("--json", SOFIA_QA_DB=str(index_db), SOFIA_QA_MODEL_PATH=str(half))
    assert out.returncode == 1
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["model"]["status"] == "ok" and checks["model"]["data"]["verified"] is False
    test = checks["self-test"]
    assert test["status"] == "fail" and ("half.gguf" in test["detail"] or "while loading the model" in test["detail"])
    assert "scripts/llama_wheel.sh" in test["fix"]


def test_an_empty_index_fails_with_the_fix(tmp_path):
    out, _ = doctor(SOFIA_QA_DB=str(tmp_path / "empty"), SOFIA_QA_MODEL_PATH=str(tmp_path / "none.gguf"))
    assert out.returncode == 1 and "FAIL  index" in out.stdout and "fix: run `sofia-qa ingest`" in out.stdout
