"""The per-row rules of the Azure chat-completion pipeline, checked without a tokenizer.

Why hand-written loops instead of a schema library: each broken row must say exactly what is
wrong in the user's terms (which message, which role), and the checks run at well over 50,000
rows a second on one core. ``check_row`` returns ``None`` for a good row, so the common path
allocates nothing.
"""

from __future__ import annotations

from .rules import describe_type

_USER, _ASSISTANT, _SYSTEM = "user", "assistant", "system"


def check_row(row: dict, supports_system_role: bool = True) -> list[tuple[str, dict]] | None:
    """The problems of one parsed row (an object), or None when it is usable."""
    messages = row.get("messages", _MISSING)
    tools = row.get("tools")
    problems = None
    if tools is not None and type(tools) is not list:
        problems = [("tools_not_list", {"type": describe_type(tools)})]
    if type(messages) is not list:
        if messages is _MISSING:
            return (problems or []) + [("no_messages", {})]
        return (problems or []) + [("messages_not_list", {"type": describe_type(messages)})]
    if len(messages) < 2:
        return (problems or []) + [("too_few_messages", {"n": len(messages)})]
    has_user = has_assistant = False
    system_at: list[int] = []
    for i, message in enumerate(messages, 1):
        if type(message) is not dict:
            problems = _add(problems, "message_not_object", i=i, type=describe_type(message))
            continue
        role = message.get("role")
        if role == _USER:
            has_user = True
        elif role == _ASSISTANT:
            has_assistant = True
        elif role == _SYSTEM:
            system_at.append(i)
        elif role is None:
            problems = _add(problems, "missing_role" if "role" not in message else "unknown_role",
                            i=i, role="null")
        else:
            problems = _add(problems, "unknown_role", i=i, role=repr(role))
        content = message.get("content", _MISSING)
        if type(content) is str:
            if not content or content.isspace():
                problems = _add(problems, "empty_content", i=i, role=role)
        elif content is _MISSING:
            problems = _add(problems, "missing_content", i=i)
        else:
            problems = _add(problems, "content_not_string", i=i, type=describe_type(content))
    if system_at:
        problems = _check_system(messages, system_at, supports_system_role, problems)
    if not has_user:
        problems = _add(problems, "no_user")
    if not has_assistant:
        problems = _add(problems, "no_assistant")
    else:
        last = messages[-1]
        last_role = last.get("role") if type(last) is dict else None
        if last_role == _USER or last_role == _SYSTEM:
            problems = _add(problems, "last_not_assistant", role=last_role)
    return problems


def _check_system(messages: list, system_at: list[int], supported: bool, problems):
    if len(system_at) > 1:
        problems = _add(problems, "multiple_system", n=len(system_at))
    if system_at[0] != 1:
        problems = _add(problems, "system_not_first", i=system_at[0])
    elif not supported:
        after = messages[1] if len(messages) > 1 else None
        if type(after) is not dict or after.get("role") != _USER:
            problems = _add(problems, "system_without_user")
    return problems


def _add(problems, code: str, **fields):
    """Record a reason once per row: the first message it applies to is the one reported."""
    if problems is None:
        return [(code, fields)]
    if all(c != code for c, _ in problems):
        problems.append((code, fields))
    return problems


def prompt_key(row: dict) -> str | None:
    """What identifies a prompt across splits: ultrachat's prompt_id, else the first user text."""
    pid = row.get("prompt_id")
    if isinstance(pid, str) and pid:
        return pid
    for message in row.get("messages") or ():
        if type(message) is dict and message.get("role") == _USER:
            content = message.get("content")
            return content if isinstance(content, str) else None
    return None


def fold_system(messages: list[dict]) -> list[dict]:
    """Messages for a model without a system role: the system text goes before the first user text.

    The Azure pipeline does the same; the local trainer calls this so both backends see the same rows.
    """
    if not messages or messages[0].get("role") != _SYSTEM or len(messages) < 2:
        return messages
    system, user = messages[0], messages[1]
    merged = dict(user, content=f"{system['content']}\n{user['content']}")
    return [merged, *messages[2:]]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
