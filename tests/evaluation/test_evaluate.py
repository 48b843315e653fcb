"""Base against fine-tuned on the bundled sample, through the API and the magic, with the MLflow run read back."""

from __future__ import annotations

import json
import math

import pytest
from IPython.core.error import UsageError

from azml_magics.scoring import GenerationParams
from tests.paths import SAMPLE
from tests.shell import run_cell

pytestmark = pytest.mark.slow
SHORT = GenerationParams(max_new_tokens=40, temperature=0.0, do_sample=False)


@pytest.fixture(scope="module")
def result(tuned):
    s, _ = tuned
    return s.evaluate(data=SAMPLE, n=12, seed=3, params=SHORT, progress=False)


def test_the_fine_tuned_model_beats_its_base_on_loss_and_rouge_l(tuned, result):
    _, ref = tuned
    base, tuned_label = result.candidates
    assert base == "base azml-tiny-phi3" and tuned_label == f"{ref.name}:{ref.version}"
    m = result.metrics
    assert m["loss"][tuned_label] < m["loss"][base]
    assert m["perplexity"][tuned_label] == pytest.approx(math.exp(m["loss"][tuned_label]))
    assert m["rougeL"][tuned_label] > m["rougeL"][base]
    assert result.delta("rougeL") == pytest.approx(m["rougeL"][tuned_label] - m["rougeL"][base])
    assert result.ahead("loss") == tuned_label and result.ahead("rougeL") == tuned_label
    assert len(result.rows) == 12 and all(set(r.replies) == {base, tuned_label} for r in result.rows)
    # the per-row scores are rouge-score's own, and the summary is their mean
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    row = result.rows[0]
    assert row.rougeL[tuned_label] == pytest.approx(scorer.score(row.reference, row.replies[tuned_label])["rougeL"].fmeasure)
    assert m["rougeL"][tuned_label] == pytest.approx(sum(r.rougeL[tuned_label] for r in result.rows) / 12)
    assert 0 <= m["stop_rate"][tuned_label] <= 1 and m["tokens_per_s"][tuned_label] > 0


def test_the_same_seed_picks_the_same_rows_and_another_seed_others(tuned, result):
    from azml_magics.evaluation import read_rows

    again, _ = read_rows(SAMPLE / "test_gen.jsonl", 12, 3)
    other, _ = read_rows(SAMPLE / "test_gen.jsonl", 12, 4)
    assert [r.index for r in again] == [r.index for r in result.rows] != [r.index for r in other]


def test_the_mlflow_run_holds_the_metrics_and_the_table_linked_to_job_and_model(tuned, result):
    s, ref = tuned
    from mlflow.tracking import MlflowClient

    uri = s.workspace.details["mlflow_tracking_uri"]
    mc = MlflowClient(uri, registry_uri=uri)
    run = mc.get_run(result.run_id)
    key = {c: c.replace(" ", "_").replace(":", "_") for c in result.candidates}
    for c in result.candidates:
        assert run.data.metrics[f"{key[c]}.rougeL"] == pytest.approx(result.metrics["rougeL"][c])
        assert run.data.metrics[f"{key[c]}.loss"] == pytest.approx(result.metrics["loss"][c])
    assert run.data.metrics["delta.loss"] < 0
    assert run.data.tags["azml.kind"] == "evaluation" and run.data.tags["azml.job"] == ref.job
    assert run.data.tags["azml.model"] == f"{ref.name}:{ref.version}"
    training_run = mc.get_model_version(ref.name, ref.id.rsplit("/", 1)[1]).run_id
    assert run.data.tags["azml.job_run_id"] == training_run
    assert run.info.experiment_id == mc.get_run(training_run).info.experiment_id
    assert mc.get_model_version(ref.name, ref.id.rsplit("/", 1)[1]).tags["azml.eval_run"] == result.run_id
    table = json.loads(open(mc.download_artifacts(result.run_id, "eval_table.json")).read())
    columns = table["columns"]
    assert len(table["data"]) == 12 and "reference" in columns
    col = columns.index(f"rougeL[{result.candidates[1]}]")
    assert [r[col] for r in table["data"]] == pytest.approx([r.rougeL[result.candidates[1]] for r in result.rows])


def test_the_result_reads_in_a_saved_notebook_examples_largest_difference_first(result):
    html, text = result.html(), str(result)
    for c in result.candidates:
        assert c in html and c in text
    assert "delta" in html and "<table>" in html and "Examples" in text
    diffs = [abs(r.rougeL[result.candidates[1]] - r.rougeL[result.candidates[0]]) for r in result.sorted_rows()]
    assert diffs == sorted(diffs, reverse=True) and diffs[0] > 0
    assert [r.index for r in result.sorted_rows("row")] == sorted(r.index for r in result.rows)
    shown = result.examples(3)
    assert len(shown.rows) == 3 and shown.rows[0][0] == result.sorted_rows()[0].index


def test_the_magic_shows_the_comparison_and_refuses_bad_input_in_one_line(ip, tuned):
    s, _ = tuned
    run_cell(ip, f"%azml_connect --backend local --home {s.home}")
    res, out, outputs = run_cell(ip, f"%azml_eval --data {SAMPLE} -n 3 --max-new-tokens 8 --no-loss --no-log --examples 2")
    assert res.error_in_exec is None, out
    html = "".join(o.data.get("text/html", "") for o in outputs)
    assert "base azml-tiny-phi3" in html and "delta" in html and "rougeL" in html
    for line, expected in [("%azml_eval base", "at least two candidates"),
                           ("%azml_eval --data /nowhere/x.jsonl", "no evaluation data"),
                           (f"%azml_eval --data {SAMPLE} -n 0", "at least 1 row"),
                           (f"%azml_eval --data {SAMPLE} --top-p 2", "--top-p"),
                           ("%azml_eval base nothing-called-this", "nothing-called-this")]:
        res, out, _ = run_cell(ip, line)
        err = res.error_in_exec
        assert isinstance(err, UsageError) and "\n" not in str(err) and expected in str(err), (line, err, out)
    res, out, _ = run_cell(ip, "%azml_eval --show-judge-prompt")
    assert "{answer_a}" in out and res.error_in_exec is None


def test_ctrl_c_keeps_the_rows_already_answered(tuned):
    """A real SIGINT to this process while the third request is in flight: two rows are kept."""
    import os
    import signal

    s, _ = tuned
    endpoint = s.deploy({"model": "last", "endpoint": "eval-ctrl-c"})
    from azml_magics.evaluation import generation, read_rows

    rows, _ = read_rows(SAMPLE / "test_gen.jsonl", 6, 0)
    calls = []

    def invoke(request):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return s.invoke(endpoint.name, request)

    got = generation.through_endpoint(invoke, [r.prompt for r in rows], SHORT, batch_size=1, progress=False)
    assert got.interrupted and 2 <= len(got.replies) < 6
    assert all(r.text for r in got.replies) and all(r.finish_reason in ("stop", "length") for r in got.replies)
    s.delete(endpoint.name)
