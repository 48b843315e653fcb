"""The spec's mode: parsed with its line, chosen from the model card when absent, and the
hyperparameters a FineTuning job takes (sent as strings)."""

from __future__ import annotations

import pytest

from azml_magics.backends.base import ModelInfo
from azml_magics.errors import SpecError
from azml_magics.spec import check_finetune, parse_finetune
from azml_magics.spec_modes import choose_mode, job_hyperparameters

MAAS = ModelInfo(name="Phi-4", version="8", id="azureml://registries/azureml/models/Phi-4/versions/8",
                 deployment_options=["UnifiedEndpointMaaS", "MaaP", "ServerlessMaaS"])
MAAP_ONLY = ModelInfo(name="Some-Model", version="1", id="azureml://registries/azureml/models/Some-Model/versions/1",
                      deployment_options=["MaaP"])


def test_mode_is_read_and_kept_in_the_spec():
    spec = parse_finetune("model: Phi-4\nmode: job\ncompute: {size: Standard_NC24ads_A100_v4, job_tier: spot}\n")
    assert spec.mode == "job" and spec.compute.job_tier == "Spot" and spec.compute_named
    assert spec.to_dict()["mode"] == "job" and "compute_named" not in spec.to_dict()
    assert parse_finetune("model: Phi-4").mode is None


@pytest.mark.parametrize("text, message", [
    ("model: m\nmode: serverles", "line 2: mode 'serverles' is not a fine-tune mode; did you mean 'serverless'?"),
    ("model: m\nmode: job\ncompute: {job_tier: gold}", "line 3: compute.job_tier must be one of Spot, Basic, Standard, Premium"),
    ("model: m\nmode: pipeline\ncompute: {job_tier: spot}", "line 3: compute.job_tier is a FineTuning job's queue tier"),
    ("model: m\nmode: serverless\ncompute: {size: Standard_NC24ads_A100_v4}", "line 3: mode serverless runs on no compute"),
    ("model: m\nmode: job\nparameters:\n  lora_r: 8", "line 4: parameter 'lora_r' is not a hyperparameter a FineTuning job takes"),
])
def test_bad_mode_lines_are_one_line_errors(text, message):
    with pytest.raises(SpecError) as err:
        parse_finetune(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_mode_error_is_collected_with_its_path():
    checked = check_finetune("model: m\nmode: serverless\ncompute: {size: Standard_NC24ads_A100_v4}\nparameters: {lora_r: 8}")
    assert {e.path for e in checked.errors} == {"compute", "parameters.lora_r"}


def test_no_mode_chooses_serverless_where_the_card_offers_it_and_no_compute_is_named():
    assert choose_mode(parse_finetune("model: Phi-4"), MAAS, jobs_supported=True)[0] == "serverless"
    named = parse_finetune("model: Phi-4\ncompute: {size: Standard_NC24ads_A100_v4}")
    assert choose_mode(named, MAAS, jobs_supported=True) == ("pipeline", "chosen from the model card: a compute is named")
    assert choose_mode(parse_finetune("model: m"), MAAP_ONLY, jobs_supported=True)[0] == "pipeline"
    assert choose_mode(parse_finetune("model: Phi-4"), MAAS, jobs_supported=False)[0] == "pipeline"


def test_a_mode_the_model_or_backend_cannot_run_is_refused():
    with pytest.raises(SpecError, match="does not offer serverless fine-tuning"):
        choose_mode(parse_finetune("model: m\nmode: serverless"), MAAP_ONLY, jobs_supported=True)
    with pytest.raises(SpecError, match="this backend does not run"):
        choose_mode(parse_finetune("model: m\nmode: job"), MAAS, jobs_supported=False)
    # chosen from the card: a pipeline-only parameter is refused then (no line to name before)
    with pytest.raises(SpecError, match="'warmup_steps' is not a hyperparameter"):
        choose_mode(parse_finetune("model: Phi-4\nparameters: {warmup_steps: 10}"), MAAS, jobs_supported=True)


def test_hyperparameters_are_sent_as_strings():
    spec = parse_finetune("model: m\nmode: job\nparameters: {learning_rate: 2.0e-5, num_train_epochs: 2, "
                          "per_device_train_batch_size: 4}")
    assert job_hyperparameters(spec.parameters) == {"learning_rate": "2e-05", "num_train_epochs": "2",
                                                    "per_device_train_batch_size": "4"}
