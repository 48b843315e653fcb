"""The chat box in a real JupyterLab (headless Chromium) on a real local endpoint (the tiny model).

Fast typing (5 ms a key) while the kernel is busy and straight after a reply, every message arriving
whole; Stop during a long reply; regenerate; a code block's Copy and "Insert below" (a new cell in
the notebook's own model); light and dark themes (screenshots in test-artifacts/, text readable
against its bubble); and a reload on a fresh kernel shows the saved transcript without an error line.
"""

from __future__ import annotations

import json

import pytest

from tests.paths import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ENDPOINT = "browser-fast"
MESSAGES = ["And the capital of Italy is which city, please?", "Second: what is 17 times 23, exactly?",
            "Third one right after a reply: name three primes."]
CODE = "def area(r):\n    return 3.14159 * r * r\n"
MATH = ("Euler: $e^{i\\pi}+1=0$, and a fraction:\n\n$$\\frac{a+b}{c^2}$$\n\n"
        "It costs $5 and $10, and `$HOME` is code.")


def _kernel_idle(page, timeout=120_000):
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return k && k.status === 'idle'; }", timeout=timeout)


def _box(index: int) -> str:
    """JavaScript for the index-th chat box on the page (in cell order)."""
    return f"document.querySelectorAll('.azml-chat')[{index}]"


def _not_busy(page, timeout=120_000, index=0):
    page.wait_for_function(
        f"() => {{ const b = {_box(index)}; const s = b && b.querySelector('.azml-chat-send'); return s && !s.disabled; }}",
        timeout=timeout)


