"""YAML loading that remembers where each key was written, so errors can name the line.

It also refuses what no spec needs and what makes a cell hostile, each in one line before anything is
built: aliases (``*name``: a "billion laughs" cell expands exponentially in every walk over it, and a
recursive one never ends), nesting deeper than :data:`MAX_DEPTH`, a list or mapping as a key, the
merge key ``<<`` and integers longer than :data:`MAX_DIGITS` digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from .errors import SpecError

MAX_DEPTH = 32  # a spec nests three or four levels; the composer and our walk recurse per level
MAX_DIGITS = 40  # no setting takes a longer number; Python refuses ints past 4,300 digits anyway
_INT, _MERGE = "tag:yaml.org,2002:int", "tag:yaml.org,2002:merge"


@dataclass
class LocatedYaml:
    """A parsed YAML document and the 1-based line of every mapping key, by key path."""

    data: object
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, *path) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def _refuse_hostile_events(text: str, what: str, first: int) -> None:
    """Aliases and deep nesting, found in the event stream (a flat loop) before any node is built."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + first
        if isinstance(event, yaml.AliasEvent):
            raise SpecError(f"line {line}: YAML aliases (*{event.anchor}) are not accepted in the {what}; "
                            "write the value out where it is used.")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(f"line {line}: the {what} nests more than {MAX_DEPTH} levels deep; "
                                "a spec needs a few levels (model, data, parameters).")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _check_scalar(node, first: int) -> None:
    if node.tag == _INT and len(node.value.lstrip("+-")) > MAX_DIGITS:
        raise SpecError(f"line {node.start_mark.line + first}: the number {node.value[:12]}... has "
                        f"{len(node.value)} digits; no setting takes a number longer than {MAX_DIGITS} digits.")


def _walk(node, path, lines, loader, first: int):
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + first
            if key_node.tag == _MERGE:
                raise SpecError(f"line {line}: the YAML merge key '<<' is not accepted; write the keys out.")
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise SpecError(f"line {line}: a key must be a plain name, not a {kind}; "
                                "write 'name: value' (a '?' line starts a complex key).")
            _check_scalar(key_node, first)
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                raise SpecError(
                    f"line {line}: key '{key}' is written twice (first on line {seen[key]}); keep one of them.",
                    path=".".join(map(str, path + (key,))),
                )
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, loader, first)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + first
            _walk(item, path + (i,), lines, loader, first)
    elif isinstance(node, yaml.ScalarNode):
        _check_scalar(node, first)


def load(text: str, what: str = "cell", first_line: int = 1) -> LocatedYaml:
    """Parse ``text``; a syntax error becomes a one-line SpecError with line and column.

    ``first_line`` is the line of the cell that ``text`` starts on (2 under a ``%%magic`` line), so
    every line number is the one the user sees in the cell.
    """
    loader = yaml.SafeLoader(text)
    try:
        _refuse_hostile_events(text, what, first_line)
        node = loader.get_single_node()
        if node is None:
            return LocatedYaml(None)
        lines: dict[tuple, int] = {}
        _walk(node, (), lines, loader, first_line)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        where = f"line {mark.line + first_line}, column {mark.column + 1}" if mark else "somewhere"
        context = ""
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            cm = exc.context_mark
            context = f" ({exc.context.strip()} at line {cm.line + first_line}, column {cm.column + 1})"
        raise SpecError(f"YAML syntax error in the {what} at {where}: {problem}{context}.") from None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises marked errors for text input
        raise SpecError(f"YAML error in the {what}: {exc}") from None
    finally:
        loader.dispose()
    return LocatedYaml(data, lines)


def dump(data) -> str:
    """YAML as a cell takes it: keys in their order, block style."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
