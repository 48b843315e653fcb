"""Widget forms for connect, fine-tune and deploy.

Each form edits the same object the magics read from YAML or options, and checks it as you type
with the same functions (``spec.finetune_from_dict``, ``normalize_value``, ``deploy_from_dict``):
a problem is the spec's own one-line message, shown next to the field it names. Nothing is created
until a button is pressed and the whole spec passed.
"""

from __future__ import annotations

import html
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets

from ..errors import AzmlError, SpecError
from ..pipeline_inputs import MAIN_PARAMETERS, PIPELINE_INPUTS, user_settable
from ..spec import (
    COMPUTE_KEYS,
    COMPUTE_TIERS,
    DATA_KEYS,
    DEPLOY_KEYS,
    SPLITS,
    TOP_KEYS,
    ComputeSpec,
    DataSpec,
    DeploySpec,
    FinetuneSpec,
    closest,
    deploy_from_dict,
    finetune_from_dict,
    normalize_value,
)

# VM sizes offered after the model's allow list (the user may type any other).
COMMON_FINETUNE_SIZES = (
    "Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4",
    "Standard_ND96asr_v4", "Standard_ND96amsr_A100_v4", "Standard_NC6s_v3", "Standard_NC12s_v3",
    "Standard_NC24s_v3", "Standard_ND40rs_v2",
)
COMMON_INFERENCE_SIZES = (
    "Standard_NC6s_v3", "Standard_NC12s_v3", "Standard_NC24s_v3", "Standard_NC24ads_A100_v4",
    "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4", "Standard_ND96asr_v4", "Standard_DS3_v2",
)
LABEL_WIDTH = "230px"


@dataclass
class Field:
    """One input of a form: where it goes in the spec, its widget and its error line."""

    path: str  # "model", "data.fraction", "parameters.learning_rate", ...
    widget: widgets.Widget
    error: widgets.HTML
    row: widgets.Box

    @property
    def text(self) -> str:
        value = self.widget.value
        return "" if value is None else str(value).strip()


class Form:
    """Fields, their error lines, a status line; shared by the three forms."""

    def __init__(self):
        self.fields: dict[str, Field] = {}
        self.errors: dict[str, str] = {}
        self.status = widgets.HTML("")
        self.result = widgets.HTML("")
        self._quiet = False  # no validation while the form fills itself
        self.widget: widgets.Widget | None = None

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def add(self, path: str, widget: widgets.Widget, label: str, help: str = "") -> Field:
        label_w = widgets.HTML(f"<span title='{html.escape(help, quote=True)}'>{html.escape(label)}</span>",
                               layout=widgets.Layout(width=LABEL_WIDTH))
        error = widgets.HTML("", layout=widgets.Layout(margin="0 0 0 8px"))
        row = widgets.HBox([label_w, widget, error], layout=widgets.Layout(align_items="center"))
        row.add_class("azml-field-" + re.sub(r"[^A-Za-z0-9_-]", "-", path))  # a handle for browser tests
        field = Field(path, widget, error, row)
        self.fields[path] = field
        widget.observe(lambda _change: self._changed(path), names="value")
        return field

    def text(self, path: str, label: str, value: str = "", help: str = "", placeholder: str = "") -> Field:
        return self.add(path, widgets.Text(value=value, placeholder=placeholder), label, help)

    def combo(self, path: str, label: str, value: str, options, help: str = "", continuous: bool = True) -> Field:
        w = widgets.Combobox(value=value, options=tuple(options), ensure_option=False, continuous_update=continuous)
        return self.add(path, w, label, help)

    def dropdown(self, path: str, label: str, value: str, options, help: str = "") -> Field:
        return self.add(path, widgets.Dropdown(value=value, options=tuple(options)), label, help)

    def rows(self, prefix: str) -> list[widgets.Box]:
        return [f.row for p, f in self.fields.items() if p.startswith(prefix)]

    def _changed(self, path: str) -> None:
        if not self._quiet:
            self.validate()

    def validate(self):  # pragma: no cover - every form overrides it
        raise NotImplementedError

    def show_errors(self, errors: dict[str, str]) -> None:
        """Put each message next to its field; the rest in the status line."""
        self.errors = errors
        for path, field in self.fields.items():
            message = errors.get(path)
            field.error.value = f"<span style='color:#cf222e'>{html.escape(message)}</span>" if message else ""
        loose = [m for p, m in errors.items() if p not in self.fields]
        if loose:
            self.status.value = "<span style='color:#cf222e'>" + "<br>".join(html.escape(m) for m in loose) + "</span>"
        elif errors:
            self.status.value = f"<span style='color:#cf222e'>{len(errors)} field(s) to fix</span>"
        else:
            self.status.value = "<span style='color:#1a7f37'>✔ valid</span>"

    def field_of(self, message: str, candidates=None) -> str:
        """The field a spec message is about: the first field path it names (else '')."""
        best, at = "", len(message) + 1
        for path in candidates or self.fields:
            match = re.search(rf"(?<![\w.]){re.escape(path)}(?![\w])", message)
            if match and match.start() < at:
                best, at = path, match.start()
        return best

    def say(self, text: str, error: bool = False) -> None:
        color = "#cf222e" if error else "inherit"
        self.status.value = f"<span style='color:{color}'>{html.escape(text)}</span>"