def _luminance(rgb: str) -> float:
    """Relative luminance of a computed colour: 'rgb(r, g, b)' or color-mix's 'color(srgb r g b)'."""
    inner = rgb[rgb.index("(") + 1:rgb.index(")")]
    if inner.startswith("srgb"):
        parts = [float(x) for x in inner.split()[1:4]]
    else:
        parts = [float(x) / 255 for x in inner.replace("/", ",").split(",")[:3]]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in parts]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(page, selector: str) -> float:
    fg, bg = page.evaluate(
        f"() => {{ const e = document.querySelector({json.dumps(selector)}); const s = getComputedStyle(e);"
        " return [s.color, s.backgroundColor]; }")
    a, b = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def test_chat_box_in_jupyterlab(tiny_model_dir, jupyter_lab, chromium_page, tmp_path):
    import nbformat

    from azml_magics.backends.local import endpoints

    home = tmp_path / "azml_home"
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps({"messages": [
        {"role": "user", "content": "Show me code"},
        {"role": "assistant", "content": f"Here:\n\n```python\n{CODE}```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n{MATH}"}]}) + "\n")
    endpoints.start_endpoint(home, ENDPOINT, tiny_model_dir, model_ref="azml-tiny-phi3:1")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [
        f"%load_ext azml_magics\n%azml_connect --backend local --home {home}",
        # 300 new tokens a reply: the whole conversation (4 replies, then a sample) stays inside the tiny
        # model's context of 2048 tokens; at 400 the sample's request could be refused as too long
        f"%azml_chat {ENDPOINT} --max-new-tokens 300 --temperature 1.5 --top-p 1.0 --load {history}",
        "import time\ntime.sleep(6)  # keeps the kernel busy while the test types",
        # Stop is tried in a box of its own: a reply that ends before Stop lands would otherwise stay in the
        # first box's conversation, and a few of them push its sample request past the context
        f"%azml_chat {ENDPOINT} --max-new-tokens 300 --temperature 1.5 --top-p 1.0",
    ]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = jupyter_lab.root / "fast.ipynb"
    nbformat.write(nb, path)
    page = chromium_page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.goto(jupyter_lab.notebook_url("fast.ipynb"))
        page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=90_000)
        _kernel_idle(page)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        chat = page.locator(".azml-chat").first
        box = chat.locator(".azml-chat-text")
        box.wait_for(timeout=120_000)

        # 0. math in the loaded reply: MathML drawn by the browser, a stacked fraction; prices and code stay text
        chat.locator(".azml-chat-log math").first.wait_for(timeout=30_000)
        assert chat.locator(".azml-chat-log math").count() == 2
        assert chat.locator(".azml-chat-log math[display='block'] mfrac").count() == 1
        frac = chat.locator(".azml-chat-log mfrac").bounding_box()
        letter = chat.locator(".azml-chat-log math[display='inline'] mi").first.bounding_box()
        assert frac["width"] > 0 and frac["height"] > 1.6 * letter["height"]  # numerator over denominator
        reply_text = chat.locator(".azml-chat-log .azml-chat-assistant").first.inner_text()
        assert "It costs $5 and $10" in reply_text and "$HOME" in reply_text and "\\frac" not in reply_text
        chat.locator(".azml-chat-log .azml-math-block").first.screenshot(path=str(ARTIFACTS / "browser-chat-math.png"))
        chat.locator(".azml-chat-log .azml-chat-assistant").first.screenshot(
            path=str(ARTIFACTS / "browser-chat-math-reply.png"))

        # 1. type fast while the kernel sleeps in the third cell, Enter; then again straight after the reply
        box.press_sequentially(MESSAGES[0], delay=5)
        box.press("Enter")
        page.wait_for_function(f"{_box(0)}.querySelectorAll('.azml-chat-log .azml-chat-user').length >= 2",
                               timeout=120_000)
        _not_busy(page)
        for text in MESSAGES[1:]:
            box.press_sequentially(text, delay=5)
            box.press("Enter")
            page.wait_for_function(f"() => {_box(0)}.querySelector('.azml-chat-send').disabled", timeout=30_000)
            _not_busy(page)
        users = chat.locator(".azml-chat-log .azml-chat-user .azml-raw").all_text_contents()
        assert users == ["Show me code"] + MESSAGES  # every message whole, none glued to the next
        footer = chat.locator(".azml-chat-log .azml-chat-footer").last.inner_text()
        assert " tokens · " in footer and "tokens/s" in footer and "finish: " in footer  # the server's count

        # 2. Stop during a long reply (in the second box) keeps the partial reply, marked; then regenerate
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        stopper = page.locator(".azml-chat").nth(1)
        stop_box = stopper.locator(".azml-chat-text")
        stop_box.wait_for(timeout=60_000)
        for _attempt in range(5):  # on a quiet machine the tiny model may finish before Stop lands: ask again
            stop_box.press_sequentially("Tell me a very long story.", delay=5)
            stop_box.press("Enter")
            outcome = page.wait_for_function(  # Stop is pressed inside the page, with no round trip to lose
                f"() => {{ const b = {_box(1)}; const r = [...b.querySelectorAll('.azml-chat-log .azml-chat-assistant')];"
                f" if (r.length < {1 + _attempt}"
                " || !r[r.length - 1].querySelector('.azml-raw').textContent.length) return false;"
                " const stop = b.querySelector('.azml-chat-stop');"
                " if (stop && !stop.disabled) { stop.click(); return 'clicked'; }"
                " return b.querySelector('.azml-chat-send').disabled ? false : 'ended early'; }",
                timeout=60_000).json_value()
            _not_busy(page, index=1)
            if outcome == "clicked":
                try:  # the mark may be drawn just after the box frees itself
                    stopper.locator(".azml-chat-log .azml-chat-stopped").wait_for(timeout=2_000)
                    break
                except PlaywrightTimeout:
                    pass
        else:
            pytest.fail("five long replies in a row ended before Stop could land")
        sent = stopper.locator(".azml-chat-log .azml-chat-user").count()
        assert "waiting for the endpoint" not in stopper.inner_text()
        stopper.locator(".azml-chat-log button[data-azml='regenerate']").click()
        page.wait_for_function(f"() => {_box(1)}.querySelector('.azml-chat-send').disabled", timeout=30_000)
        _not_busy(page, index=1)
        assert stopper.locator(".azml-chat-log .azml-chat-stopped").count() == 0  # the stopped reply was replaced
        assert stopper.locator(".azml-chat-log .azml-chat-user").count() == sent  # regenerate adds no message

        # 2b. Try a sample: the model's reply, then the data's reference answer, labelled as such
        chat.locator("button", has_text="Try a sample").click()
        chat.locator(".azml-chat-log .azml-chat-reference, .azml-chat-log .azml-chat-error").first.wait_for(
            timeout=120_000)
        _not_busy(page)
        assert chat.locator(".azml-chat-log .azml-chat-error").count() == 0, \
            chat.locator(".azml-chat-log .azml-chat-error").last.inner_text()
        reference = chat.locator(".azml-chat-log .azml-chat-reference")
        assert "Reference answer (from the test data, for comparison; not the model's)" in reference.inner_text()
        assert chat.locator(".azml-chat-log .azml-chat-turn").last.get_attribute("class").endswith("azml-chat-reference")
        assert "azml-chat-assistant" in chat.locator(".azml-chat-log .azml-chat-turn").nth(-2).get_attribute("class")
        chat.locator(".azml-chat-log").screenshot(path=str(ARTIFACTS / "browser-chat-sample-reference.png"))

        # 3. code: highlighted, copied, inserted as a new cell below the chat's cell
        code = chat.locator(".azml-chat-log .azml-code").first
        assert code.locator("span.k").count() >= 1 and chat.locator(".azml-chat-log table td").count() == 2
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        code.locator("button[data-azml='copy']").click()
        assert page.evaluate("navigator.clipboard.readText()") == CODE
        code.locator("button[data-azml='insert']").click()
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.content.model.cells.length === 5", timeout=10_000)
        inserted = page.evaluate("window.jupyterapp.shell.currentWidget.content.model.cells.get(2).sharedModel.getSource()")
        assert inserted == CODE

        # 4. themes: readable text on its bubble in light and dark
        page.locator(".azml-chat").first.scroll_into_view_if_needed()
        for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
            page.evaluate(f"window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})")
            page.wait_for_function(
                f"document.body.dataset.jpThemeName === '{theme}'", timeout=30_000)
            page.wait_for_timeout(1500)
            for selector in (".azml-chat-log .azml-chat-user", ".azml-chat-log .azml-chat-assistant", ".azml-chat-text",
                             ".azml-chat-log .azml-chat-reference"):
                assert _contrast(page, selector) >= 4.5, (theme, selector, _contrast(page, selector))
            box_rect = chat.locator(".azml-chat-log").bounding_box()
            input_rect = box.bounding_box()
            assert box_rect["height"] <= 430 and input_rect["y"] >= box_rect["y"] + box_rect["height"] - 1
            page.locator(".azml-chat").first.screenshot(path=str(ARTIFACTS / f"browser-chat-{name}.png"))
        page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")

        # 5. save, reload on a fresh kernel: the saved transcript shows, no widget error line
        _kernel_idle(page)
        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_timeout(2000)
        page.evaluate("window.jupyterapp.commands.execute('kernelmenu:shutdown')")
        page.wait_for_timeout(2000)
        page.reload()
        page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=90_000)
        page.locator("[class*='azml-chat-static-']").first.wait_for(state="visible", timeout=60_000)
        page.wait_for_timeout(3000)
        (ARTIFACTS / "browser-chat-reloaded.html").write_text(
            page.locator(".jp-Notebook .jp-Cell").nth(1).evaluate("e => e.outerHTML"))
        text = page.locator(".jp-Notebook").inner_text()
        assert MESSAGES[0] in text
        assert "Error displaying widget" not in text and "model not found" not in text.lower()
        assert "Loading widget" not in text
        saved = page.locator("[class*='azml-chat-static-']").first
        assert saved.locator("math").count() == 2 and saved.locator("mfrac").count() == 1  # our MathML, kept
        assert saved.locator("mjx-container").count() == 0  # JupyterLab's MathJax kept off the prices
        assert "It costs $5 and $10" in saved.inner_text()
        page.screenshot(path=str(ARTIFACTS / "browser-chat-reloaded.png"), full_page=True)
    finally:
        endpoints.stop_endpoint(home, ENDPOINT)


