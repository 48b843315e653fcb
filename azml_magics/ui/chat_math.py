"""Math in chat replies: TeX between ``$...$``, ``$$...$$``, ``\\(...\\)`` or ``\\[...\\]`` becomes MathML,
converted here in Python (``latex2mathml``), so it shows in the live panel and in the saved
notebook's HTML alike: browsers draw MathML themselves, no script is loaded.

Which ``$`` is math. As in JupyterLab's markdown, ``$`` inside code spans and fenced code is never
math (here markdown-it's code rules run first, and a formula holds no backtick, so it never reaches
into a code span), a blank line ends a formula, and ``\\$`` is a dollar.
Unlike JupyterLab (which would take ``$5 and $10`` for a formula ``5 and``), a single ``$`` follows
Pandoc's ``tex_math_dollars`` rule: the opening ``$`` has a non-space right after it, the closing one
a non-space right before it and no digit right after it, and here no other ``$`` lies between them;
so prices stay text ("$3.50, then $4$" is a price and the formula 4).

The MathML is rebuilt through an allow-list of MathML elements and attributes with every text
escaped: ``\\text{<img src=x>}`` cannot put HTML from the reply on the page (latex2mathml copies
``\\text`` verbatim). TeX it cannot read is shown as code.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

MATH_TAGS = frozenset(
    "math mrow mi mn mo ms mtext mspace msub msup msubsup mfrac msqrt mroot mstyle merror mpadded mphantom "
    "menclose mover munder munderover mtable mtr mtd mlabeledtr mmultiscripts mprescripts none semantics "
    "annotation mfenced".split())
MATH_ATTRIBUTES = frozenset(
    "xmlns display mathvariant stretchy fence separator separators accent accentunder lspace rspace "
    "linethickness columnalign columnlines columnspacing columnspan rowalign rowlines rowspacing rowspan "
    "displaystyle scriptlevel width height depth voffset notation minsize maxsize movablelimits form "
    "symmetric largeop frame framespacing open close align equalrows equalcolumns encoding".split())
MATHML_NS = "http://www.w3.org/1998/Math/MathML"


class _Clean(HTMLParser):
    """Keeps allowed MathML elements and attributes; all text (and anything else, as text) escaped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in MATH_TAGS:
            return
        kept = "".join(f' {k}="{html.escape(v or "", quote=True)}"' for k, v in attrs
                       if k in MATH_ATTRIBUTES and (k != "xmlns" or v == MATHML_NS))
        self.out.append(f"<{tag}{kept}>")
        self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in self.open:  # close what is open up to it (never a tag that was not opened)
            while self.open:
                last = self.open.pop()
                self.out.append(f"</{last}>")
                if last == tag:
                    break

    def handle_data(self, data):
        self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{t}>" for t in reversed(self.open))


def sanitize_mathml(markup: str) -> str:
    parser = _Clean()
    parser.feed(markup)
    return parser.result()


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """``<math>`` for ``tex`` (block when ``display``), sanitized; TeX that cannot be read, as code."""
    try:
        from latex2mathml.converter import convert

        markup = convert(tex, display="block" if display else "inline")
    except Exception:  # latex2mathml raises many kinds on bad TeX (and ImportError without it)
        return f"<code class='azml-tex'>{html.escape(tex)}</code>"
    return f"<span class='azml-math{' azml-math-block' if display else ''}'>{sanitize_mathml(markup)}</span>"


# ----------------------------------------------------------------------------- markdown-it rule
_PAIRS = {"$$": "$$", "\\(": "\\)", "\\[": "\\]"}


def _find_close(src: str, close: str, start: int, end: int) -> int:
    """Index of ``close`` after ``start`` (not escaped, no blank line or backtick before it), or -1.
    No backtick: a formula never reaches into a code span, whose ``$`` is not math."""
    i = start
    while True:
        i = src.find(close, i, end)
        if i < 0 or "\n\n" in src[start:i] or "`" in src[start:i]:
            return -1
        if close[0] == "$" and src[i - 1] == "\\":  # \$ inside is a dollar
            i += 1
            continue
        return i


def _single_dollar(src: str, pos: int, end: int) -> tuple[int, str] | None:
    """Pandoc's rule for ``$...$``: (index after the closing $, content) or None."""
    if pos + 1 >= end or src[pos + 1].isspace() or src[pos + 1] == "$":
        return None
    i = _find_close(src, "$", pos + 1, end)  # the next unescaped $: a formula holds no other
    if i < 0 or src[i - 1].isspace() or (i + 1 < end and src[i + 1].isdigit()):
        return None
    return i + 1, src[pos + 1:i]


def math_rule(state, silent: bool) -> bool:
    """Inline rule, run before markdown-it's escape rule (so ``\\(`` reaches it)."""
    src, pos, end = state.src, state.pos, state.posMax
    opener = src[pos:pos + 2]
    if opener in _PAIRS:
        close = _PAIRS[opener]
        at = _find_close(src, close, pos + 2, end)
        if at < 0 or not src[pos + 2:at].strip():
            return False
        found, display = (at + 2, src[pos + 2:at]), opener in ("$$", "\\[")
    elif src[pos] == "$":
        found, display = _single_dollar(src, pos, end), False
        if found is None:
            return False
    else:
        return False
    if not silent:
        token = state.push("azml_math", "math", 0)
        token.content = found[1].strip()
        token.meta = {"display": display}
    state.pos = found[0]
    return True


def use_math(md) -> None:
    """Add the math rule and its renderer to a MarkdownIt instance."""
    md.inline.ruler.before("escape", "azml_math", math_rule)
    md.add_render_rule("azml_math", lambda renderer, tokens, idx, options, env:
                       tex_to_mathml(tokens[idx].content, tokens[idx].meta["display"]))
