"""The forms, headless: defaults, checks as you type (the spec's own rules), YAML round trip, submit."""

from __future__ import annotations

import pytest

from azml_magics.data import sample_dir
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
    # the local backend (the default) is asked about the model: offline, the hub model is not available,
    # so the form says so at the field and Submit stays off
    assert "azml-tiny-phi3" in form.errors["model"] and form.spec is None and form.submit_button.disabled
    params = {p.split(".", 1)[1] for p in form.fields if p.startswith("parameters.")}
    assert params == set(user_settable())
    assert form.fields["parameters.learning_rate"].widget.value == "2e-05"
    assert form.fields["parameters.lr_scheduler_type"].widget.value == "linear"
    assert form.fields["parameters.apply_lora"].widget.value is False
    main = form.widget.children[1].children
    assert form.fields[f"parameters.{MAIN_PARAMETERS[0]}"].row in main
    advanced = form.advanced.children[0].children
    assert form.fields["parameters.adam_beta2"].row in advanced
    form.fields["model"].widget.value = "azml-tiny-phi3"
    # local and nothing prepared: the bundled sample, all of it (not the hub at 5%)
    assert form.spec == parse_finetune(f"model: azml-tiny-phi3\ndata: {{source: {sample_dir()}, fraction: 1.0}}")
    assert "bundled sample" in form.data_note.value
    assert not form.submit_button.disabled and "model" not in form.errors


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
    assert "YAML syntax error in the YAML text at line 1" in form.status.value


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
    from tests.shell import run_cell

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


def test_every_wrong_field_is_marked_at_once(scripted):
    session, _ = scripted
    form = FinetuneForm(session, "")
    _set(form, "data.fraction", "1.5")
    _set(form, "compute.name", "1bad")
    _set(form, "parameters.learning_rate", "fast")
    _set(form, "experiment", "has space")
    assert set(form.errors) == {"data.fraction", "compute.name", "parameters.learning_rate", "experiment"}
    for path, message in form.errors.items():
        assert path.split(".")[-1] in message and form.fields[path].error.value  # shown at its own field
    assert "4 field(s) to fix" in form.status.value


def test_deploy_form_marks_every_wrong_field_at_once(scripted):
    session, _ = scripted
    form = DeployForm(session, threaded=False)
    _set(form, "endpoint", "9-bad")
    _set(form, "deployment", "9demo")
    _set(form, "instance_count", "0")
    assert set(form.errors) == {"endpoint", "deployment", "instance_count"}
    assert form.deploy_button.disabled


def test_a_cell_loaded_into_the_form_names_the_cells_lines(scripted, ip):
    from tests.shell import run_cell

    session, _ = scripted
    form = finetune_form(session, "model: Phi-3-mini-4k-instruct\nmodle: x\n", first_line=2)
    assert "line 3: unknown key 'modle'" in " ".join(form.errors.values())
    form.load_yaml("model: [unclosed", first_line=2)
    assert "YAML syntax error in the YAML text at line 2" in form.status.value
    ip.azml.session.__dict__.update(session.__dict__)
    result, _out, outputs = run_cell(ip, "%%azml_finetune --form\nmodel: Phi-3-mini-4k-instruct\nmodle: x\n")
    assert result.success, result.error_in_exec


def test_unknown_model_keeps_submit_disabled(scripted):
    session, _backend = scripted
    form = finetune_form(session, "model: no-such-model\ncompute: {size: Standard_NC24ads_A100_v4}\n")
    assert form.spec is None and form.submit_button.disabled and form.check_button.disabled
    assert "no model named no-such-model" in form.errors["model"]
    assert "no model named no-such-model" in form.fields["model"].error.value
    form.fields["model"].widget.value = "Phi-3-mini-4k-instruct"
    assert form.spec is not None and not form.submit_button.disabled


def test_local_form_has_no_azure_compute_block(tmp_path):
    from azml_magics.api import Session

    form = finetune_form(Session(home=tmp_path), "model: azml-tiny-phi3\n")
    rows = list(form.widget.children[1].children) + list(form.advanced.children[0].children)
    assert all(form.fields[p].row not in rows for p in form.fields if p.startswith("compute."))
    assert not any("Compute (Azure)" in getattr(w, "value", "") for w in rows)


