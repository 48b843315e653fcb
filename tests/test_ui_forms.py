"""The forms, headless: defaults, checks as you type (the spec's own rules), YAML round trip, submit."""

from __future__ import annotations

import pytest

from azml_magics.errors import SpecError
from azml_magics.pipeline_inputs import MAIN_PARAMETERS, user_settable
from azml_magics.spec import check_parameters, finetune_from_dict, parse_finetune
from azml_magics.ui.forms import ConnectForm, DeployForm, FinetuneForm, _parse_number, connect_form, deploy_form, finetune_form
from azml_magics.ui.jobview import JobView

SAMPLE_TRAIN = "azml_magics/sample_data/train_sft.jsonl"


def _set(form, path, value):
    form.fields[path].widget.value = value


def test_empty_form_holds_the_yaml_defaults_and_every_pipeline_input(tmp_path):
    from azml_magics.api import Session

    form = finetune_form(Session(home=tmp_path), "")
    assert form.spec == parse_finetune("model: Phi-3-mini-4k-instruct")
    assert not form.submit_button.disabled
    params = {p.split(".", 1)[1] for p in form.fields if p.startswith("parameters.")}
    assert params == set(user_settable())
    assert form.fields["parameters.learning_rate"].widget.value == "2e-05"
    assert form.fields["parameters.lr_scheduler_type"].widget.value == "linear"
    assert form.fields["parameters.apply_lora"].widget.value is False
    main = form.widget.children[1].children
    assert form.fields[f"parameters.{MAIN_PARAMETERS[0]}"].row in main
    advanced = form.advanced.children[0].children
    assert form.fields["parameters.adam_beta2"].row in advanced


@pytest.mark.parametrize("name,text", [
    ("learning_rate", "abc"), ("learning_rate", "0"), ("learning_rate", "3"), ("num_train_epochs", "1.5"),
    ("num_train_epochs", "0"), ("lora_dropout", "1.2"), ("max_seq_length", "0"), ("warmup_steps", "-3"),
])
def test_parameter_errors_appear_next_to_the_field_with_the_specs_words(scripted, name, text):
    session, _ = scripted
    form = FinetuneForm(session, "")
    _set(form, f"parameters.{name}", text)
    with pytest.raises(SpecError) as expected:
        check_parameters({name: _parse_number(text)})  # the value the form read
    assert form.errors == {f"parameters.{name}": expected.value.message}
    assert expected.value.message in form.fields[f"parameters.{name}"].error.value.replace("&#x27;", "'")
    assert form.submit_button.disabled and form.spec is None
    _set(form, f"parameters.{name}", "0.5" if name == "lora_dropout" else "1")
    assert form.errors == {} and not form.submit_button.disabled


@pytest.mark.parametrize("path,value,needle", [
    ("data.fraction", "1.5", "data.fraction must be a number in (0, 1]"),
    ("data.rows", "0", "data.rows must be at least 1"),
    ("data.train_split", "validation", None),
    ("data.train", "/no/such/file.jsonl", "data.train: file not found"),
    ("compute.name", "1bad", "compute.name '1bad' is not a valid cluster name"),
    ("compute.max_instances", "0", "compute.max_instances must be at least 1"),
    ("compute.min_instances", "5", "compute.min_instances (5) is above max_instances (2)"),
    ("experiment", "has space", "may only hold letters"),
    ("model", "", "name a model"),
])
def test_section_errors_are_placed_at_their_field(scripted, path, value, needle):
    session, _ = scripted
    form = FinetuneForm(session, "")
    widget = form.fields[path].widget
    if hasattr(widget, "options") and value not in widget.options:
        widget.options = tuple(widget.options) + (value,)
    _set(form, path, value)
    assert path in form.errors, form.errors
    if needle:
        assert needle in form.errors[path]
    assert form.submit_button.disabled


def test_rows_replace_the_fraction(scripted):
    session, _ = scripted
    form = FinetuneForm(session, "")
    _set(form, "data.rows", "200")
    assert form.fields["data.fraction"].widget.disabled
    assert form.spec.data.rows == 200 and form.spec.data.fraction is None


