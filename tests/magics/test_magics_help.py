"""Every magic answers -h; %load_ext imports nothing heavy; %config reaches the magics."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from azml_magics.magic_parsers import PARSERS
from tests.shell import run_cell

LINE_AND_CELL = {"azml_finetune", "azml_deploy", "azml_chat"}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_prints_usage_and_examples(ip, azml_home, name):
    result, out, _ = run_cell(ip, f"%{name} -h")
    assert result.error_in_exec is None, result.error_in_exec
    assert f"usage: %{name}" in out or f"usage: %%{name}" in out
    assert "examples:" in out
    # every example in the help names the magic itself
    examples = out.split("examples:", 1)[1]
    assert name in examples
    assert not azml_home.exists()


@pytest.mark.parametrize("name", sorted(LINE_AND_CELL))
def test_line_and_cell_forms_both_registered(ip, name):
    assert name in ip.magics_manager.magics["line"]
    assert name in ip.magics_manager.magics["cell"]


def test_question_mark_docstring_points_at_the_help(ip):
    for name in PARSERS:
        doc = ip.magics_manager.magics["line"][name].__doc__
        assert f"%{name} -h" in doc, name


def test_all_documented_magics_exist(ip):
    line = set(ip.magics_manager.magics["line"])
    cell = set(ip.magics_manager.magics["cell"])
    for name in ["azml_connect", "azml_data", "azml_jobs", "azml_register", "azml_deploy", "azml_chat",
                 "azml_delete", "azml_status", "azml_models"]:
        assert name in line, name
    assert "azml_finetune" in cell


def test_config_traits_reach_the_session(ip, tmp_path):
    result, _, _ = run_cell(ip, "%config AzmlMagics.poll_interval = 0.5")
    assert result.error_in_exec is None
    result, _, _ = run_cell(ip, "%config AzmlMagics.backend = 'azure'")
    assert result.error_in_exec is None
    assert ip.azml.session.poll_interval == 0.5
    assert ip.azml.session.default_backend == "azure"
    result, out, _ = run_cell(ip, "%config AzmlMagics")
    assert "poll_interval" in out and "backend" in out and "home" in out


def test_status_before_connect_says_how(ip, azml_home):
    result, out, _ = run_cell(ip, "%azml_status")
    assert result.error_in_exec is None
    assert "Nothing recorded" in out and "%azml_connect" in out


def test_list_parameters_shows_every_user_input(ip):
    from azml_magics.pipeline_inputs import user_settable

    result, out, outputs = run_cell(ip, "%azml_finetune --list-parameters")
    assert result.error_in_exec is None
    text = "".join(o.data.get("text/plain", "") for o in outputs)
    for name in user_settable():
        assert name in text


LOAD_EXT_PROBE = r"""
import json, sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "azml_magics")
ip.run_cell("%azml_connect -h")
ip.run_cell("%%azml_finetune --dry-run\nmodel: m\nparameters: {learnin_rate: 1}\n")
heavy = ["azure.ai.ml", "azure.identity", "torch", "transformers", "mlflow", "datasets", "pandas", "peft", "trl"]
print(json.dumps([m for m in heavy if m in sys.modules]))
"""


def test_load_ext_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", LOAD_EXT_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