def test_azure_like_form_keeps_the_compute_block(scripted):
    session, _backend = scripted
    form = finetune_form(session, "")
    assert form.fields["compute.size"].row in form.widget.children[1].children


def test_lora_fields_are_inactive_while_lora_is_off(scripted):
    session, _backend = scripted
    form = finetune_form(session, "model: Phi-3-mini-4k-instruct\ncompute: {size: Standard_NC24ads_A100_v4}\n"
                                  "parameters: {apply_lora: 'false'}\n")
    assert form.fields["parameters.lora_r"].widget.disabled and form.fields["parameters.lora_alpha"].widget.disabled
    form.fields["parameters.apply_lora"].widget.value = True
    assert not form.fields["parameters.lora_r"].widget.disabled


def test_form_results_are_mirrored_in_a_plain_output_that_survives_saving(scripted, ip):
    """The check table and the job view land in an ordinary display output beside the widget."""
    from IPython.utils.capture import capture_output

    session, _backend = scripted
    form = finetune_form(session, "model: Phi-3-mini-4k-instruct\ncompute: {size: Standard_NC24ads_A100_v4}\n"
                                  f"data: {{train: {sample_dir()}/train_sft.jsonl}}\n")
    form.background = False
    with capture_output() as cap:
        form._ipython_display_()
        form.check()
        form.submit()
    record_id = next(o.transient["display_id"] for o in cap.outputs
                     if o.transient and "azml-form-record" in o.data.get("text/html", ""))
    mine = [o for o in cap.outputs if o.transient and o.transient["display_id"] == record_id]
    assert any("learning_rate" in o.data["text/html"] for o in mine)  # the effective-parameters table
    last = mine[-1].data
    assert "azml-job-summary" in last["text/html"] and "application/vnd.jupyter.widget-view+json" not in last
    assert "Completed" in last["text/plain"]


def _record_outputs(cap):
    record_id = next(o.transient["display_id"] for o in cap.outputs
                     if o.transient and "azml-form-record" in o.data.get("text/html", ""))
    return [o.data for o in cap.outputs if o.transient and o.transient["display_id"] == record_id]


def test_deploy_and_connect_results_are_mirrored_in_the_saved_output(scripted, ip, tmp_path):
    from IPython.utils.capture import capture_output

    from azml_magics.api import Session

    session, _backend = scripted
    session.state.add("models", "ft-model:3", id="azureml:ft-model:3", job="job-1")
    form = DeployForm(session, threaded=False)
    _set(form, "endpoint", "saved-endpoint")
    with capture_output() as cap:
        form._ipython_display_()
        form.deploy()
    first, last = _record_outputs(cap)[0], _record_outputs(cap)[-1]
    assert "nothing submitted" in first["text/plain"]
    assert "Deployed" in last["text/html"] and "%azml_chat saved-endpoint" in last["text/plain"]
    assert WIDGET_MIME not in last
    # the twin hides itself next to the live widget, and hides the dead widget once there is none
    assert f".jp-OutputArea:has(.{form.live_class}) .azml-form-record" in last["text/html"]
    assert form.live_class in form.widget._dom_classes

    cform = ConnectForm(Session(home=tmp_path / "c"))
    _set(cform, "home", str(tmp_path / "c"))
    with capture_output() as cap:
        cform._ipython_display_()
        cform.connect()
    assert "Connected" in _record_outputs(cap)[-1]["text/html"]


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_local_form_starts_from_the_last_prepared_folder_all_of_it(tmp_path, monkeypatch):
    from azml_magics.api import Session

    monkeypatch.chdir(tmp_path)
    session = Session(home=tmp_path / "home")
    prepared = session.prepare_data(str(sample_dir()), out=str(tmp_path / "mine"), fraction=1.0)
    assert session.last_prepared()[0] == (tmp_path / "mine").resolve()
    form = finetune_form(session, "model: azml-tiny-phi3\n")
    assert form.spec is not None, form.errors
    assert form.spec.data.source == str((tmp_path / "mine").resolve()) and form.spec.data.fraction == 1.0
    assert f"train_sft {prepared.rows['train_sft']}" in form.data_note.value
    # a cell that names its data keeps it
    named = finetune_form(session, "model: azml-tiny-phi3\ndata: {source: elsewhere, fraction: 0.5}\n")
    assert named.spec.data.source == "elsewhere" and named.spec.data.fraction == 0.5