def _parse_number(text: str):
    """'3' -> 3, '5e-6' -> 5e-06, else the text itself (the spec check then says what is wrong)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fmt_param(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ============================================================================= fine-tune
class FinetuneForm(Form):
    """The ``%%azml_finetune`` spec as a form: model, data, compute, parameters, advanced inputs."""

    def __init__(self, session, cell_text: str | None = "", *, background: bool = True):
        super().__init__()
        self.session = session
        self.background = background
        self.spec: FinetuneSpec | None = None
        self.plan = None
        self.job = None
        self.view = None
        self.model_info = None
        self.load_problems: list[str] = []
        self._baseline: dict[str, object] = {}  # parameter -> value not written to the spec
        self._explicit: set[str] = set()  # parameters the loaded YAML set (kept even at their default)
        self._model_cache: dict[str, object] = {}
        self._build()
        if cell_text and cell_text.strip():
            self.load_yaml(cell_text)
        else:
            self._model_changed()
            self.validate()

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        data, compute = DataSpec(), ComputeSpec()
        models = self._model_names()
        self.combo("model", "model", "Phi-3-mini-4k-instruct" if not models else models[0], models,
                   "registry name, azureml:// id, hub id or local path", continuous=False)
        self.model_note = widgets.HTML("")
        self.text("data.source", "data source", data.source, "hub dataset id, or a folder of JSON-lines files")
        self.text("data.fraction", "fraction of each split", str(data.fraction), "0 < fraction <= 1")
        self.text("data.rows", "or rows per split", "", "instead of a fraction", placeholder="(use the fraction)")
        self.dropdown("data.train_split", "train split", data.train_split, SPLITS)
        self.dropdown("data.test_split", "test split", data.test_split, SPLITS)
        self.text("data.train", "train file (local files)", "", placeholder="path.jsonl")
        self.text("data.test", "test file (local files)", "", placeholder="path.jsonl")
        self.text("compute.name", "cluster name", compute.name)
        self.combo("compute.size", "VM size", compute.size, COMMON_FINETUNE_SIZES, "the model's allow list comes first")
        self.text("compute.max_instances", "max nodes", str(compute.max_instances))
        for name in MAIN_PARAMETERS:
            self._param_field(name)
        # advanced
        self.text("data.validation", "validation file", "", placeholder="path.jsonl")
        self.text("data.folder", "data folder", data.folder)
        self.dropdown("data.policy", "bad rows", data.policy, ("strict", "drop"), "stop on bad rows, or drop them")
        self.text("compute.min_instances", "min nodes", str(compute.min_instances))
        self.dropdown("compute.tier", "tier", compute.tier, COMPUTE_TIERS)
        self.text("compute.idle_time_before_scale_down", "idle seconds before scale-down",
                  str(compute.idle_time_before_scale_down))
        self.text("experiment", "experiment", "", placeholder="chat_completion_<model>")
        self.text("name", "job display name", "", placeholder="(derived from the parameters)")
        self.text("pipeline_version", "pipeline version", "", placeholder="(latest)")
        self.text("tags", "tags", "", placeholder="key=value, key2=value2")
        for name in user_settable():
            if name not in MAIN_PARAMETERS:
                self._param_field(name)

        self.submit_button = widgets.Button(description="Submit", button_style="primary", icon="play")
        self.check_button = widgets.Button(description="Check", tooltip="Show the effective parameters; create nothing")
        self.yaml_button = widgets.Button(description="Show YAML")
        self.load_button = widgets.Button(description="Load YAML into the form")
        self.submit_button.on_click(lambda _: self.submit())
        self.check_button.on_click(lambda _: self.check())
        self.yaml_button.on_click(lambda _: self.show_yaml())
        self.load_button.on_click(lambda _: self.load_yaml(self.yaml_text.value))
        self.yaml_text = widgets.Textarea(layout=widgets.Layout(width="100%", height="16em"))
        self.yaml_box = widgets.VBox([self.yaml_text, self.load_button], layout=widgets.Layout(display="none"))

        def heading(text):
            return widgets.HTML(f"<div style='margin-top:6px;border-bottom:1px solid #d0d7de'><b>{text}</b></div>")

        main = [heading("Model"), self.fields["model"].row, self.model_note, heading("Data")]
        main += [self.fields[p].row for p in ("data.source", "data.fraction", "data.rows", "data.train_split",
                                               "data.test_split", "data.train", "data.test")]
        main += [heading("Compute (Azure)")]
        main += [self.fields[p].row for p in ("compute.name", "compute.size", "compute.max_instances")]
        main += [heading("Main parameters")] + [self.fields[f"parameters.{n}"].row for n in MAIN_PARAMETERS]
        advanced_paths = ["data.validation", "data.folder", "data.policy", "compute.min_instances", "compute.tier",
                          "compute.idle_time_before_scale_down", "experiment", "name", "pipeline_version", "tags"]
        advanced_paths += [f"parameters.{n}" for n in user_settable() if n not in MAIN_PARAMETERS]
        self.advanced = widgets.Accordion(children=[widgets.VBox([self.fields[p].row for p in advanced_paths])],
                                          titles=("Advanced: every pipeline input",))
        self.advanced.selected_index = None
        buttons = widgets.HBox([self.submit_button, self.check_button, self.yaml_button])
        self.widget = widgets.VBox(
            [widgets.HTML("<b>Fine-tune</b> (the same spec as the %%azml_finetune YAML)"),
             widgets.VBox(main), self.advanced, buttons, self.status, self.yaml_box, self.result]
        )
        self.widget.add_class("azml-form")
        self.fields["model"].widget.observe(lambda _c: self._model_changed(), names="value")
        self.fields["data.rows"].widget.observe(lambda _c: self._rows_changed(), names="value")

    def _param_field(self, name: str) -> Field:
        inp = PIPELINE_INPUTS[name]
        path = f"parameters.{name}"
        default = None if inp.default is None else normalize_value(inp, inp.default)
        self._baseline[name] = default
        if inp.is_bool:
            return self.add(path, widgets.Checkbox(value=default == "true", indent=False), name, inp.help)
        if inp.enum:
            return self.dropdown(path, name, str(default), inp.enum, inp.help)
        return self.text(path, name, _fmt_param(default), inp.help)

    def _model_names(self) -> list[str]:
        if not self.session.connected:
            return []
        try:
            return [m.name for m in self.session.models()]
        except AzmlError:
            return []

    # ------------------------------------------------------------------ model info
    def _model_changed(self) -> None:
        """Load the model's card (when connected): allow list first in the size list, model defaults."""
        name = self.fields["model"].text
        self.model_info = None
        info = None
        if name and self.session.connected:
            if name not in self._model_cache:
                try:
                    self._model_cache[name] = self.session.model(name)
                except AzmlError as exc:
                    self._model_cache[name] = exc
            info = self._model_cache[name]
        if isinstance(info, AzmlError):
            self.model_note.value = f"<span style='color:#cf222e'>{html.escape(info.message)}</span>"
            return
        self.model_info = info
        allow = list(info.finetune_allow_list or []) if info else []
        size = self.fields["compute.size"].widget
        size.options = tuple(allow + [s for s in COMMON_FINETUNE_SIZES if s not in allow])
        if allow and not self._quiet and size.value not in allow and size.value == ComputeSpec().size:
            size.value = allow[0]
        self._apply_model_defaults(info.model_defaults if info else {})
        if info:
            note = f"{info.name} version {info.version}"
            if allow:
                note += f"; fine-tune VM sizes: {', '.join(allow)}"
            self.model_note.value = f"<small>{html.escape(note)}</small>"
        else:
            self.model_note.value = ""

    def _apply_model_defaults(self, model_defaults: dict) -> None:
        """Fields still at their baseline move to the model's default (which the spec then leaves out)."""
        quiet, self._quiet = self._quiet, True
        try:
            for name, inp in PIPELINE_INPUTS.items():
                if inp.set_from or name not in self._baseline:
                    continue
                new = inp.default
                if name in model_defaults:
                    try:
                        new = normalize_value(inp, model_defaults[name])
                    except SpecError:
                        pass
                new = None if new is None else normalize_value(inp, new)
                at_baseline = self._param_value(name) == self._baseline[name]
                self._baseline[name] = new
                if at_baseline and name not in self._explicit:
                    self._set_param(name, new)
        finally:
            self._quiet = quiet
        self.validate()

    def _rows_changed(self) -> None:
        self.fields["data.fraction"].widget.disabled = bool(self.fields["data.rows"].text)

    # ------------------------------------------------------------------ values
    def _param_value(self, name: str):
        field = self.fields[f"parameters.{name}"]
        inp = PIPELINE_INPUTS[name]
        if inp.is_bool:
            return "true" if field.widget.value else "false"
        if inp.enum:
            return field.widget.value
        text = field.text
        if not text:
            return None
        if inp.type in ("integer", "number"):
            value = _parse_number(text)
            try:
                return normalize_value(inp, value)
            except SpecError:
                return value
        return text

    def _set_param(self, name: str, value) -> None:
        field = self.fields[f"parameters.{name}"]
        inp = PIPELINE_INPUTS[name]
        if inp.is_bool:
            field.widget.value = str(value).lower() == "true"
        elif inp.enum:
            field.widget.value = str(value) if str(value) in inp.enum else field.widget.value
        else:
            field.widget.value = _fmt_param(value)

    def parameters(self) -> dict[str, object]:
        """Parameters for the spec: those that differ from the baseline, plus those the YAML named."""
        out = {}
        for name in self._baseline:
            value = self._param_value(name)
            if name in self._explicit or value != self._baseline[name]:
                out[name] = value
        return out

    def to_dict(self) -> dict:
        """The raw spec the form holds (before checking), in the YAML's shape."""
        f = self.fields
        raw: dict = {"model": f["model"].text}
        data_defaults, compute_defaults = DataSpec(), ComputeSpec()
        data: dict = {}
        for key in ("source", "train_split", "test_split", "train", "test", "validation", "folder", "policy"):
            text = f[f"data.{key}"].text
            if text and text != (getattr(data_defaults, key) or ""):
                data[key] = text
        rows = f["data.rows"].text
        if rows:
            data["rows"] = _parse_number(rows)
        else:
            fraction = f["data.fraction"].text
            value = _parse_number(fraction) if fraction else None
            if value != data_defaults.fraction:
                data["fraction"] = value
        if data:
            raw["data"] = data
        compute: dict = {}
        for key in ("name", "size", "tier"):
            text = f[f"compute.{key}"].text
            if text != str(getattr(compute_defaults, key)):
                compute[key] = text
        for key in ("min_instances", "max_instances", "idle_time_before_scale_down"):
            text = f[f"compute.{key}"].text
            value = _parse_number(text) if text else None
            if value != getattr(compute_defaults, key):
                compute[key] = value
        if compute:
            raw["compute"] = compute
        params = self.parameters()
        if params:
            raw["parameters"] = params
        for key in ("experiment", "name", "pipeline_version"):
            if f[key].text:
                raw[key] = f[key].text
        tags = self._tags()
        if tags:
            raw["tags"] = tags
        return raw

    def _tags(self) -> dict[str, str] | str:
        text = self.fields["tags"].text
        tags: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "=" not in part:
                return text  # the check below names the problem
            key, value = part.split("=", 1)
            tags[key.strip()] = value.strip()
        return tags

    # ------------------------------------------------------------------ checking
    def validate(self) -> FinetuneSpec | None:
        """Check every field with the spec's own rules; returns the spec when all pass."""
        raw = self.to_dict()
        errors: dict[str, str] = {}
        model = raw.get("model") or "model"
        if not raw.get("model"):
            errors["model"] = "name a model, e.g. Phi-3-mini-4k-instruct."
        for name, value in raw.get("parameters", {}).items():
            try:
                normalize_value(PIPELINE_INPUTS[name], value)
            except SpecError as exc:
                errors[f"parameters.{name}"] = exc.message
        sections = {"data": "data.", "compute": "compute.", "experiment": "experiment", "name": "name",
                    "pipeline_version": "pipeline_version"}
        for key, prefix in sections.items():
            if key not in raw:
                continue
            try:
                finetune_from_dict({"model": model, key: raw[key]})
            except SpecError as exc:
                errors[self.field_of(exc.message, [p for p in self.fields if p.startswith(prefix)]) or key] = exc.message
        if isinstance(raw.get("tags"), str):
            errors["tags"] = "tags are key=value pairs separated by commas."
        spec = None
        if not errors:
            try:
                spec = finetune_from_dict(raw)
            except SpecError as exc:
                errors[self.field_of(exc.message) or "spec"] = exc.message
        if spec is not None:
            allow = (self.model_info.finetune_allow_list or []) if self.model_info else []
            if allow and spec.compute.size not in allow:
                errors["compute.size"] = (
                    f"{spec.compute.size} is not in {self.model_info.name}'s fine-tune allow list; "
                    f"use one of {', '.join(allow)}."
                )
                spec = None
        for problem in self.load_problems:
            errors.setdefault(f"load:{problem}", problem)
        self.spec = spec if not self.load_problems else None
        self.show_errors(errors)
        self.submit_button.disabled = self.spec is None
        self.check_button.disabled = self.spec is None
        return self.spec

    # ------------------------------------------------------------------ YAML
    def show_yaml(self) -> str:
        """Show the spec as YAML (the same text a %%azml_finetune cell takes); it loads back."""
        spec = self.validate()
        text = spec.to_yaml() if spec is not None else _yaml_dump(self.to_dict())
        self.yaml_text.value = text
        self.yaml_box.layout.display = "flex"
        return text

    def load_yaml(self, text: str) -> None:
        """Fill the form from a YAML spec; what does not fit a field is reported, not dropped silently."""
        import yaml

        try:
            raw = yaml.safe_load(text) if text and text.strip() else {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            self.say(f"the YAML does not parse{where}; fix it and load again.", error=True)
            return
        if not isinstance(raw, dict):
            self.say("the YAML must be a mapping such as 'model: Phi-3-mini-4k-instruct'.", error=True)
            return
        self.load_problems = _unknown_keys(raw)
        self._quiet = True
        try:
            self._fill(raw)
        finally:
            self._quiet = False
        self._rows_changed()
        self._model_changed()
        self.validate()

    def _fill(self, raw: dict) -> None:
        f = self.fields
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        if isinstance(raw.get("data"), str):
            data = {"source": raw["data"]}
        compute = raw.get("compute") if isinstance(raw.get("compute"), dict) else {}
        if isinstance(raw.get("compute"), str):
            compute = {"name": raw["compute"]}
        f["model"].widget.value = str(raw.get("model") or "")
        for key, default in vars(DataSpec()).items():
            value = data.get(key, default)
            if key == "fraction" and "rows" in data and "fraction" not in data:
                value = default
            self._set_text(f"data.{key}", value)
        for key, default in vars(ComputeSpec()).items():
            self._set_text(f"compute.{key}", compute.get(key, default))
        params = raw.get("parameters") if isinstance(raw.get("parameters"), dict) else {}
        self._explicit = {k for k in params if k in self._baseline}
        for name in self._baseline:
            value = params.get(name, self._baseline[name])
            if name in params:
                try:
                    value = normalize_value(PIPELINE_INPUTS[name], value)
                except SpecError:
                    pass
            self._set_param_raw(name, value)
        for key in ("experiment", "name", "pipeline_version"):
            self._set_text(key, raw.get(key))
        tags = raw.get("tags")
        self._set_text("tags", ", ".join(f"{k}={v}" for k, v in tags.items()) if isinstance(tags, dict) else tags)

    def _set_text(self, path: str, value) -> None:
        widget = self.fields[path].widget
        text = "" if value is None else str(value)
        if isinstance(widget, widgets.Dropdown):
            if text not in widget.options:
                widget.options = tuple(widget.options) + (text,)
        widget.value = text

    def _set_param_raw(self, name: str, value) -> None:
        field = self.fields[f"parameters.{name}"]
        inp = PIPELINE_INPUTS[name]
        if inp.is_bool and str(value).lower() in ("true", "false"):
            field.widget.value = str(value).lower() == "true"
        elif inp.enum and not inp.is_bool:
            self._set_text(f"parameters.{name}", value)
        elif inp.is_bool:  # a broken bool: show it as text in the status (the check names it)
            self.load_problems.append(f"parameters.{name} must be true or false (got {value!r}).")
        else:
            field.widget.value = _fmt_param(value)

    # ------------------------------------------------------------------ actions
    def check(self):
        """Plan without creating anything: the effective parameters table."""
        spec = self.validate()
        if spec is None:
            return None
        from ..tables import effective_table

        try:
            self.plan = self.session.plan_finetune(spec)
        except AzmlError as exc:
            self.say(exc.message, error=True)
            return None
        self.result.value = effective_table(self.plan)._repr_html_()
        return self.plan

    def submit(self):
        """Check everything, submit, and watch the job in the form."""
        spec = self.validate()
        if spec is None:
            return None
        from .jobview import JobView

        self.submit_button.disabled = True
        self.say("checking the spec, the model, the compute and the data…")
        try:
            self.plan = self.session.plan_finetune(spec)
            self.job = self.session.finetune(spec, plan=self.plan)
        except AzmlError as exc:
            self.say(exc.message, error=True)
            self.submit_button.disabled = False
            return None
        self.say(f"submitted {self.job.name}")
        self.view = JobView(self.session, self.job.name, target=self.result)
        self.view.run(background=self.background)
        return self.job


def _unknown_keys(raw: dict) -> list[str]:
    """Keys of a loaded spec the form has no place for, each with the closest valid key."""
    problems = []

    def check(section: dict, allowed, label: str):
        for key in section:
            if key not in allowed:
                match = closest(str(key), allowed)
                hint = f"; did you mean '{match}'?" if match else ""
                problems.append(f"unknown key '{key}' in {label}{hint}")

    check(raw, TOP_KEYS, "the spec")
    if isinstance(raw.get("data"), dict):
        check(raw["data"], DATA_KEYS, "data")
    if isinstance(raw.get("compute"), dict):
        check(raw["compute"], COMPUTE_KEYS, "compute")
    if isinstance(raw.get("parameters"), dict):
        check(raw["parameters"], set(user_settable()), "parameters")
    return problems


def _yaml_dump(raw: dict) -> str:
    import yaml

    return yaml.safe_dump(raw, sort_keys=False, default_flow_style=False)


def finetune_form(session, cell_text: str | None = "") -> FinetuneForm:
    """What ``%%azml_finetune --form`` (or an empty cell) displays."""
    return FinetuneForm(session, cell_text)


# ============================================================================= connect
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
CREDENTIALS = ("auto", "default", "cli", "device-code", "managed-identity", "browser")


class ConnectForm(Form):
    """Pick a backend and its settings, then connect."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.workspace = None
        names = _backend_names()
        default = session.default_backend if session.default_backend in names else names[0]
        self.dropdown("backend", "backend", default, names, "local: this machine; azure: an Azure ML workspace")
        self.text("home", "home folder", str(session.home), "state, jobs, the MLflow store and endpoints")
        self.text("subscription_id", "subscription id", "", placeholder="(from config.json)")
        self.text("resource_group", "resource group", "", placeholder="(from config.json)")
        self.text("workspace_name", "workspace", "", placeholder="(from config.json)")
        self.text("config_path", "config.json", "", placeholder="(searched like MLClient.from_config)")
        self.text("registry", "model registry", session.registry)
        self.dropdown("credential", "credential", "auto", CREDENTIALS)
        self.connect_button = widgets.Button(description="Connect", button_style="primary", icon="plug")
        self.connect_button.on_click(lambda _: self.connect())
        self.azure_box = widgets.VBox(self.rows("subscription_id") + self.rows("resource_group")
                                      + self.rows("workspace_name") + self.rows("config_path")
                                      + self.rows("registry") + self.rows("credential"))
        self.widget = widgets.VBox([widgets.HTML("<b>Connect</b>"), self.fields["backend"].row, self.fields["home"].row,
                                    self.azure_box, self.connect_button, self.status, self.result])
        self.widget.add_class("azml-form")
        self.validate()

    def options(self) -> dict:
        keys = ("home", "subscription_id", "resource_group", "workspace_name", "config_path", "registry", "credential")
        backend = self.fields["backend"].text
        out = {k: self.fields[k].text or None for k in keys}
        if backend != "azure":
            out = {"home": out["home"]}
        return out

    def validate(self) -> dict | None:
        backend = self.fields["backend"].text
        self.azure_box.layout.display = "flex" if backend == "azure" else "none"
        errors: dict[str, str] = {}
        opts = self.options()
        if not opts.get("home"):
            errors["home"] = "give a folder for state and local jobs, e.g. ~/.azml_magics."
        if backend == "azure":
            sub = opts.get("subscription_id")
            if sub and not GUID.fullmatch(sub):
                errors["subscription_id"] = "a subscription id is a GUID like 00000000-0000-0000-0000-000000000000."
            given = [k for k in ("subscription_id", "resource_group", "workspace_name") if opts.get(k)]
            if given and len(given) < 3:
                for k in ("subscription_id", "resource_group", "workspace_name"):
                    if not opts.get(k):
                        errors.setdefault(k, "give subscription, resource group and workspace together, or none (config.json).")
            config = opts.get("config_path")
            if config and not Path(config).expanduser().exists():
                errors["config_path"] = f"file not found: {config}"
        self.show_errors(errors)
        self.connect_button.disabled = bool(errors)
        return None if errors else opts

    def connect(self):
        opts = self.validate()
        if opts is None:
            return None
        from ..tables import Table

        self.say("connecting…")
        try:
            ws = self.session.connect(self.fields["backend"].text, **opts)
        except AzmlError as exc:
            self.say(exc.message, error=True)
            return None
        self.workspace = ws
        rows = [["backend", ws.backend], ["workspace", ws.name]] + [[k, v] for k, v in ws.details.items()]
        self.say(f"connected to {ws.backend}: {ws.name}")
        self.result.value = Table(["", ""], rows, title="Connected")._repr_html_()
        return ws


def _backend_names() -> list[str]:
    from .. import backends

    names = sorted(backends.available())
    return names or ["local", "azure"]


def connect_form(session) -> ConnectForm:
    """What ``%azml_connect --form`` displays."""
    return ConnectForm(session)


# ============================================================================= deploy
class DeployForm(Form):
    """Deploy a registered model to an endpoint (the ``%azml_deploy`` options as a form)."""

    def __init__(self, session, *, threaded: bool = True):
        super().__init__()
        self.session = session
        self.threaded = threaded
        self.endpoint = None
        self.spec: DeploySpec | None = None
        self._worker: threading.Thread | None = None
        d = DeploySpec(model="last")
        models = self._registered()
        self.combo("model", "registered model", models[-1] if models else "last", models + ["last"],
                   "name:version, name@latest, or 'last' (the last one registered here)")
        self.text("endpoint", "endpoint name", "", placeholder="(ultrachat-completion-<time>)")
        self.text("deployment", "deployment", d.deployment)
        self.combo("instance_type", "VM size", d.instance_type, COMMON_INFERENCE_SIZES)
        self.text("instance_count", "instances", str(d.instance_count))
        self.text("request_timeout_ms", "request timeout (ms)", str(d.request_timeout_ms))
        self.deploy_button = widgets.Button(description="Deploy", button_style="primary", icon="cloud-upload")
        self.deploy_button.on_click(lambda _: self.deploy())
        self.widget = widgets.VBox([widgets.HTML("<b>Deploy</b>"), *[f.row for f in self.fields.values()],
                                    self.deploy_button, self.status, self.result])
        self.widget.add_class("azml-form")
        self.validate()

    def _registered(self) -> list[str]:
        state = self.session.state
        return [r.name for r in state.list("models")] if state is not None else []

    def to_dict(self) -> dict:
        raw: dict = {}
        for key in ("model", "endpoint", "deployment", "instance_type"):
            if self.fields[key].text:
                raw[key] = self.fields[key].text
        for key in ("instance_count", "request_timeout_ms"):
            text = self.fields[key].text
            if text:
                raw[key] = _parse_number(text)
        return raw

    def validate(self) -> DeploySpec | None:
        errors: dict[str, str] = {}
        raw = self.to_dict()
        if not raw.get("model"):
            errors["model"] = "name a registered model, e.g. my-model:3, or 'last'."
        for key in DEPLOY_KEYS - {"model"}:
            if key in raw:
                try:
                    deploy_from_dict({"model": "m", key: raw[key]})
                except SpecError as exc:
                    errors[key] = exc.message
        spec = None
        if not errors:
            try:
                spec = deploy_from_dict(raw)
            except SpecError as exc:
                errors[self.field_of(exc.message) or "spec"] = exc.message
        self.spec = spec
        self.show_errors(errors)
        self.deploy_button.disabled = spec is None
        return spec

    def deploy(self):
        """Deploy in a worker thread (it takes minutes on Azure); the form shows progress and the result."""
        spec = self.validate()
        if spec is None:
            return None
        self.deploy_button.disabled = True
        self.say(f"deploying {spec.model}… (minutes on Azure)")
        if self.threaded:
            self._worker = threading.Thread(target=self._deploy, args=(spec,), name="azml-deploy", daemon=True)
            self._worker.start()
            return None
        return self._deploy(spec)

    def wait(self, timeout: float | None = None):
        if self._worker is not None:
            self._worker.join(timeout)
        return self.endpoint

    def _deploy(self, spec: DeploySpec):
        from ..tables import Table

        try:
            endpoint = self.session.deploy(spec)
        except Exception as exc:  # shown in the form: a worker thread has nowhere else to report
            self.say(exc.message if isinstance(exc, AzmlError) else f"{type(exc).__name__}: {exc}", error=True)
            self.deploy_button.disabled = False
            return None
        self.endpoint = endpoint
        rows = [["endpoint", endpoint.name], ["deployment", endpoint.deployment],
                ["scoring URI", endpoint.scoring_uri], ["state", endpoint.state]]
        notes = [f"Chat with it: %azml_chat {endpoint.name}", f"Delete it: %azml_delete {endpoint.name}"]
        self.result.value = Table(["", ""], rows, title="Deployed", notes=notes)._repr_html_()
        self.say(f"deployed {endpoint.name}")
        self.deploy_button.disabled = False
        return endpoint


def deploy_form(session) -> DeployForm:
    """What ``%azml_deploy --form`` displays."""
    return DeployForm(session)
