"""Structured spec errors: each carries its key's path, and a spec's errors can be collected at once."""

from __future__ import annotations

import pytest

from azml_magics.errors import SpecError
from azml_magics.plan import merge_parameters
from azml_magics.spec import check_deploy, check_finetune, check_finetune_dict, parse_deploy, parse_finetune


@pytest.mark.parametrize("text,path", [
    ("model: m\nparameters: {learning_rate: fast}", "parameters.learning_rate"),
    ("model: m\nparameters: {lerning_rate: 1}", "parameters.lerning_rate"),
    ("model: m\nparameters: {train_file_path: x.jsonl}", "parameters.train_file_path"),
    ("model: m\nparameters: [a, b]", "parameters"),
    ("model: m\ndata: {fraction: 1.5}", "data.fraction"),
    ("model: m\ndata: {rows: 0}", "data.rows"),
    ("model: m\ndata: {sorce: x}", "data.sorce"),
    ("model: m\ndata: {test: t.jsonl}", "data.test"),
    ("model: m\ncompute: {size: NC24}", "compute.size"),
    ("model: m\ncompute: {min_instances: 3, max_instances: 2}", "compute.min_instances"),
    ("model: m\nexperiment: 'bad name!'", "experiment"),
    ("model: m\ntags: [x]", "tags"),
    ("modle: m", "modle"),
    ("data: {fraction: 0.1}", "model"),
    ("model: a\nmodel: b", "model"),
    ("- model: x", None),
    ("model: [unclosed", None),
])
def test_finetune_errors_carry_the_path_of_their_key(text, path):
    with pytest.raises(SpecError) as err:
        parse_finetune(text)
    assert err.value.path == path


@pytest.mark.parametrize("text,path", [
    ("model: m:1\nendpoint: Bad_Name", "endpoint"),
    ("model: m:1\ndeployment: 9demo", "deployment"),
    ("model: m:1\ninstance_type: GPU", "instance_type"),
    ("model: m:1\ninstance_count: 0", "instance_count"),
    ("model: m:1\ntraffic: 150", "traffic"),
    ("endpoint: abc", "model"),
])
def test_deploy_errors_carry_the_path_of_their_key(text, path):
    with pytest.raises(SpecError) as err:
        parse_deploy(text)
    assert err.value.path == path


def test_a_parameter_the_component_lacks_names_its_path():
    with pytest.raises(SpecError) as err:
        merge_parameters({"seed": 1}, component_inputs={"learning_rate"})
    assert err.value.path == "parameters.seed"


def test_check_collects_every_error_with_the_same_words_as_the_first():
    text = (
        "model: m\nmodle: x\ndata: {fraction: 1.5}\ncompute: {size: NC24, tier: spot}\n"
        "parameters:\n  learning_rate: fast\n  num_train_epochs: -1\n"
    )
    checked = check_finetune(text)
    assert checked.spec is None and not checked.ok
    assert [e.path for e in checked.errors] == [
        "modle", "data.fraction", "compute.size", "compute.tier", "parameters.learning_rate",
        "parameters.num_train_epochs",
    ]
    with pytest.raises(SpecError) as first:
        parse_finetune(text)
    assert checked.errors[0].message == first.value.message  # raising stays the first error, word for word
    assert checked.errors[-1].message == "line 7: parameters.num_train_epochs must be at least 1 (got -1)."


def test_check_of_a_good_spec_returns_it():
    checked = check_finetune("model: Phi-3-mini-4k-instruct\nparameters: {num_train_epochs: 2}")
    assert checked.ok and checked.spec == parse_finetune("model: Phi-3-mini-4k-instruct\nparameters: {num_train_epochs: 2}")
    assert check_finetune_dict({"model": "m"}).spec.model == "m"
    assert check_deploy("model: m:1").spec.model == "m:1"


def test_text_level_problems_are_one_collected_error():
    assert [e.path for e in check_finetune("").errors] == [None]
    assert len(check_finetune("model: [unclosed").errors) == 1
    assert [e.path for e in check_deploy("model: m:1\nendpoint: ab\ntraffic: 150").errors] == ["endpoint", "traffic"]


def test_first_line_shifts_every_line_number():
    with pytest.raises(SpecError, match=r"^line 4: unknown parameter"):
        parse_finetune("model: m\nparameters:\n  learnin_rate: 1", first_line=2)
    with pytest.raises(SpecError, match=r"line 3: key 'model' is written twice \(first on line 2\)"):
        parse_finetune("model: a\nmodel: b", first_line=2)
    with pytest.raises(SpecError, match=r"at line 3, column 1: .* at line 2, column 8\)"):
        parse_finetune("model: [unclosed\n", first_line=2)
    with pytest.raises(SpecError, match=r"^line 5: data.fraction"):  # the body's blank lines count
        parse_finetune("\n\nmodel: m\ndata: {fraction: 2}", first_line=2)
    with pytest.raises(SpecError, match=r"^line 3: traffic"):
        parse_deploy("model: m:1\ntraffic: 150", first_line=2)