def test_two_endpoints_side_by_side_in_jupyterlab(tiny_model_dir, jupyter_lab, chromium_page, tmp_path):
    """One input, two columns on two real endpoints: both answer the same message; Stop in one column
    leaves the other to finish."""
    import nbformat

    from azml_magics.backends.local import endpoints

    home = tmp_path / "azml_home"
    names = ("side-base", "side-tuned")
    for name in names:
        endpoints.start_endpoint(home, name, tiny_model_dir, model_ref="azml-tiny-phi3:1")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [
        f"%load_ext azml_magics\n%azml_connect --backend local --home {home}",
        f"%azml_chat {names[0]} {names[1]} --max-new-tokens 400 --temperature 1.5 --top-p 1.0",
    ]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, jupyter_lab.root / "side.ipynb")
    page = chromium_page
    ARTIFACTS.mkdir(exist_ok=True)
    columns = ".azml-chat-columns > .azml-chat"
    try:
        page.goto(jupyter_lab.notebook_url("side.ipynb"))
        page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=90_000)
        _kernel_idle(page)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        shared = page.locator(".azml-chat-compare .azml-chat-text:visible")
        shared.wait_for(timeout=120_000)
        assert shared.count() == 1 and page.locator(columns).count() == 2  # one input, a column per endpoint
        assert page.locator(f"{columns} .azml-chat-text:visible").count() == 0
        sent = []
        for _attempt in range(5):  # the random tiny model may end a reply before Stop lands: ask again
            sent.append("Tell me a very long story.")
            shared.press_sequentially(sent[-1], delay=5)
            shared.press("Enter")
            # Stop is pressed inside the page the moment both columns stream, so no round trip to the
            # test lets a fast reply end first; a reply that ends on its own first is asked again.
            outcome = page.wait_for_function(
                f"() => {{ const cs = [...document.querySelectorAll('{columns}')];"
                " const last = c => [...c.querySelectorAll('.azml-chat-log .azml-chat-assistant .azml-raw')].pop();"
                " const ended = c => c.querySelectorAll('.azml-chat-footer').length >= " + str(len(sent)) + ";"
                " if (cs.some(ended)) return 'ended early';"
                " if (!cs.every(c => last(c) && last(c).textContent.length > 0)) return false;"
                " const stop = cs[0].querySelector('.azml-chat-stop');"
                " if (!stop || stop.disabled) return false;"
                " stop.click(); return 'clicked'; }", timeout=120_000).json_value()
            if outcome == "clicked":
                page.wait_for_function(  # the first column has ended: stopped, or on its own just before
                    f"() => document.querySelectorAll('{columns}')[0]"
                    f".querySelectorAll('.azml-chat-footer').length >= {len(sent)}", timeout=30_000)
                if page.locator(columns).nth(0).locator(".azml-chat-stopped").count():
                    break
            page.wait_for_function(  # let both columns end before asking again
                f"() => [...document.querySelectorAll('{columns}')].every(c =>"
                f" c.querySelectorAll('.azml-chat-footer').length >= {len(sent)})", timeout=120_000)
        else:
            pytest.fail("five replies in a row ended before Stop could land: nothing to stop")
        page.wait_for_function(  # the second column goes on to its own end and footer
            f"() => {{ const c = document.querySelectorAll('{columns}')[1];"
            " return c.querySelector('.azml-chat-footer') && !c.querySelector('.azml-chat-stop:not([disabled])'); }",
            timeout=120_000)
        for i in range(2):
            users = page.locator(columns).nth(i).locator(".azml-chat-log .azml-chat-user .azml-raw").all_text_contents()
            assert users == sent, (i, users)
        assert page.locator(columns).nth(1).locator(".azml-chat-stopped").count() == 0
        ended = page.locator(columns).nth(1).locator(".azml-chat-footer").last.inner_text()
        assert "finish: " in ended and " tokens · " in ended  # its own footer, with the server's count
        stopped = page.locator(columns).nth(0).locator(".azml-chat-footer").last.inner_text()
        assert "stopped by you" in stopped and "tokens not reported" in stopped
        page.locator(".azml-chat-compare").first.screenshot(path=str(ARTIFACTS / "browser-chat-side-by-side.png"))
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "browser-chat-side-by-side-FAILED.png"), full_page=True)
        raise
    finally:
        for name in names:
            endpoints.stop_endpoint(home, name)
