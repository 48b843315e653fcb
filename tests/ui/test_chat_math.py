"""Math in replies: which ``$`` is math (code and prices are not), MathML out, nothing raw from the reply."""

from __future__ import annotations

import re

import pytest

from azml_magics.ui.chat_math import sanitize_mathml, tex_to_mathml
from azml_magics.ui.chat_render import render_markdown


def _maths(html: str) -> list[str]:
    return re.findall(r"<math\b.*?</math>", html, flags=re.S)


@pytest.mark.parametrize("text, display", [
    ("Euler: $e^{i\\pi}+1=0$.", "inline"),
    ("So \\(\\frac{1}{2}\\) of it.", "inline"),
    ("$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$", "block"),
    ("Area:\n\\[\nA = \\pi r^2\n\\]", "block"),
    ("$$\n\\int_0^1 x\\,dx\n$$", "block"),
])
def test_the_four_delimiters_become_mathml(text, display):
    html = render_markdown(text)
    (math,) = _maths(html)
    assert f'display="{display}"' in math and 'xmlns="http://www.w3.org/1998/Math/MathML"' in math
    assert "<mi>" in math or "<mn>" in math
    assert "$" not in html and "\\(" not in html and "\\[" not in html


def test_fractions_and_powers_keep_their_structure():
    (math,) = _maths(render_markdown("$\\frac{a}{b^2}$"))
    assert re.search(r"<mfrac>.*<mi>a</mi>.*<msup><mi>b</mi><mn>2</mn></msup>.*</mfrac>", math)


@pytest.mark.parametrize("text", [
    "It costs $5 and $10 in the shop.",          # prices: Pandoc's rule, no space inside the dollars
    "Between $ 5 $ and more.",                   # a space after the opening $
    "Pay $3.50, then $4$ tip",                   # a price, then a formula of its own (checked below)
    "Use `$HOME` and `echo $PATH`.",             # code spans
    "It costs $10, and `$HOME` is code.",        # a price before a code span: no formula reaches into it
    "```bash\necho $A and $B\n```",              # fenced code
    "An escaped \\$5 and \\$6.",                 # \$ is a dollar
    "Open $x\n\ny$ across a blank line",         # a blank line ends a formula
])
def test_code_prices_and_escapes_are_not_math(text):
    html = render_markdown(text)
    if text.startswith("Pay"):  # `$3.50, then $` ends before a space; `$4$` is a formula of its own
        assert len(_maths(html)) == 1 and "<mn>4</mn>" in html and "3.50" in html
        return
    assert not _maths(html), html
    assert "$" in html


def test_a_price_next_to_a_formula():
    html = render_markdown("It is $5 today; the formula $x^2$ holds.")
    assert len(_maths(html)) == 1 and "$5 today" in html


@pytest.mark.parametrize("tex", [
    "\\text{<img src=x onerror=alert(1)>}",
    "\\text{<script>alert(1)</script>}",
    "\\text{</math><iframe src=//evil>}",
    "\\href{javascript:alert(1)}{x}",
    "\\style{background:url(x)}{y}",
])
def test_no_raw_html_from_the_reply_survives(tex):
    html = render_markdown(f"see ${tex}$ now")
    lowered = html.lower()
    for bad in ("<img", "<script", "<iframe", "onerror=", "javascript:", "href=", "style="):
        assert bad not in lowered, html
    assert lowered.count("<math") == lowered.count("</math>") <= 1


def test_the_sanitizer_keeps_mathml_and_escapes_text():
    dirty = ('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline" onclick="x()">'
             '<mtext><b>bold</b> & <a href="http://x">link</a></mtext><mi style="color:red">x</mi></math>')
    clean = sanitize_mathml(dirty)
    assert clean == ('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">'
                     '<mtext>bold &amp; link</mtext><mi>x</mi></math>')


@pytest.mark.parametrize("tex", ["\\frac{1}{", "x^", "\\begin{matrix} a"])
def test_tex_it_cannot_read_is_shown_as_code(tex):
    html = render_markdown(f"look: ${tex}$ there")
    assert not _maths(html) and f"<code class='azml-tex'>{tex}</code>" in html
    assert tex_to_mathml("<b>x^", display=True) == "<code class='azml-tex'>&lt;b&gt;x^</code>"
