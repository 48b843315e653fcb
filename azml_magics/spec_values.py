"""Typing and checking the values of a spec, and where each error goes.

Split from ``spec.py`` because two jobs live here that the sections share: typing a pipeline
parameter the way the component wants it (``normalize_value``, also used by the merge and the
forms), and :class:`Where`, which names the line and dotted path of every error and either raises
the first one (the magics: one clear line) or collects them all (the forms mark every field).
"""

from __future__ import annotations

import difflib
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from . import yaml_lines
from .errors import SpecError
from .pipeline_inputs import EXCLUSIVE_MINIMUM, MAXIMUM, PIPELINE_INPUTS, PipelineInput


def closest(word: str, choices, n: int = 1) -> str | None:
    found = difflib.get_close_matches(str(word), list(choices), n=n, cutoff=0.6)
    return found[0] if found else None


def format_value(x) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


S = TypeVar("S")


@dataclass
class Checked(Generic[S]):
    """Every error of a spec, not only the first; ``spec`` is there only when there are none."""

    spec: S | None
    errors: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class Where:
    """Turns a key path into a 'line N: ' prefix and a dotted path; raises or collects errors."""

    def __init__(self, located: yaml_lines.LocatedYaml | None = None, collect: bool = False):
        self.located = located
        self.errors: list[SpecError] | None = [] if collect else None

    def __call__(self, *path) -> str:
        line = self.located.line_of(*path) if self.located else None
        return f"line {line}: " if line else ""

    def error(self, path: tuple, message: str, *, field: tuple | None = None) -> SpecError:
        """A SpecError for the key at ``path`` (its line); ``field`` when the fix is another key."""
        key = field if field is not None else path
        return SpecError(f"{self(*path)}{message}", path=".".join(map(str, key)) or None)

    def checked(self, build, raw) -> Checked:
        """``build(raw, self)`` collecting every error (``collect=True``); the spec only if none."""
        spec = None
        with self.guard():
            spec = build(raw, self)
        return Checked(None if self.errors else spec, list(self.errors or []))

    def report(self, error: SpecError) -> None:
        """Raise ``error`` (the default), or record it and let the reading go on (collecting)."""
        if self.errors is None:
            raise error
        self.errors.append(error)

    @contextmanager
    def guard(self):
        """One independent check: an error inside it is reported (raised, or recorded)."""
        try:
            yield
        except SpecError as exc:
            if self.errors is None:
                raise
            self.errors.append(exc)


# ----------------------------------------------------------------------------- parameters
def normalize_value(inp: PipelineInput, value, prefix: str = "") -> object:
    """Return ``value`` in the type the component wants, or raise a one-line SpecError."""
    name = f"parameters.{inp.name}"

    def fail(message: str) -> SpecError:
        return SpecError(f"{prefix}{name}{message}", path=name)

    if value is None:
        raise fail(" is empty; give a value or remove the line.")
    if inp.is_asset:
        if not isinstance(value, str) or not value.strip():
            raise fail(f" must be a path or azureml:// URI (got {value!r}).")
        return value
    if inp.type == "string":
        if isinstance(value, (dict, list)):
            raise fail(f" must be a single value, not a {type(value).__name__}.")
        if inp.is_bool:
            if isinstance(value, bool):
                return "true" if value else "false"
            text = str(value).strip().lower()
            if text in ("true", "false"):
                return text
            raise fail(f" must be true or false (got {value!r}).")
        text = str(value)
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        if inp.enum and text not in inp.enum:
            match = closest(text, inp.enum)
            hint = f" Did you mean '{match}'?" if match else ""
            raise fail(f" must be one of {', '.join(inp.enum)} (got {value!r}).{hint}")
        return text
    if inp.type == "integer":
        number = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                raise fail(f" must be a whole number (got {value!r}).") from None
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        if not is_int(number):
            raise fail(f" must be a whole number (got {value!r}).")
        _check_range(inp, number, fail)
        return number
    if inp.type == "number":
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise fail(f" must be a number (got {value!r}).") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise fail(f" must be a number (got {value!r}).")
        number = float(number)
        _check_range(inp, number, fail)
        return number
    raise fail(f": unsupported input type {inp.type}.")  # pragma: no cover


