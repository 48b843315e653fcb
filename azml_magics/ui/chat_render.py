"""How the chat transcript looks: markdown (GFM tables, highlighted code with Copy and Insert, math
as MathML by :mod:`.chat_math`), theme-aware CSS from JupyterLab's own variables, the HTML of each turn.

Text from the user and the model is escaped; markdown renders with raw HTML off, links limited to
http(s)/mailto, and images shown as their alt text (a remote image is never loaded).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Turn:
    role: str  # user | assistant | error | settings | reference (a sample's answer from the data)
    content: str
    failed: bool = False  # a turn whose request failed: shown, never sent again
    stopped: bool = False  # an assistant reply cut short by Stop (kept, marked)
    footer: str = ""  # tokens, speed, finish reason, latency of a reply
    meta: dict = field(default_factory=dict)


LABELS = {"user": "You", "assistant": "Assistant", "system": "System", "error": "Error", "settings": "Settings",
          "reference": "Reference answer (from the test data, for comparison; not the model's)"}

# every colour is a JupyterLab theme variable (with a light fallback for nbconvert and other hosts)
CSS = """
.azml-chat-panel{display:flex;flex-direction:column;gap:6px;width:100%}
.azml-chat-columns{gap:8px}
.azml-chat-log{max-height:420px;overflow-y:auto;border:1px solid var(--jp-border-color2,#ddd);
 border-radius:6px;padding:4px 6px;background:var(--jp-layout-color1,#fff)}
.azml-chat-inputrow{display:flex;gap:6px;align-items:stretch}
.azml-chat-text{flex:1 1 auto;resize:vertical;min-height:2.6em;font:inherit;font-size:var(--jp-ui-font-size1,13px);
 color:var(--jp-ui-font-color1,#1f2328);background:var(--jp-input-background,var(--jp-layout-color1,#fff));
 border:1px solid var(--jp-border-color1,#bbb);border-radius:4px;padding:4px 6px}
.azml-chat-inputrow button{min-width:64px}
.azml-chat-turn{border-radius:6px;padding:4px 8px;margin:4px 0;color:var(--jp-ui-font-color1,#1f2328);
 border:1px solid var(--jp-border-color2,#e5e5e5);overflow-wrap:anywhere}
.azml-chat-user{background:color-mix(in srgb,var(--jp-brand-color1,#1976d2) 14%,var(--jp-layout-color1,#fff))}
.azml-chat-assistant{background:var(--jp-layout-color2,#f6f8fa)}
.azml-chat-settings{background:color-mix(in srgb,var(--jp-warn-color1,#f57c00) 10%,var(--jp-layout-color1,#fff));
 font-size:var(--jp-ui-font-size0,11px)}
.azml-chat-reference{border-style:dashed;background:color-mix(in srgb,var(--jp-success-color1,#388e3c) 10%,var(--jp-layout-color1,#fff))}
.azml-math-block{display:block;overflow-x:auto;margin:4px 0}
.azml-chat-turn math{font-size:1.1em}
.azml-chat-error{background:color-mix(in srgb,var(--jp-error-color1,#d32f2f) 14%,var(--jp-layout-color1,#fff))}
.azml-chat-turn .azml-head{display:flex;gap:6px;align-items:center}
.azml-chat-turn .azml-head b{flex:1 1 auto}
.azml-chat-turn button{font-size:var(--jp-ui-font-size0,11px);padding:0 6px;cursor:pointer;
 color:var(--jp-ui-font-color1,#1f2328);background:var(--jp-layout-color2,#eee);
 border:1px solid var(--jp-border-color1,#bbb);border-radius:3px}
.azml-chat-turn table{border-collapse:collapse;margin:4px 0}
.azml-chat-turn th,.azml-chat-turn td{border:1px solid var(--jp-border-color1,#bbb);padding:2px 6px}
.azml-chat-turn code{font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,12px)}
.azml-code{margin:4px 0;border:1px solid var(--jp-border-color2,#ddd);border-radius:4px;
 background:var(--jp-cell-editor-background,#f7f7f7)}
.azml-code .azml-code-bar{display:flex;gap:4px;justify-content:flex-end;padding:2px 4px;
 font-size:var(--jp-ui-font-size0,11px);color:var(--jp-ui-font-color2,#666)}
.azml-code .azml-code-bar span{flex:1 1 auto}
.azml-code pre{margin:0;padding:4px 8px;overflow-x:auto;color:var(--jp-content-font-color1,#1f2328)}
.azml-code .k,.azml-code .kn,.azml-code .kd,.azml-code .kc,.azml-code .ow{color:var(--jp-mirror-editor-keyword-color,#008000);font-weight:bold}
.azml-code .s,.azml-code .s1,.azml-code .s2,.azml-code .sd,.azml-code .sa{color:var(--jp-mirror-editor-string-color,#ba2121)}
.azml-code .c,.azml-code .c1,.azml-code .cm,.azml-code .ch{color:var(--jp-mirror-editor-comment-color,#408080);font-style:italic}
.azml-code .m,.azml-code .mi,.azml-code .mf{color:var(--jp-mirror-editor-number-color,#080)}
.azml-code .nf,.azml-code .fm{color:var(--jp-mirror-editor-def-color,#00f)}
.azml-code .nb,.azml-code .bp{color:var(--jp-mirror-editor-builtin-color,#008000)}
.azml-code .o{color:var(--jp-mirror-editor-operator-color,#a2f)}
.azml-chat-footer{font-size:var(--jp-ui-font-size0,11px);color:var(--jp-ui-font-color2,#666);margin-top:2px}
.azml-chat-empty{color:var(--jp-ui-font-color2,#6e7781);padding:6px}
.azml-chat-stopped{color:var(--jp-warn-color1,#b26a00);font-weight:bold}
.azml-raw{display:none}
.azml-chat .widget-label,.azml-chat-settings-box .widget-label{min-width:9em;width:auto;overflow:visible}
"""


def _highlight(code: str, lang: str) -> str:
    """Pygments token spans (classes; the CSS maps them to the editor's theme colours)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(lang or "text")
    except ClassNotFound:
        lexer = get_lexer_by_name("text")
    return highlight(code, lexer, HtmlFormatter(nowrap=True))


def _markdown():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(["table", "strikethrough"])

    def fence(renderer, tokens, idx, options, env):
        token = tokens[idx]
        lang = token.info.strip().split(" ")[0] if token.info else ""
        code = token.content
        return (f"<div class='azml-code'><div class='azml-code-bar'><span>{html.escape(lang)}</span>"
                "<button data-azml='copy' data-label='Copy'>Copy</button>"
                "<button data-azml='insert' data-label='Insert'>Insert below</button></div>"
                f"<pre><code class='language-{html.escape(lang, quote=True)}'>{_highlight(code, lang)}</code></pre></div>")

    def image(renderer, tokens, idx, options, env):  # never load an image from anywhere
        token = tokens[idx]
        alt = "".join(child.content for child in token.children or [])
        return f"<span class='azml-noimage'>[image not loaded: {html.escape(alt)}]</span>"

    md.add_render_rule("fence", fence)
    md.add_render_rule("code_block", fence)
    md.add_render_rule("image", image)
    from .chat_math import use_math

    use_math(md)
    return md


_MD = None


def render_markdown(text: str) -> str:
    """Markdown to HTML: GFM tables, highlighted code blocks, math as MathML, raw HTML escaped, no
    images loaded."""
    global _MD
    if _MD is None:
        _MD = _markdown()
    return _MD.render(text)


def turn_html(turn: Turn, index: int, last: bool, buttons: bool = True) -> str:
    """One turn: its label, its actions (copy; regenerate/edit on the last exchange), body and footer."""
    label = LABELS.get(turn.role, turn.role)
    note = " <small>(not sent again)</small>" if turn.failed and turn.role != "error" else ""
    actions = ""
    if buttons and turn.role == "assistant" and turn.content:
        actions += "<button data-azml='copy' data-label='Copy'>Copy</button>"
        if last:
            actions += "<button data-azml='regenerate' data-label='Regenerate'>Regenerate</button>"
    if buttons and turn.role == "user" and last and not turn.failed:
        actions += "<button data-azml='edit' data-label='Edit'>Edit</button>"
    if turn.role in ("assistant", "reference"):
        body = render_markdown(turn.content) if turn.content else "<i>…</i>"
    else:
        body = f"<div style='white-space:pre-wrap'>{html.escape(turn.content)}</div>"
    stopped = " <span class='azml-chat-stopped'>[stopped]</span>" if turn.stopped else ""
    footer = f"<div class='azml-chat-footer'>{html.escape(turn.footer)}</div>" if turn.footer else ""
    raw = f"<pre class='azml-raw'>{html.escape(turn.content)}</pre>"
    return (f"<div class='azml-chat-turn azml-chat-{turn.role}' data-raw='1' data-index='{index}'>{raw}"
            f"<div class='azml-head'><b>{label}</b>{note}{actions}</div>{body}{stopped}{footer}</div>")


def transcript_html(turns: list[Turn], buttons: bool = True) -> str:
    if not turns:
        return "<div class='azml-chat-empty'>No messages yet.</div>"
    last_user = max((i for i, t in enumerate(turns) if t.role == "user"), default=-1)
    last_reply = max((i for i, t in enumerate(turns) if t.role == "assistant"), default=-1)
    parts = [turn_html(t, i, last=i in (last_user, last_reply), buttons=buttons) for i, t in enumerate(turns)]
    # JupyterLab typesets an HTML output's $...$ with MathJax (the saved copy is one): the math is
    # MathML already, and MathJax would take "$5 and $10" for a formula, so it is told to keep off
    return "<div class='azml-chat-transcript tex2jax_ignore mathjax_ignore'>" + "".join(parts) + "</div>"
