"""YAML loading that remembers where each key was written, so errors can name the line."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from .errors import SpecError


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


def _walk(node, path, lines, loader):
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SpecError(
                    f"line {line}: key '{key}' is written twice (first on line {seen[key]}); keep one of them."
                )
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, loader)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), lines, loader)


def load(text: str, what: str = "cell") -> LocatedYaml:
    """Parse ``text``; a syntax error becomes a one-line SpecError with line and column."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return LocatedYaml(None)
        lines: dict[tuple, int] = {}
        _walk(node, (), lines, loader)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        context = ""
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            cm = exc.context_mark
            context = f" ({exc.context.strip()} at line {cm.line + 1}, column {cm.column + 1})"
        raise SpecError(f"YAML syntax error in the {what} at {where}: {problem}{context}.") from None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises marked errors for text input
        raise SpecError(f"YAML error in the {what}: {exc}") from None
    finally:
        loader.dispose()
    return LocatedYaml(data, lines)
