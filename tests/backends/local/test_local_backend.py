"""LocalBackend as a plugin: light import, the protocol, connect, models, compute, ignored parameters."""

from __future__ import annotations

import subprocess
import sys

import pytest

from azml_magics.backends.base import Backend
from azml_magics.backends.local import LocalBackend
from azml_magics.errors import NotConnected

HEAVY = ("torch", "transformers", "trl", "peft", "mlflow", "datasets", "azure.ai.ml")


def test_importing_the_backend_imports_nothing_heavy():
    code = (
        "import sys\n"
        "import azml_magics.backends.local as m\n"
        "m.LocalBackend().ignored_parameters()\n"
        f"print([h for h in {HEAVY!r} if h in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_it_is_a_backend_plugin():
    from azml_magics.backends import load

    backend = load("local")
    assert isinstance(backend, LocalBackend) and isinstance(backend, Backend)
    assert (backend.name, backend.extra) == ("local", "local")
    assert "trl" in backend.requires and "mlflow" in backend.requires


def test_connect_creates_the_home(tmp_path):
    backend = LocalBackend()
    ws = backend.connect({"home": str(tmp_path / "h")})
    assert ws.backend == "local" and ws.key == f"local:{tmp_path / 'h'}"
    assert {p.name for p in (tmp_path / "h").iterdir()} >= {"jobs", "endpoints", "mlartifacts"}
    assert ws.details["mlflow_tracking_uri"] == f"sqlite:///{tmp_path / 'h' / 'mlflow.db'}"


def test_connect_home_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AZML_MAGICS_HOME", str(tmp_path / "envhome"))
    assert LocalBackend().connect({}).location == str(tmp_path / "envhome")


def test_not_connected_is_one_line():
    with pytest.raises(NotConnected, match="--backend local"):
        LocalBackend().list_jobs()


def test_models_and_compute(tiny_model_dir):
    backend = LocalBackend()
    names = [m.name for m in backend.list_models()]
    assert names[0] == "azml-tiny-phi3" and "Phi-3-mini-4k-instruct" in names
    info = backend.get_model("azml-tiny-phi3")
    compute = backend.check_compute(None, info)
    assert compute.name == "local" and not compute.created
    from azml_magics.pipeline_inputs import PIPELINE_INPUTS

    assert backend.component_inputs() == set(PIPELINE_INPUTS)
    tok = backend.tokenizer_for(info)
    assert tok.eos_token == "<|end|>"


def test_the_api_shows_ignored_parameters(tiny_model_dir):
    from azml_magics.plan import merge_parameters

    backend = LocalBackend()
    effective = merge_parameters({"apply_ort": "true"}, backend.get_model("azml-tiny-phi3").model_defaults)
    ignored = backend.ignored_parameters()
    assert "apply_ort" in effective.values and "ONNX" in ignored["apply_ort"]