def test_default_data_folder_is_found_without_a_record(tmp_path, monkeypatch):
    from azml_magics.api import Session
    from azml_magics.defaults import DATA_FOLDER

    monkeypatch.chdir(tmp_path)
    session = Session(home=tmp_path / "home")
    assert session.last_prepared() is None
    (tmp_path / DATA_FOLDER).mkdir()
    (tmp_path / DATA_FOLDER / "train_sft.jsonl").write_text((sample_dir() / "train_sft.jsonl").read_text())
    assert session.last_prepared() == ((tmp_path / DATA_FOLDER).resolve(), {})


def test_presets_fill_fields_the_user_can_still_change(scripted):
    session, _backend = scripted
    form = finetune_form(session, "model: Phi-3-mini-4k-instruct\ncompute: {size: Standard_NC24ads_A100_v4}\n")
    form.preset_picker.value = "smoke test"
    assert form.spec is not None, form.errors
    assert form.spec.data.rows == 16 and form.spec.parameters["max_steps"] == 5
    assert form._param_value("apply_lora") == "true" and not form.fields["parameters.lora_r"].widget.disabled
    assert "smoke test" in form.status.value
    form.preset_picker.value = "full fine-tune"
    assert form.spec.data.rows is None and "max_steps" not in form.spec.parameters
    assert form.fields["parameters.apply_lora"].widget.value is False
    assert form.fields["parameters.lora_r"].widget.disabled
    form.preset_picker.value = "LoRA"
    assert form._param_value("apply_lora") == "true" and form._param_value("lora_alpha") == 16
    form.fields["parameters.lora_r"].widget.value = "4"
    assert form.spec.parameters["lora_r"] == 4


def test_insert_as_cell_link_carries_the_forms_yaml(scripted):
    import html
    import json
    import re

    session, _backend = scripted
    form = finetune_form(session, "model: Phi-3-mini-4k-instruct\ncompute: {size: Standard_NC24ads_A100_v4}\n"
                                  "parameters: {learning_rate: 0.0001}\n")
    link = form.insert_link.value
    assert "data-commandlinker-command='apputils:run-all-enabled'" in link
    args = json.loads(html.unescape(re.search(r"data-commandlinker-args='([^']*)'", link).group(1)))
    assert args["commands"] == ["notebook:insert-cell-below", "notebook:replace-selection"]
    cell = args["args"]["text"]
    assert cell.startswith("%%azml_finetune\n")
    assert parse_finetune(cell.split("\n", 1)[1]) == form.spec  # the cell runs the same spec
    form.fields["parameters.learning_rate"].widget.value = "fast"
    assert "disabled" in form.insert_link.value and "commandlinker" not in form.insert_link.value


def test_mode_and_queue_tier_round_trip_through_the_form(scripted):
    session, _ = scripted
    text = "model: Phi-3-mini-4k-instruct\nmode: job\ncompute: {size: Standard_NC24ads_A100_v4, job_tier: spot}\n"
    form = FinetuneForm(session, text)
    raw = form.to_dict()
    assert raw["mode"] == "job" and raw["compute"]["job_tier"] == "spot"
    assert form.spec.mode == "job" and form.spec.compute.job_tier == "Spot"
    form.fields["mode"].widget.value = "serverless"  # serverless takes no compute: the field says so
    form.validate()
    assert "runs on no compute" in " ".join(form.errors.values()) and form.submit_button.disabled
    assert "mode" not in FinetuneForm(session, "model: Phi-3-mini-4k-instruct\n").to_dict()  # empty: the card decides


def test_the_deploy_form_offers_the_engine_on_a_local_session_only(scripted, tmp_path):
    from azml_magics.api import Session
    from azml_magics.spec_local import ENGINES

    session = Session(home=tmp_path / "home")
    session.connect("local", home=str(tmp_path / "home"))
    form = DeployForm(session, threaded=False)
    assert form.fields["engine"].widget.options == ENGINES and form.to_dict()["engine"] == "auto"
    _set(form, "engine", "vllm")
    assert form.validate().engine == "vllm"  # whether it can run here is the backend's to say, at deploy
    azure_like, _ = scripted
    assert "engine" not in DeployForm(azure_like, threaded=False).fields
