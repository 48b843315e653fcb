"""The reasons a data file or row is rejected: one table, shared by the checks, the report and the docs.

Why one table: the message a user sees, the fix it suggests and the README's reason table must not
drift apart. ``README.md`` next to this file lists the same codes; a test compares the two.

``scope`` says what a problem of that kind costs: ``row`` problems drop one row under ``policy="drop"``;
``file`` problems cannot be dropped around and always stop. ``warning`` problems are reported only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str
    message: str  # a format string; fields come from the check that found the problem
    fix: str
    scope: str = "row"  # row | file | warning
    title: str = ""  # short plural noun phrase for summaries ("rows with fewer than two messages")


_R = Reason
REASONS: dict[str, Reason] = {r.code: r for r in [
    # files
    _R("file_missing", "file not found", "check the path", "file", "missing files"),
    _R("not_a_file", "path is {kind}, not a data file", "point at a .jsonl, .json, .csv or .parquet file",
       "file", "paths that are not files"),
    _R("unsupported_format", "unsupported file type '{ext}'",
       "use .jsonl, .json, .csv or .parquet", "file", "unsupported files"),
    _R("json_array", "file holds a JSON array, not JSON lines",
       "write one JSON object per line, or name the file .json", "file", "JSON arrays in .jsonl files"),
    _R("bad_json_file", "file is not valid JSON: {detail}",
       "fix the JSON, or write JSON lines (one object per line)", "file", "unreadable JSON files"),
    _R("bad_parquet", "file is not a readable Parquet file: {detail}",
       "write the file again with pandas or pyarrow", "file", "unreadable Parquet files"),
    _R("csv_no_messages", "CSV file has no 'messages' column (columns: {columns})",
       "add a 'messages' column holding each conversation as a JSON list", "file", "CSV files without messages"),
    _R("file_not_utf8", "file is not UTF-8 text (first bad byte on this line)", "save the file as UTF-8",
       "file", "files that are not UTF-8"),
    _R("no_rows", "file has no usable rows", "add conversations to the file", "file", "files without usable rows"),
    _R("too_few_train_rows", "only {n} usable training rows; at least {min} are needed",
       "add training rows or fix the rejected ones", "file", "too small training sets"),
    _R("no_train_split", "no '{split}' file among the data files ({have})",
       "name the training file '{split}.jsonl' or pass train_split=", "file", "missing training splits"),
    # lines
    _R("bad_encoding", "line is not UTF-8 text", "save the file as UTF-8", "row", "lines that are not UTF-8"),
    _R("bad_json", "line is not valid JSON: {detail}",
       "each line must be one complete JSON object", "row", "lines that are not valid JSON"),
    _R("not_object", "row is {type}, not an object",
       "each row must be an object with a 'messages' list", "row", "rows that are not objects"),
    _R("bare_messages", "row is a bare list of messages",
       'wrap it as {{"messages": [...]}}', "row", "bare message lists"),
    _R("csv_bad_messages", "'messages' cell is not a JSON list: {detail}",
       "write each conversation as a JSON list of {{role, content}} objects", "row", "unreadable CSV cells"),
    # rows
    _R("no_messages", "row has no 'messages' field", "add a 'messages' list of {{role, content}} objects",
       "row", "rows without messages"),
    _R("messages_not_list", "'messages' is {type}, not a list",
       "make 'messages' a list of {{role, content}} objects", "row", "rows whose messages are not a list"),
    _R("too_few_messages", "conversation has {n} message(s); at least two are needed",
       "add a user message and an assistant reply", "row", "rows with fewer than two messages"),
    _R("message_not_object", "message {i} is {type}, not an object",
       "each message must be an object with 'role' and 'content'", "row", "messages that are not objects"),
    _R("missing_role", "message {i} has no 'role'", "set role to user, assistant or system", "row",
       "messages without a role"),
    _R("unknown_role", "message {i} has role {role}; expected user, assistant or system",
       "rename the role (e.g. human -> user, bot -> assistant)", "row", "messages with an unknown role"),
    _R("missing_content", "message {i} has no 'content'", "add the message text as 'content'", "row",
       "messages without content"),
    _R("content_not_string", "message {i} content is {type}, not a string",
       "make 'content' a string", "row", "messages whose content is not a string"),
    _R("empty_content", "message {i} ({role}) has empty content", "remove the message or give it text",
       "row", "messages with empty content"),
    _R("multiple_system", "{n} system messages; at most one is allowed",
       "merge the system messages into one, first", "row", "rows with several system messages"),
    _R("system_not_first", "system message at position {i}; it must be the first message",
       "move the system message to the start", "row", "rows with a misplaced system message"),
    _R("system_without_user", "system message is not followed by a user message",
       "the model has no system role, so the system text is prepended to the next user message: "
       "put a user message right after it", "row", "system messages without a user message after them"),
    _R("no_user", "conversation has no user message", "add the user's prompt", "row", "rows without a user"),
    _R("no_assistant", "conversation has no assistant message",
       "add the assistant's reply: loss is computed on assistant messages only", "row",
       "rows without an assistant reply"),
    _R("last_not_assistant", "conversation ends with a {role} message, not the assistant",
       "end each conversation with the assistant's reply", "row", "rows that do not end with the assistant"),
    _R("tools_not_list", "'tools' is {type}, not a list", "make 'tools' a list or remove it", "row",
       "rows whose tools are not a list"),
    _R("leak", "prompt {pid} is also in the training data ({where})",
       "remove the row from the test split so evaluation is honest", "row", "test rows leaked from training"),
    # with the model's tokenizer
    _R("template_error", "the chat template fails: {detail}",
       "fix the roles or order the template rejects", "row", "rows the chat template rejects"),
    _R("assistant_truncated", "no assistant tokens within max_seq_length {max} (the prompt alone is {n} tokens)",
       "shorten the prompt or raise max_seq_length", "row", "rows truncated before any assistant token"),
    _R("too_long", "{n} tokens, over max_seq_length {max}: the end is truncated",
       "raise max_seq_length or shorten the row", "warning", "rows over max_seq_length"),
]}

ROLES = frozenset({"user", "assistant", "system"})


def describe_type(value: object) -> str:
    """JSON-ish type names users recognise ("null", "a number", not "NoneType")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def render(code: str, **fields: object) -> str:
    """The message for one problem of kind ``code``."""
    return REASONS[code].message.format(**fields)