def _check_range(inp: PipelineInput, number, fail) -> None:
    if inp.sentinel is not None and number == inp.sentinel:
        return
    also = ""
    if inp.sentinel is not None:
        meaning = inp.help.split(":", 1)[1].strip() if ":" in inp.help else "the default"
        also = f" (or {int(inp.sentinel)} for {meaning})"
    got = f"(got {format_value(number)})."
    if inp.minimum is not None:
        if inp.name in EXCLUSIVE_MINIMUM and number <= inp.minimum:
            raise fail(f" must be greater than {format_value(inp.minimum)} {got}")
        if number < inp.minimum:
            raise fail(f" must be at least {format_value(inp.minimum)}{also} {got}")
    top = MAXIMUM.get(inp.name)
    if top is not None and number >= top and not (inp.name == "learning_rate" and number == top):
        raise fail(f" must be below {format_value(top)} {got}")


def check_parameters(params: dict, where: Where | None = None) -> dict[str, object]:
    """Check user parameters against the full pipeline input table; return normalized values."""
    where = where or Where()
    if not isinstance(params, dict):
        raise where.error(("parameters",), "'parameters' must be a mapping of name: value.")
    out: dict[str, object] = {}
    for key, value in params.items():
        with where.guard():
            out[str(key)] = _check_parameter(str(key), value, where("parameters", key))
    return out


def _check_parameter(key: str, value, prefix: str) -> object:
    inp = PIPELINE_INPUTS.get(key)
    path = f"parameters.{key}"
    if inp is None:
        match = closest(key, PIPELINE_INPUTS)
        hint = f"did you mean '{match}'?" if match else "run %azml_finetune --list-parameters to see them all."
        raise SpecError(f"{prefix}unknown parameter '{key}': not an input of chat_completion_pipeline; {hint}",
                        path=path)
    if inp.set_from:
        raise SpecError(
            f"{prefix}parameter '{key}' is set from the spec's '{inp.set_from}:' section; move it there "
            f"(see %%azml_finetune -h).",
            path=path,
        )
    return normalize_value(inp, value, prefix)


def split_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """'name', 'name:3', 'name@latest' -> (name, version, label). URIs and paths pass through whole."""
    if "://" in ref or ref.startswith((".", "/", "~")):
        return ref, None, None
    if "@" in ref:
        name, label = ref.rsplit("@", 1)
        return name, None, label or "latest"
    if ":" in ref:
        name, version = ref.rsplit(":", 1)
        return name, version, None
    return ref, None, "latest"


# ----------------------------------------------------------------------------- scalar checks of spec keys
def positive_int(value, label: str, prefix: str, minimum: int = 1) -> int:
    """``label`` is the key's dotted path, so it is the error's path too."""
    if not is_int(value):
        raise SpecError(f"{prefix}{label} must be a whole number (got {value!r}).", path=label)
    if value < minimum:
        raise SpecError(f"{prefix}{label} must be at least {minimum} (got {value}).", path=label)
    return value


def nonempty_str(value, label: str, prefix: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{prefix}{label} must be a non-empty string (got {value!r}).", path=label)
    return value.strip()


NAME_RULE = "3-32 characters: a letter first, then letters, digits or hyphens, not ending with a hyphen"
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]")


def check_endpoint_name(name: str, label: str = "endpoint name", prefix: str = "", path: str = "endpoint") -> str:
    """An endpoint or deployment name as Azure ML accepts it (the local backend uses the same rule: it names files)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SpecError(f"{prefix}{label} '{name}' is not valid on Azure ML: {NAME_RULE}.", path=path)
    return name