def test_yaml_round_trip_through_show_yaml_and_load(scripted):
    session, _ = scripted
    form = FinetuneForm(session, "")
    _set(form, "model", "Phi-3.5-mini-instruct")
    _set(form, "data.train", SAMPLE_TRAIN)
    _set(form, "compute.size", "Standard_NC48ads_A100_v4")
    _set(form, "compute.max_instances", "4")
    _set(form, "parameters.num_train_epochs", "3")
    _set(form, "parameters.learning_rate", "5e-6")  # the model default: kept out of the spec
    _set(form, "parameters.lr_scheduler_type", "cosine")
    _set(form, "parameters.apply_lora", False)  # differs from the model default (true)
    _set(form, "parameters.adam_beta2", "0.98")
    _set(form, "tags", "team=nlp, run=1")
    _set(form, "experiment", "exp-1")
    spec = form.validate()
    assert spec is not None, form.errors
    assert spec.parameters == {"num_train_epochs": 3, "lr_scheduler_type": "cosine", "apply_lora": "false",
                               "adam_beta2": 0.98}
    text = form.show_yaml()
    assert text == spec.to_yaml() and form.yaml_box.layout.display == "flex"
    assert parse_finetune(text) == spec  # the cell magic reads the same spec
    again = FinetuneForm(session, text)
    assert again.spec == spec and again.errors == {}
    # and through the form's own YAML box
    blank = FinetuneForm(session, "")
    blank.yaml_text.value = text
    blank.load_button.click()
    assert blank.spec == spec


def test_yaml_that_names_a_default_keeps_it(scripted):
    session, _ = scripted
    text = "model: Phi-3-mini-4k-instruct\nparameters:\n  lr_scheduler_type: linear\n  seed: 42\n"
    form = FinetuneForm(session, text)
    assert form.spec.parameters == {"lr_scheduler_type": "linear", "seed": 42}


def test_loading_yaml_with_unknown_keys_reports_them_and_blocks_submit(scripted):
    session, _ = scripted
    form = FinetuneForm(session, "modle: x\nmodel: Phi-3-mini-4k-instruct\nparameters: {lerning_rate: 0.1}\n")
    messages = " ".join(form.errors.values())
    assert "unknown key 'modle' in the spec; did you mean 'model'?" in messages
    assert "did you mean 'learning_rate'?" in messages
    assert form.submit_button.disabled
    assert "did you mean" in form.status.value


def test_broken_values_from_yaml_show_at_their_fields(scripted):
    session, _ = scripted
    form = FinetuneForm(session, "model: Phi-3-mini-4k-instruct\nparameters: {learning_rate: fast}\n")
    assert form.fields["parameters.learning_rate"].widget.value == "fast"
    assert "parameters.learning_rate must be a number" in form.errors["parameters.learning_rate"]


def test_yaml_that_does_not_parse_is_one_line(scripted):
    session, _ = scripted
    form = FinetuneForm(session, "")
    form.load_yaml("model: [unclosed")
    assert "does not parse at line" in form.status.value


def test_allow_list_first_and_model_defaults_as_baseline(scripted):
    session, backend = scripted
    form = FinetuneForm(session, "")
    size = form.fields["compute.size"].widget
    assert list(size.options[:2]) == ["Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4"]
    assert "fine-tune VM sizes" in form.model_note.value
    # model defaults fill the fields and stay out of the spec
    assert form.fields["parameters.apply_lora"].widget.value is True
    assert float(form.fields["parameters.learning_rate"].widget.value) == 5e-6
    assert form.spec.parameters == {}
    _set(form, "compute.size", "Standard_NC6s_v3")
    assert "not in Phi-3-mini-4k-instruct's fine-tune allow list" in form.errors["compute.size"]
    _set(form, "model", "no-such-model")
    assert "no model named no-such-model" in form.model_note.value


def test_submit_plans_submits_and_shows_the_job_view(scripted):
    session, backend = scripted
    form = FinetuneForm(session, f"model: Phi-3-mini-4k-instruct\ndata: {{train: {SAMPLE_TRAIN}}}\n")
    form.background = False
    _set(form, "parameters.num_train_epochs", "2")
    job = form.submit()
    assert job is not None, form.status.value
    assert isinstance(form.view, JobView) and form.view.finished
    spec, values = backend.submitted[0]
    assert spec == form.spec and values["num_train_epochs"] == 2 and values["apply_lora"] == "true"
    assert session.state.get("jobs", job.name) is not None
    assert "azml-job-summary" in form.result.value and "Completed" in form.result.value


