"""Bad specs in a real IPython shell: each ends in one UsageError line, and nothing is created."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from tests.shell import run_cell

# Each body runs under a "%%azml_finetune --dry-run" line, so "line N" counts that line too: the
# body's first line is the cell's line 2, as the user sees it.
BAD_FINETUNE = [
    ("modle: Phi-3-mini-4k-instruct", "unknown key 'modle' in the spec; did you mean 'model'?"),
    ("data: {fraction: 0.1}", "the spec has no 'model:'"),
    ('model: ""', "the spec has no 'model:'"),
    ("model: m\nparameters:\n  learnin_rate: 1.0e-4", "line 4: unknown parameter 'learnin_rate'"),
    ("model: m\nparameters:\n  learnin_rate: 1.0e-4", "did you mean 'learning_rate'?"),
    ("model: m\nparameters: {num_train_epochs: -1}", "num_train_epochs must be at least 1 (got -1)"),
    ("model: m\nparameters: {num_train_epochs: three}", "num_train_epochs must be a whole number"),
    ("model: m\nparameters: {num_train_epochs: 2.5}", "num_train_epochs must be a whole number"),
    ("model: m\nparameters: {lr_scheduler_type: cosin}", "Did you mean 'cosine'?"),
    ("model: m\nparameters: {lr_scheduler_type: cosin}", "must be one of linear, cosine, cosine_with_restarts"),
    ("model: m\nparameters: {apply_lora: maybe}", "apply_lora must be true or false (got 'maybe')"),
    ("model: m\nparameters: {learning_rate: fast}", "learning_rate must be a number (got 'fast')"),
    ("model: m\nparameters: {learning_rate: 0}", "learning_rate must be greater than 0"),
    ("model: m\nparameters: {learning_rate: -1.0e-5}", "learning_rate must be greater than 0"),
    ("model: m\nparameters: {per_device_train_batch_size: 0}", "per_device_train_batch_size must be at least 1"),
    ("model: m\nparameters: {lora_dropout: 1.5}", "lora_dropout must be below 1"),
    ("model: m\nparameters: {precision: 8}", "precision must be one of 32, 16"),
    ("model: m\nparameters: {optim: sgd}", "optim must be one of adamw_torch, adafactor"),
    ("model: m\nparameters: {deepspeed_stage: 1}", "deepspeed_stage must be one of 2, 3"),
    ("model: m\nparameters: {train_file_path: x.jsonl}", "is set from the spec's 'data:' section"),
    ("model: m\nparameters: {compute_finetune: c}", "is set from the spec's 'compute:' section"),
    ("model: m\nparameters: {max_seq_length: 0}", "max_seq_length must be at least 1 (or -1 for the model's maximum)"),
    ("model: m\nparameters: {max_steps: -5}", "max_steps must be at least 1 (or -1 for train num_train_epochs)"),
    ("model: m\nparameters: {seed: -3}", "seed must be at least 0"),
    ("model: m\nparameters: {warmup_steps: true}", "warmup_steps must be a whole number"),
    ("model: m\nparameters:\n  num_train_epochs:\n", "line 4: parameters.num_train_epochs is empty"),
    ("model: m\nparameters: [a, b]", "'parameters' must be a mapping"),
    ("model: [unclosed", "(while parsing a flow sequence at line 2, column 8)"),
    ("model: m\n  parameters: {a: 1}\n bad: x", "YAML syntax error in the %%azml_finetune cell at line"),
    ("model: a\nmodel: b", "line 3: key 'model' is written twice (first on line 2)"),
    ("- model: x", "must be a YAML mapping"),
    ("just some text", "must be a YAML mapping"),
    ("# only a comment", "the %%azml_finetune cell is empty"),
    ("model: m\ndata: {fraction: 1.5}", "data.fraction must be a number in (0, 1]"),
    ("model: m\ndata: {fraction: 0.1, rows: 10}", "give data.fraction or data.rows, not both"),
    ("model: m\ndata: {train: /nonexistent/train.jsonl}", "data.train: file not found: /nonexistent/train.jsonl"),
    ("model: m\ndata: {policy: lenient}", "data.policy must be strict or drop"),
    ("model: m\ndata: {train_split: train}", "data.train_split 'train' is not a split of HuggingFaceH4/ultrachat_200k"),
    ("model: m\ndata:\n  sorce: x", "line 4: unknown key 'sorce' in data; did you mean 'source'?"),
    ("model: m\ndata: {test: t.jsonl}", "data.test or data.validation needs data.train too"),
    ("model: m\ncompute: {size: NC24}", "compute.size 'NC24' is not an Azure VM size"),
    ("model: m\ncompute: {max_instances: 0}", "compute.max_instances must be at least 1"),
    ("model: m\ncompute: {name: 1cluster}", "compute.name '1cluster' is not a valid cluster name"),
    ("model: m\ncompute: {min_instances: 3, max_instances: 2}", "compute.min_instances (3) is above max_instances (2)"),
    ("model: m\ncompute: {tier: spot}", "compute.tier must be dedicated or low_priority"),
    ("model: m\ncompute: {sise: Standard_NC6s_v3}", "unknown key 'sise' in compute; did you mean 'size'?"),
    ("model: m\nexperiment: 'bad name!'", "experiment 'bad name!' may only hold letters"),
    ("model: m\ntags: [x]", "'tags' must be a mapping"),
    ("model: m\nparamters: {seed: 1}", "unknown key 'paramters' in the spec; did you mean 'parameters'?"),
]


def _assert_one_line_usage_error(result, expected: str):
    err = result.error_in_exec
    assert isinstance(err, UsageError), f"expected UsageError, got {type(err).__name__}: {err}"
    message = str(err)
    assert "\n" not in message, f"not one line: {message!r}"
    assert expected in message, f"{expected!r} not in {message!r}"


@pytest.mark.parametrize("body,expected", BAD_FINETUNE, ids=[f"{i:02d}" for i in range(len(BAD_FINETUNE))])
def test_bad_finetune_spec(ip, azml_home, body, expected):
    result, out, _ = run_cell(ip, f"%%azml_finetune --dry-run\n{body}\n")
    _assert_one_line_usage_error(result, expected)
    assert "Traceback" not in out
    assert not azml_home.exists(), "a bad spec must not create anything"


def test_at_least_30_distinct_bad_specs():
    assert len({body for body, _ in BAD_FINETUNE}) >= 30


BAD_DEPLOY_CELLS = [
    ("model: m:1\nendpoint: Bad_Name", "endpoint name 'Bad_Name' is not valid on Azure ML"),
    ("model: m:1\nendpoint: ab", "endpoint name 'ab' is not valid on Azure ML: 3-32 characters"),
    ("model: m:1\nendpoint: endpoint-", "not ending with a hyphen"),
    ("model: m:1\nendpoint: " + "a" * 33, "3-32 characters"),
    ("model: m:1\ninstance_count: 0", "instance_count must be at least 1 (got 0)"),
    ("model: m:1\ninstance_type: GPU", "instance_type 'GPU' is not an Azure VM size"),
    ("model: m:1\nrequest_timeout_ms: 200000", "request_timeout_ms is at most 180000"),
    ("model: m:1\ntraffic: 150", "traffic is a percentage, 0 to 100"),
    ("model: m:1\ninstance_cout: 2", "unknown key 'instance_cout' in the deploy spec; did you mean 'instance_count'?"),
    ("endpoint: abc", "the deploy spec has no model"),
    ("model: m:1\ndeployment: 9demo", "deployment name '9demo' is not valid"),
]


@pytest.mark.parametrize("body,expected", BAD_DEPLOY_CELLS, ids=[f"{i:02d}" for i in range(len(BAD_DEPLOY_CELLS))])
def test_bad_deploy_spec(ip, azml_home, body, expected):
    result, out, _ = run_cell(ip, f"%%azml_deploy --dry-run\n{body}\n")
    _assert_one_line_usage_error(result, expected)
    assert not azml_home.exists()


@pytest.mark.parametrize(
    "line,expected",
    [
        ("%azml_deploy m:1 --endpoint 1abc", "endpoint name '1abc' is not valid"),
        ("%azml_deploy m:1 --instance-count zero", "argument --instance-count: invalid int value: 'zero'"),
        ("%azml_deploy m:1 --instance-count 0", "instance_count must be at least 1"),
        ("%azml_chat --temperature hot", "argument --temperature: invalid float value"),
        ("%azml_chat ep --temperature -3", "--temperature must be a finite number, 0 or more (got -3.0)"),
        ("%azml_chat ep --top-p 1.5", "--top-p must be in (0, 1] (got 1.5)"),
        ("%azml_chat ep --max-new-tokens 0", "--max-new-tokens must be at least 1 (got 0)"),
        ("%azml_jobs explode", "argument action: invalid choice: 'explode'"),
        ("%azml_data prepare --fraction", "argument --fraction: expected one argument"),
        ("%azml_connect --credential password", "argument --credential: invalid choice"),
        ("%azml_connect --backend nosuch", "no backend named 'nosuch'"),
        ("%azml_connect --backend azur", "no backend named 'azur'; did you mean 'azure'?"),
        ("%azml_delete", "name an endpoint, --compute NAME, or --all"),
        ('%azml_chat "unclosed', "cannot read the arguments"),
    ],
)
def test_bad_lines(ip, azml_home, line, expected):
    result, _, _ = run_cell(ip, line)
    _assert_one_line_usage_error(result, expected)
    assert not azml_home.exists()


def test_empty_body_with_dry_run_is_refused(ip, azml_home):
    result, _, _ = run_cell(ip, "%%azml_finetune --dry-run\n   \n")
    # an empty body opens the form unless the user asked for a run; --dry-run needs a spec
    _assert_one_line_usage_error(result, "the %%azml_finetune cell is empty")
    assert not azml_home.exists()


@pytest.mark.parametrize("cell,line", [
    ("%%azml_finetune --dry-run\nmodel: m\nparamters: {seed: 1}\n", 3),
    ("%%azml_finetune --dry-run\n\nmodel: m\nparamters: {seed: 1}\n", 4),  # a blank line counts too
    ("%%azml_finetune --dry-run\nmodel: m\nparameters:\n  learnin_rate: 1.0e-4\n", 4),
])
def test_error_line_is_the_line_the_user_sees_in_the_cell(ip, azml_home, cell, line):
    seen = next(n for n, text in enumerate(cell.splitlines(), start=1) if "paramters" in text or "learnin_rate" in text)
    assert seen == line  # the typo's line as the notebook numbers it (the %%azml_finetune line is 1)
    result, _, _ = run_cell(ip, cell)
    _assert_one_line_usage_error(result, f"line {line}: unknown ")


def test_deploy_error_line_is_the_line_the_user_sees_in_the_cell(ip, azml_home):
    result, _, _ = run_cell(ip, "%%azml_deploy --dry-run\nmodel: m:1\ninstance_cout: 2\n")
    _assert_one_line_usage_error(result, "line 3: unknown key 'instance_cout' in the deploy spec")


def test_yaml_syntax_error_line_is_the_line_the_user_sees(ip, azml_home):
    result, _, _ = run_cell(ip, "%%azml_finetune --dry-run\nmodel: m\n  parameters: {a: 1}\n bad: x\n")
    _assert_one_line_usage_error(result, "YAML syntax error in the %%azml_finetune cell at line 3, column")
