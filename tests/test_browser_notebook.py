"""The whole notebook in a real JupyterLab, driven in headless Chromium.

Cells load the extension, connect to the local backend, fine-tune the tiny model for a few steps
with --no-wait (a live job view updated from a background thread) and attach to it (a blocking
view); both end as summaries. Then register, deploy, open the chat box and a fine-tune form; the
test types into the chat box, presses Send (and then Enter), checks the reply appears in the page,
then types a bad and a good value into the form and asks for its YAML. It saves the
notebook and renders it without a kernel (nbconvert) to check the job summary and the chat transcript
are still there. A screenshot and the rendered notebook go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.fixtures_browser import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SAMPLE = Path(__file__).resolve().parents[1] / "azml_magics" / "sample_data"
ENDPOINT = "browser-chat"
FIRST = "Hello from the browser"
SECOND = "And a second question"


def _notebook(home: Path) -> dict:
    import nbformat

    cells = [
        "%load_ext azml_magics\n%config AzmlMagics.poll_interval = 1.0",
        f"%azml_connect --backend local --home {home}",
        "%%azml_finetune --no-wait\n"
        "model: azml-tiny-phi3\n"
        f"data: {{train: {SAMPLE / 'train_sft.jsonl'}, test: {SAMPLE / 'test_sft.jsonl'}}}\n"
        "parameters: {max_steps: 4, logging_steps: 1, evaluation_strategy: steps, eval_steps: 2}\n",
        "%azml_jobs attach",
        "%azml_register",
        f"%azml_deploy --endpoint {ENDPOINT}",
        f"%azml_chat {ENDPOINT} --max-new-tokens 24",
        "%%azml_finetune --form\nmodel: azml-tiny-phi3\nparameters: {num_train_epochs: 2}\n",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _wait_for_file(path: Path, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text()
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def _stop_endpoints(home: Path) -> None:
    from azml_magics.backends.local import endpoints

    if home.exists():
        for endpoint in endpoints.list_endpoints(home):
            endpoints.stop_endpoint(home, endpoint.name)


def test_chat_in_jupyterlab_and_the_saved_notebook_keeps_summary_and_transcript(
        tiny_model_dir, jupyter_lab, chromium_page, tmp_path):
    import nbformat

    home = tmp_path / "azml_home"
    path = jupyter_lab.root / "chat.ipynb"
    nbformat.write(_notebook(home), path)
    page = chromium_page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.goto(jupyter_lab.notebook_url("chat.ipynb"))
        page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=90_000)
        page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " return k && k.status === 'idle'; }", timeout=120_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

        # both live job views (the --no-wait one, updated from its thread, and the attached one)
        # turn into the summary (steps, metrics, chart) when the job ends
        summaries = page.locator(".azml-job-summary")
        page.wait_for_function("document.querySelectorAll('.azml-job-summary').length == 2", timeout=300_000)
        for i in range(2):
            assert "Completed" in summaries.nth(i).inner_text()
            assert summaries.nth(i).locator("img").count() == 1

        chat_input = page.locator(".azml-chat-input input")
        chat_input.wait_for(timeout=300_000)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, errors.all_inner_texts()

        # type and press Send
        chat_input.fill(FIRST)
        send = page.locator(".azml-chat button", has_text="Send")
        send.click()
        replies = page.locator(".azml-chat .azml-chat-assistant")
        page.wait_for_function(
            "() => { const b = [...document.querySelectorAll('.azml-chat button')].find(x => x.textContent.includes('Send'));"
            " return b && !b.disabled && document.querySelectorAll('.azml-chat .azml-chat-assistant').length >= 1; }",
            timeout=120_000,
        )
        assert page.locator(".azml-chat .azml-chat-error").count() == 0, page.locator(".azml-chat").inner_text()
        user_turn = page.locator(".azml-chat .azml-chat-user").first
        assert FIRST in user_turn.inner_text()
        first_reply = replies.first.inner_text().removeprefix("Assistant").strip()
        assert first_reply and first_reply != "…"

        # Enter sends too
        chat_input.fill(SECOND)
        chat_input.press("Enter")
        page.wait_for_function(
            "() => document.querySelectorAll('.azml-chat .azml-chat-assistant').length >= 2 &&"
            " ![...document.querySelectorAll('.azml-chat button')].find(x => x.textContent.includes('Send')).disabled",
            timeout=120_000,
        )
        assert SECOND in page.locator(".azml-chat .azml-chat-user").nth(1).inner_text()

        # the saved copy of the transcript is hidden while the live widget is on the page
        static = page.locator("[class*='azml-chat-static-']")
        assert static.count() == 1 and not static.is_visible()
        page.screenshot(path=str(ARTIFACTS / "browser-chat.png"), full_page=True)

        # the fine-tune form checks as you type, with the spec's own words, and shows its YAML
        rate = page.locator(".azml-field-parameters-learning_rate")
        rate.locator("input").fill("fast")
        rate.get_by_text("parameters.learning_rate must be a number").wait_for(timeout=30_000)
        submit = page.locator(".azml-form button", has_text="Submit")
        assert submit.is_disabled()
        rate.locator("input").fill("0.0001")
        page.wait_for_function(
            "() => !document.querySelector('.azml-field-parameters-learning_rate').textContent.includes('must be')",
            timeout=30_000)
        assert submit.is_enabled()
        page.locator(".azml-form button", has_text="Show YAML").click()
        yaml_box = page.locator(".azml-form textarea")
        page.wait_for_function(
            "() => (document.querySelector('.azml-form textarea') || {}).value?.includes('learning_rate: 0.0001')",
            timeout=30_000)
        assert "num_train_epochs: 2" in yaml_box.input_value()
        rate.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-form.png"))

        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        saved = _wait_for_file(path, SECOND)
    finally:
        _stop_endpoints(home)

    # the saved notebook, rendered without a kernel
    from nbconvert import HTMLExporter

    nb = nbformat.reads(saved, as_version=4)
    html_outputs = [o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", [])]
    job_summary = [h for h in html_outputs if "azml-job-summary" in h]
    assert len(job_summary) == 2 and all("data:image/png;base64," in h for h in job_summary)
    transcript = [h for h in html_outputs if "azml-chat-static-" in h]
    assert len(transcript) == 1
    assert FIRST in transcript[0] and SECOND in transcript[0]
    assert transcript[0].count("azml-chat-assistant") == 2
    rendered, _ = HTMLExporter().from_notebook_node(nb)
    (ARTIFACTS / "browser-notebook.html").write_text(rendered)
    assert FIRST in rendered and "azml-job-summary" in rendered
    # no secret in the saved notebook: the endpoint key never leaves the backend
    key_files = list((home / "endpoints").glob("*key*")) if (home / "endpoints").exists() else []
    for key_file in key_files:
        key = key_file.read_text().strip()
        assert key and key not in saved
    assert not re.search(r"Bearer\s+\S{16,}", saved)
    json.loads(saved)
