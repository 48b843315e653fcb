"""The whole notebook in a real JupyterLab, driven in headless Chromium.

Cells load the extension, connect to the local backend, prepare the bundled sample, fine-tune the
tiny model in a blocking view that the test interrupts (Ctrl-C detaches; the job goes on), re-attach
(the detached view is replaced by a pointer, the new one ends as the summary), register, deploy, chat
(type, Send, Enter) and walk the fine-tune form: the last prepared folder as its data, an unknown
model and a bad value keep Submit off, a preset, insert as a %%azml_finetune cell, submit. A second
notebook runs %azml_status in a fresh kernel. Then every kernel is shut down and both saved notebooks
are reopened with no kernel, in the light and the dark theme: the results are there and no widget
error shows. Screenshots (light and dark) and the nbconvert rendering go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest


from tests.paths import ARTIFACTS, SAMPLE

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ENDPOINT = "browser-chat"
FIRST = "Hello from the browser"
# the detached job's optimizer steps: 60 finished in 3 s on a quiet machine once the fused AdamW came in,
# before the page showed one running step; 300 take about 15 s there, a minute or two under load
WALK_STEPS = 300
SECOND = "And a second question"


def _notebook(home: Path, prepared: Path) -> dict:
    cells = [
        "%load_ext azml_magics\n%config AzmlMagics.poll_interval = 1.0",
        f"%azml_connect --backend local --home {home}",
        f"%azml_data prepare --sample --out {prepared} --fraction 1.0",
        "%%azml_finetune\n"  # blocking: the test interrupts it (Ctrl-C detaches; the job goes on)
        "model: azml-tiny-phi3\n"
        f"data: {{train: {SAMPLE / 'train_sft.jsonl'}, test: {SAMPLE / 'test_sft.jsonl'}}}\n"
        # long enough to be caught running on a quiet machine (about 0.2 s a step), short enough under load
        f"parameters: {{max_steps: {WALK_STEPS}, logging_steps: 1, evaluation_strategy: steps, eval_steps: 150}}\n",
        "%azml_jobs attach",
        "%azml_register",
        f"%azml_deploy --endpoint {ENDPOINT}",
        f"%azml_chat {ENDPOINT} --max-new-tokens 24",
        "%%azml_finetune --form\nmodel: azml-tiny-phi3\nparameters: {num_train_epochs: 2}\n",
    ]
    return _as_notebook(cells)


def _as_notebook(cells: list[str]):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


FORM, DETACHED, ATTACHED, DEPLOY = 8, 3, 4, 6
# the wait bar of %azml_deploy (the endpoint's server loads the model for seconds), at its final state
WAIT_DONE = rf"Starting endpoint {ENDPOINT} \(the server loads [^)]*\): done in [\d.]+ s"

JS_CELL_TEXT = "i => window.jupyterapp.shell.currentWidget.content.widgets[i].node.textContent"
JS_RUN_CELL = ("i => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = i;"
               " nb.deselectAll(); window.jupyterapp.commands.execute('notebook:run-cell'); }")  # queued, not awaited
JS_KERNEL_IDLE = ("() => { const w = window.jupyterapp.shell.currentWidget;"
                  " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                  " return k && k.status === 'idle'; }")
# every element that shows a widget that could not be drawn, and is visible
JS_DEAD_WIDGETS = ("() => [...document.querySelectorAll('.jp-OutputArea-output')].filter(e =>"
                   " /Error displaying widget|Loading widget/.test(e.textContent) && e.offsetParent !== null)"
                   ".map(e => e.textContent)")


def _wait_cell(page, i: int, pattern: str, timeout: float = 300_000) -> str:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => new RegExp({json.dumps(pattern)}).test(({JS_CELL_TEXT})({i}))", timeout=timeout)
    except PlaywrightTimeout:
        page.screenshot(path=str(ARTIFACTS / f"browser-timeout-cell{i}.png"), full_page=True)
        raise AssertionError(f"cell {i} never showed /{pattern}/; it shows:\n{page.evaluate(JS_CELL_TEXT, i)}") from None
    return page.evaluate(JS_CELL_TEXT, i)


def _open(page, lab, name: str) -> None:
    page.evaluate(f"() => {{ window.jupyterapp.commands.execute('docmanager:open', {{path: {json.dumps(name)}}}); }}")
    page.wait_for_function(
        f"() => {{ const w = window.jupyterapp.shell.currentWidget; return w && w.context &&"
        f" w.context.path === {json.dumps(name)} && w.content.widgets.length > 0; }}", timeout=90_000)


def _theme(page, name: str) -> None:
    page.evaluate(f"() => {{ window.jupyterapp.commands.execute('apputils:change-theme', {{theme: {json.dumps(name)}}}); }}")
    page.wait_for_function(f"() => document.body.dataset.jpThemeName === {json.dumps(name)}", timeout=30_000)
    page.wait_for_timeout(1000)


def _cell(page, i: int):
    """Cell ``i`` of the notebook in the current tab (other open notebooks have cells too)."""
    panel = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    return page.locator(f"[id='{panel}'] .jp-Cell").nth(i)


def _shot_cell(page, i: int, name: str) -> None:
    cell = _cell(page, i)
    cell.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    cell.screenshot(path=str(ARTIFACTS / name))


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


def _status_notebook(home: Path) -> dict:
    return _as_notebook(["%load_ext azml_magics", f"%config AzmlMagics.home = {str(home)!r}", "%azml_status"])


def _shutdown_kernels(lab) -> None:
    import httpx

    params = {"token": lab.token}
    for kernel in httpx.get(f"{lab.url}/api/kernels", params=params, timeout=10).json():
        httpx.delete(f"{lab.url}/api/kernels/{kernel['id']}", params=params, timeout=30)
    deadline = time.monotonic() + 30
    while httpx.get(f"{lab.url}/api/kernels", params=params, timeout=10).json() and time.monotonic() < deadline:
        time.sleep(0.5)


def test_notebook_walk_in_jupyterlab_survives_a_reload_without_a_kernel(
        tiny_model_dir, jupyter_lab, chromium_page, tmp_path):
    """Detach and re-attach a job, chat, walk the fine-tune form (unknown model, a bad value, a preset,
    insert as a cell, submit), %azml_status in a fresh kernel, then reopen the saved notebooks with no
    kernel: the results are there and no widget error shows. Screenshots in light and dark theme."""
    import nbformat

    home, prepared = tmp_path / "azml_home", tmp_path / "prepared"
    path, status_path = jupyter_lab.root / "walk.ipynb", jupyter_lab.root / "status.ipynb"
    nbformat.write(_notebook(home, prepared), path)
    nbformat.write(_status_notebook(home), status_path)
    page = chromium_page
    page.set_viewport_size({"width": 1280, "height": 3000})  # tall enough for the form cell in one shot
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.goto(jupyter_lab.notebook_url("walk.ipynb"))
        page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=90_000)
        page.wait_for_function(JS_KERNEL_IDLE, timeout=120_000)
        _theme(page, "JupyterLab Light")
        for i in range(DETACHED + 1):
            page.evaluate(JS_RUN_CELL, i)

        # the blocking job view runs; Ctrl-C (an interrupt) detaches it and the job goes on
        _wait_cell(page, DETACHED, rf"step \d+ of {WALK_STEPS}\b")  # progress from training steps
        page.evaluate("() => { window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.interrupt(); }")
        text = _wait_cell(page, DETACHED, r"[Dd]etached at \d\d:\d\d")
        assert "%azml_jobs attach" in text
        assert text.count("the job goes on") == 1, text  # the detach message is said once
        # the saved view does not claim it still runs: the state it saw, and when (the tiny job may be
        # saving its model already when the interrupt lands)
        assert re.search(r"\b(Running|Finalizing) when detached at \d\d:\d\d", text), text
        _shot_cell(page, DETACHED, "browser-detached-light.png")

        # re-attach: the detached view is replaced by a pointer, the new view ends as the summary
        page.evaluate(JS_RUN_CELL, ATTACHED)
        _wait_cell(page, DETACHED, r"re-attached at \d\d:\d\d")
        summary = _cell(page, ATTACHED).locator(".azml-job-summary")
        summary.wait_for(timeout=300_000)
        assert "Completed" in summary.inner_text() and summary.locator("img").count() == 1

        for i in range(ATTACHED + 1, FORM + 1):
            page.evaluate(JS_RUN_CELL, i)
        chat_input = page.locator(".azml-chat-text")
        chat_input.wait_for(timeout=300_000)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, errors.all_inner_texts()

        chat_input.fill(FIRST)
        send = page.locator(".azml-chat-send")
        send.click()
        replies = page.locator(".azml-chat-log .azml-chat-assistant")
        page.wait_for_function(
            "() => { const b = document.querySelector('.azml-chat-send');"
            " return b && !b.disabled && document.querySelectorAll('.azml-chat-log .azml-chat-assistant').length >= 1; }",
            timeout=120_000,
        )
        assert page.locator(".azml-chat-log .azml-chat-error").count() == 0, page.locator(".azml-chat").inner_text()
        # the deploy's wait: a live widget bar, full, its final line beside it; its saved twin hidden meanwhile
        deploy = _cell(page, DEPLOY)
        bar = deploy.locator("[class*='azml-wait-live-']")
        assert bar.is_visible() and re.search(WAIT_DONE, bar.inner_text()), deploy.inner_text()
        assert not deploy.locator(".azml-wait-record").is_visible()
        _shot_cell(page, DEPLOY, "browser-wait-bar-light.png")
        user_turn = page.locator(".azml-chat-log .azml-chat-user").first
        assert FIRST in user_turn.inner_text()
        first_reply = replies.first.locator(".azml-raw").text_content().strip()
        assert first_reply and first_reply != "…"
        chat_input.fill(SECOND)
        chat_input.press("Enter")
        page.wait_for_function(
            "() => document.querySelectorAll('.azml-chat-log .azml-chat-assistant').length >= 2 &&"
            " !document.querySelector('.azml-chat-send').disabled",
            timeout=120_000,
        )
        assert SECOND in page.locator(".azml-chat-log .azml-chat-user").nth(1).inner_text()

        static = page.locator("[class*='azml-chat-static-']")
        assert static.count() == 1 and not static.is_visible()  # the saved copy hides beside the live box

        # the form: the last prepared folder, all of it; an unknown model and a bad value keep Submit off
        form = page.locator(".azml-form")
        submit = form.locator("button", has_text="Submit")
        form.locator(".azml-field-data-source input").wait_for(timeout=60_000)
        assert form.locator(".azml-field-data-source input").input_value() == str(prepared.resolve())
        assert form.locator(".azml-field-data-fraction input").input_value() == "1.0"
        assert "last prepared folder" in form.inner_text()
        assert form.locator(".azml-field-compute-size").count() == 0  # local: no Azure compute block
        model = form.locator(".azml-field-model input")
        model.fill("no-such-model")
        model.press("Enter")
        form.locator(".azml-field-model").get_by_text("no-such-model").last.wait_for(timeout=30_000)
        page.wait_for_function("() => [...document.querySelectorAll('.azml-form button')]"
                               ".find(b => b.textContent.includes('Submit')).disabled", timeout=30_000)
        model.fill("azml-tiny-phi3")
        model.press("Enter")
        rate = form.locator(".azml-field-parameters-learning_rate")
        rate.locator("input").fill("fast")
        rate.get_by_text("parameters.learning_rate must be a number").wait_for(timeout=30_000)
        assert submit.is_disabled()
        assert form.locator(".azml-insert-cell").is_disabled()
        rate.locator("input").fill("0.0001")
        page.wait_for_function(
            "() => !document.querySelector('.azml-field-parameters-learning_rate').textContent.includes('must be')",
            timeout=30_000)
        # a preset fills fields the user sees
        form.locator(".azml-preset select").select_option("smoke test")
        page.wait_for_function(
            "() => document.querySelector('.azml-form .azml-field-data-rows input').value === '16'", timeout=30_000)
        assert form.locator(".azml-field-parameters-max_steps input").input_value() == "5"
        page.wait_for_function("() => ![...document.querySelectorAll('.azml-form button')]"
                               ".find(b => b.textContent.includes('Submit')).disabled", timeout=30_000)
        _shot_cell(page, FORM, "browser-form-light.png")

        # insert as a cell: a %%azml_finetune cell with the form's YAML appears below the form
        form.locator(".azml-insert-cell").click()
        page.wait_for_function(f"() => window.jupyterapp.shell.currentWidget.content.widgets.length === {FORM + 2}",
                               timeout=30_000)
        inserted = page.evaluate(
            f"() => window.jupyterapp.shell.currentWidget.content.widgets[{FORM + 1}].model.sharedModel.getSource()")
        assert inserted.startswith("%%azml_finetune\n") and "rows: 16" in inserted and "learning_rate: 0.0001" in inserted

        # submit: the job runs in the form and ends as its summary
        submit.click()
        form.locator(".azml-job-summary").wait_for(timeout=300_000)
        assert "Completed" in form.locator(".azml-job-summary").inner_text()
        _shot_cell(page, FORM, "browser-form-submitted-light.png")

        page.evaluate("() => { window.jupyterapp.commands.execute('docmanager:save'); }")
        saved = _wait_for_file(path, SECOND)
        deadline = time.monotonic() + 30  # an autosave may have matched first: wait for the form's summary too
        while saved.count("azml-job-summary") < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            saved = path.read_text()

        # %azml_status in a fresh kernel: the endpoint this notebook left running
        _open(page, jupyter_lab, "status.ipynb")
        page.wait_for_function(JS_KERNEL_IDLE, timeout=120_000)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        status = _wait_cell(page, 2, ENDPOINT, timeout=120_000)
        assert re.search(r"endpoint\s*" + ENDPOINT, status) and "yes" in status, status
        assert "Not connected" not in status
        _shot_cell(page, 2, "browser-status-light.png")
        page.evaluate("() => { window.jupyterapp.commands.execute('docmanager:save'); }")
        _wait_for_file(status_path, ENDPOINT)
    finally:
        _stop_endpoints(home)

    # reopen both saved notebooks with no kernel at all
    _shutdown_kernels(jupyter_lab)
    page.goto(f"{jupyter_lab.url}/lab?reset&token={jupyter_lab.token}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.docRegistry.getWidgetFactory('Notebook')",
                           timeout=90_000)
    page.evaluate("() => { window.jupyterapp.docRegistry.getWidgetFactory('Notebook')._preferKernel = false; }")
    for theme in ("JupyterLab Light", "JupyterLab Dark"):
        _theme(page, theme)
        suffix = "dark" if "Dark" in theme else "light"
        _open(page, jupyter_lab, "walk.ipynb")
        page.wait_for_timeout(3000)  # let the widget manager give up on the missing models
        assert page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session == null")
        assert page.evaluate(JS_DEAD_WIDGETS) == []
        form_cell = _cell(page, FORM)
        form_cell.scroll_into_view_if_needed()
        record = form_cell.locator(".azml-form-record")
        assert record.is_visible() and "Completed" in record.inner_text()
        chat_cell = _cell(page, FORM - 1)
        chat_cell.scroll_into_view_if_needed()
        transcript = chat_cell.locator("[class*='azml-chat-static-']")
        assert transcript.is_visible() and FIRST in transcript.inner_text()
        assert page.evaluate(JS_DEAD_WIDGETS) == []
        assert "re-attached at" in page.evaluate(JS_CELL_TEXT, DETACHED)
        wait_record = _cell(page, DEPLOY).locator(".azml-wait-record")  # the wait bar's saved twin
        assert wait_record.is_visible() and re.search(WAIT_DONE, wait_record.inner_text())
        for i, name in ((DETACHED, "detached"), (ATTACHED, "attached"), (DEPLOY, "deploy"), (FORM - 1, "chat"),
                        (FORM, "form")):
            _shot_cell(page, i, f"browser-reload-{name}-{suffix}.png")
        _open(page, jupyter_lab, "status.ipynb")
        page.wait_for_timeout(1000)
        assert ENDPOINT in page.evaluate(JS_CELL_TEXT, 2)
        _shot_cell(page, 2, f"browser-reload-status-{suffix}.png")
        page.evaluate("() => { window.jupyterapp.commands.execute('application:close-all'); }")
        page.wait_for_timeout(500)

    # the saved notebook, rendered without a kernel by nbconvert
    from nbconvert import HTMLExporter

    nb = nbformat.reads(saved, as_version=4)
    html_outputs = [o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", [])]
    job_summary = [h for h in html_outputs if "azml-job-summary" in h]
    assert len(job_summary) == 2 and all("data:image/png;base64," in h for h in job_summary)
    assert any("azml-form-record" in h for h in job_summary)
    transcript = [h for h in html_outputs if "azml-chat-static-" in h]
    assert len(transcript) == 1
    assert FIRST in transcript[0] and SECOND in transcript[0]
    assert transcript[0].count("azml-chat-turn azml-chat-assistant") == 2
    rendered, _ = HTMLExporter().from_notebook_node(nb)
    (ARTIFACTS / "browser-notebook.html").write_text(rendered)
    assert FIRST in rendered and "azml-job-summary" in rendered
    key_files = list((home / "endpoints").glob("*key*")) if (home / "endpoints").exists() else []
    for key_file in key_files:
        key = key_file.read_text().strip()
        assert key and key not in saved
    assert not re.search(r"Bearer\s+\S{16,}", saved)
    json.loads(saved)