def test_submit_shows_a_plan_error_and_creates_nothing(scripted):
    session, backend = scripted
    backend.archived = True
    form = FinetuneForm(session, f"model: Phi-3-mini-4k-instruct\ndata: {{train: {SAMPLE_TRAIN}}}\n")
    assert form.submit() is None
    assert "archived" in form.status.value
    assert backend.submitted == [] and not form.submit_button.disabled


def test_check_shows_the_effective_parameters(scripted):
    session, backend = scripted
    form = FinetuneForm(session, f"model: Phi-3-mini-4k-instruct\ndata: {{train: {SAMPLE_TRAIN}}}\n")
    form.check_button.click()
    assert "Effective parameters" in form.result.value and "model default" in form.result.value
    assert backend.submitted == []


def test_connect_form_checks_azure_settings_and_connects_local(tmp_path):
    from azml_magics.api import Session

    session = Session(home=tmp_path / "h")
    form = connect_form(session)
    assert form.azure_box.layout.display == "none"
    _set(form, "backend", "azure")
    assert form.azure_box.layout.display == "flex"
    _set(form, "subscription_id", "not-a-guid")
    assert "GUID" in form.errors["subscription_id"]
    assert "together" in form.errors["resource_group"]
    _set(form, "subscription_id", "")
    _set(form, "config_path", str(tmp_path / "missing.json"))
    assert "file not found" in form.errors["config_path"]
    assert form.connect_button.disabled
    _set(form, "config_path", "")
    _set(form, "backend", "local")
    _set(form, "home", str(tmp_path / "local-home"))
    assert form.errors == {}
    ws = form.connect()
    assert ws is not None, form.status.value
    assert session.connected and session.workspace.backend == "local"
    assert "Connected" in form.result.value


def test_deploy_form_checks_names_and_deploys(scripted):
    session, backend = scripted
    session.state.add("models", "ft-model:3", id="azureml:ft-model:3", job="job-1")
    form = deploy_form(session)
    assert form.fields["model"].widget.value == "ft-model:3"
    _set(form, "endpoint", "9-bad")
    assert "is not valid on Azure ML" in form.errors["endpoint"]
    _set(form, "request_timeout_ms", "999999")
    assert "at most 180000" in form.errors["request_timeout_ms"]
    assert form.deploy_button.disabled
    _set(form, "endpoint", "my-endpoint")
    _set(form, "request_timeout_ms", "60000")
    _set(form, "instance_type", "Standard_NC24ads_A100_v4")
    assert form.errors == {}
    form.deploy_button.click()
    endpoint = form.wait(10)
    assert endpoint is not None and endpoint.name == "my-endpoint"
    assert ("deploy", "ft-model", "my-endpoint", "Standard_NC24ads_A100_v4") in backend.calls
    assert "%azml_chat my-endpoint" in form.result.value
    assert session.state.get("endpoints", "my-endpoint") is not None


def test_deploy_form_shows_a_backend_error(scripted):
    session, backend = scripted
    form = DeployForm(session, threaded=False)
    _set(form, "model", "ft-model:1")
    _set(form, "endpoint", "ok-endpoint")

    def refuse(model, spec):
        from azml_magics.errors import RemoteError

        raise RemoteError("quota exceeded for Standard_NC6s_v3 in eastus; ask for more or pick another size.")

    backend.deploy = refuse
    assert form.deploy() is None
    assert "quota exceeded" in form.status.value and not form.deploy_button.disabled


def test_magics_show_the_forms(scripted, ip):
    from tests.fixtures_core import run_cell

    session, _ = scripted
    ip.azml.session.__dict__.update(session.__dict__)
    for cell in ("%%azml_finetune --form\nmodel: Phi-3.5-mini-instruct\n", "%%azml_finetune\n \n",
                 "%azml_connect --form", "%azml_deploy --form"):
        result, _out, outputs = run_cell(ip, cell)
        assert result.success, (cell, result.error_in_exec)
        assert any("application/vnd.jupyter.widget-view+json" in o.data for o in outputs), cell


def test_form_classes_are_what_the_factories_return(scripted):
    session, _ = scripted
    assert isinstance(finetune_form(session, None), FinetuneForm)
    assert isinstance(connect_form(session), ConnectForm)
    assert isinstance(deploy_form(session), DeployForm)
    assert finetune_from_dict({"model": "m"}) == FinetuneForm(session, "model: m").spec
