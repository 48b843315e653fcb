"""What a notebook gets from our display objects: every HTML output is kept away from JupyterLab's
MathJax, which would typeset "$5 and $10" in a table as a formula, and keeps its plain-text twin."""

from __future__ import annotations

from tests.shell import run_cell


def test_html_outputs_opt_out_of_mathjax_and_keep_their_text(ip):
    run_cell(ip, "from IPython.display import display\nfrom azml_magics.display import Table, Rich")
    res, out, outputs = run_cell(ip, "display(Table(['item', 'cost'], [['GPU hour', '$5 and $10'], ['path', '$HOME/x']]))")
    assert res.success, out
    html = outputs[-1].data["text/html"]
    assert html.startswith("<div class='tex2jax_ignore mathjax_ignore'>") and "$5 and $10" in html
    assert "$5 and $10" in outputs[-1].data["text/plain"]
    res, out, outputs = run_cell(ip, "display(Rich('<b>$x$</b>', '$x$'))")
    assert "mathjax_ignore" in outputs[-1].data["text/html"] and outputs[-1].data["text/plain"] == "$x$"
