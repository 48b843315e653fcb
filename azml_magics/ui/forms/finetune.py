"""The ``%%azml_finetune`` spec as a form: model, data, compute, every pipeline input.

The form holds the same mapping a YAML cell holds and checks it with the spec's own reader
(``spec.check_finetune_dict``): every error comes back with its key's path, and each is shown at
the field of that path, all at once. Nothing is created until a button is pressed and the whole
spec passed.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from ... import yaml_lines
from ...display import message_html
from ...errors import AzmlError, SpecError
from ...pipeline_inputs import MAIN_PARAMETERS, PIPELINE_INPUTS, user_settable
from ...spec_modes import JOB_TIERS, MODES
from ...spec import (
    COMPUTE_KEYS,
    COMPUTE_TIERS,
    DATA_KEYS,
    SPLITS,
    ComputeSpec,
    DataSpec,
    FinetuneSpec,
    check_finetune_dict,
    normalize_value,
)
from .base import Field, Form, _fmt_param, _parse_number, backend_name, parse_tags
from .presets import COMMON_FINETUNE_SIZES, PRESET_NAMES, fill_local_data, fill_preset, insert_cell_link

# The sections' keys the form holds as numbers (the rest are text).
NUMBER_KEYS = {"data.fraction", "data.rows", "compute.min_instances", "compute.max_instances",
               "compute.idle_time_before_scale_down"}


class FinetuneForm(Form):
    """The ``%%azml_finetune`` spec as a form: model, data, compute, parameters, advanced inputs."""

    title = "fine-tune"

    def __init__(self, session, cell_text: str | None = "", *, background: bool = True, first_line: int = 1):
        super().__init__()
        self.session = session
        self.background = background
        self.spec: FinetuneSpec | None = None
        self.plan = None
        self.job = None
        self.view = None
        self.model_info = None
        self.load_problems: list[SpecError] = []  # what the loaded YAML had that no field can hold
        self._baseline: dict[str, object] = {}  # parameter -> value not written to the spec
        self._explicit: set[str] = set()  # parameters the loaded YAML set (kept even at their default)
        self._model_cache: dict[str, object] = {}
        self._build()
        if cell_text and cell_text.strip():
            self.load_yaml(cell_text, first_line)
        else:
            fill_local_data(self, {})
            self._model_changed()
            self.validate()

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        data, compute = DataSpec(), ComputeSpec()
        models = self._model_names()
        self.combo("model", "model", "Phi-4" if not models else models[0], models,
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
        self.dropdown("mode", "mode", "", ("",) + MODES, "empty: from the model card (serverless where it offers it)")
        self.dropdown("compute.job_tier", "queue tier (mode job)", "", ("",) + JOB_TIERS)
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

        self.preset_picker = widgets.Dropdown(options=("(choose a preset)",) + PRESET_NAMES, description="preset")
        self.preset_picker.add_class("azml-preset")
        self.preset_picker.observe(lambda c: c["new"] in PRESET_NAMES and fill_preset(self, c["new"]), names="value")
        self.data_note = widgets.HTML("")
        self.insert_link = widgets.HTML(insert_cell_link(None))
        main = [self.preset_picker, heading("Model"), self.fields["model"].row, self.model_note, heading("Data"),
                self.data_note]
        main += [self.fields[p].row for p in ("data.source", "data.fraction", "data.rows", "data.train_split",
                                               "data.test_split", "data.train", "data.test")]
        compute_rows = [heading("Compute (Azure)")] + [
            self.fields[p].row for p in ("compute.name", "compute.size", "compute.max_instances")]
        if backend_name(self.session) != "local":  # the local backend runs on this machine: no cluster to pick
            main += compute_rows
        main += [heading("Main parameters")] + [self.fields[f"parameters.{n}"].row for n in MAIN_PARAMETERS]
        advanced_paths = ["data.validation", "data.folder", "data.policy"]
        if backend_name(self.session) != "local":
            advanced_paths += ["mode", "compute.min_instances", "compute.tier", "compute.idle_time_before_scale_down",
                               "compute.job_tier"]
        advanced_paths += ["experiment", "name", "pipeline_version", "tags"]
        advanced_paths += [f"parameters.{n}" for n in user_settable() if n not in MAIN_PARAMETERS]
        self.advanced = widgets.Accordion(children=[widgets.VBox([self.fields[p].row for p in advanced_paths])],
                                          titles=("Advanced: every pipeline input",))
        self.advanced.selected_index = None
        buttons = widgets.HBox([self.submit_button, self.check_button, self.yaml_button, self.insert_link])
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
        if name and (self.session.connected or self.session.default_backend == "local"):  # local: cheap to ask
            if name not in self._model_cache:
                try:
                    self._model_cache[name] = self.session.model(name)
                except AzmlError as exc:
                    self._model_cache[name] = exc
            info = self._model_cache[name]
        self.model_error = info.message if isinstance(info, AzmlError) else None
        if isinstance(info, AzmlError):
            self.model_note.value = message_html(info.message, "error")
            self.validate()
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

    def _lora_fields(self) -> None:
        """LoRA's own inputs are inactive while LoRA is off (their values are kept, not sent)."""
        for name in ("lora_r", "lora_alpha", "lora_dropout", "merge_lora_weights"):
            self.fields[f"parameters.{name}"].widget.disabled = not self.fields["parameters.apply_lora"].widget.value

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

    def parameters(self) -> dict[str, object]:
        """Parameters for the spec: those that differ from the baseline, plus those the YAML named."""
        out = {}
        for name in self._baseline:
            value = self._param_value(name)
            if name in self._explicit or value != self._baseline[name]:
                out[name] = value
        return out

    def to_dict(self) -> dict:
        """The raw spec the form holds (before checking), in the YAML's shape: a field's path is its key."""
        raw: dict = {"model": self.fields["model"].text}
        sections = {"data": (DATA_KEYS, DataSpec()), "compute": (COMPUTE_KEYS, ComputeSpec())}
        for path, field in self.fields.items():
            section, _, key = path.partition(".")
            if section not in sections or key not in sections[section][0]:
                continue
            if path == "data.fraction" and self.fields["data.rows"].text:
                continue  # rows replace the fraction
            text = field.text
            if path in NUMBER_KEYS:
                value = _parse_number(text) if text else None
            elif (section == "data" or path == "compute.job_tier") and not text:
                continue  # an empty data field (or queue tier) is its default
            else:
                value = text
            if value != getattr(sections[section][1], key):
                raw.setdefault(section, {})[key] = value
        params = self.parameters()
        if params:
            raw["parameters"] = params
        for key in ("mode", "experiment", "name", "pipeline_version"):
            if self.fields[key].text:
                raw[key] = self.fields[key].text
        tags = parse_tags(self.fields["tags"].text)
        if tags:
            raw["tags"] = tags
        return raw

    # ------------------------------------------------------------------ checking
    def validate(self) -> FinetuneSpec | None:
        """Check every field at once with the spec's own reader; returns the spec when all pass."""
        raw = self.to_dict()
        checked = check_finetune_dict(raw)
        errors = self.by_path(checked.errors)
        if not raw.get("model"):
            errors["model"] = "name a model, e.g. Phi-4."
        elif getattr(self, "model_error", None):
            errors["model"] = self.model_error
        if isinstance(raw.get("tags"), str):
            errors["tags"] = "tags are key=value pairs separated by commas."
        spec = checked.spec
        if spec is not None:
            allow = (self.model_info.finetune_allow_list or []) if self.model_info else []
            if allow and spec.compute.size not in allow:
                errors["compute.size"] = (
                    f"{spec.compute.size} is not in {self.model_info.name}'s fine-tune allow list; "
                    f"use one of {', '.join(allow)}."
                )
                spec = None
        for problem in self.load_problems:
            errors.setdefault(problem.path or "spec", problem.message)
        self.spec = spec if not self.load_problems and "model" not in errors else None
        self._lora_fields()
        self.show_errors(errors)
        self.submit_button.disabled = self.check_button.disabled = self.spec is None
        self.insert_link.value = insert_cell_link(self.spec.to_yaml() if self.spec is not None else None)
        return self.spec

    # ------------------------------------------------------------------ YAML
    def show_yaml(self) -> str:
        """Show the spec as YAML (the same text a %%azml_finetune cell takes); it loads back."""
        spec = self.validate()
        text = spec.to_yaml() if spec is not None else yaml_lines.dump(self.to_dict())
        self.yaml_text.value = text
        self.yaml_box.layout.display = "flex"
        return text

    def load_yaml(self, text: str, first_line: int = 1) -> None:
        """Fill the form from a YAML spec; what does not fit a field is reported, not dropped silently.

        ``first_line`` is the cell line the text starts on (2 under a ``%%azml_finetune`` line).
        """
        try:  # the same guarded loader as the cell (no aliases, bounded nesting), so no cell hangs the form
            raw = (yaml_lines.load(text, "YAML text", first_line).data if text and text.strip() else None) or {}
        except SpecError as exc:
            self.say(f"{exc} Fix it and load again.", error=True)
            return
        if not isinstance(raw, dict):
            self.say("the YAML must be a mapping such as 'model: Phi-4'.", error=True)
            return
        self.load_problems = self._unplaced(text, raw, first_line)
        self._quiet = True
        try:
            self._fill(raw)
        finally:
            self._quiet = False
        fill_local_data(self, raw)
        self._rows_changed()
        self._model_changed()
        self.validate()

    def _unplaced(self, text: str, raw: dict, first_line: int) -> list[SpecError]:
        """The spec's errors about keys no field holds (unknown or misplaced keys); the fields' own
        values are checked as you type."""
        if not raw:
            return []
        try:
            problems = check_finetune_dict(raw, yaml_lines.load(text, "YAML", first_line)).errors
        except SpecError as exc:  # a key written twice
            problems = [exc]

        def placed(path: str) -> bool:
            return path in self.fields or any(p.startswith(path + ".") for p in self.fields)

        return [p for p in problems if p.path and not placed(p.path)]

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
            self.set_text(f"data.{key}", value)
        for key, default in vars(ComputeSpec()).items():
            self.set_text(f"compute.{key}", compute.get(key, default))
        params = raw.get("parameters") if isinstance(raw.get("parameters"), dict) else {}
        self._explicit = {k for k in params if k in self._baseline}
        for name in self._baseline:
            value = params.get(name, self._baseline[name])
            if name in params:
                try:
                    value = normalize_value(PIPELINE_INPUTS[name], value)
                except SpecError:
                    pass
            self._set_param(name, value)
        for key in ("mode", "experiment", "name", "pipeline_version"):
            self.set_text(key, raw.get(key))
        tags = raw.get("tags")
        self.set_text("tags", ", ".join(f"{k}={v}" for k, v in tags.items()) if isinstance(tags, dict) else tags)

    def _set_param(self, name: str, value) -> None:
        """Show a parameter's value in its widget (a value no widget can hold stays a load problem)."""
        field = self.fields[f"parameters.{name}"]
        inp = PIPELINE_INPUTS[name]
        if inp.is_bool and str(value).lower() in ("true", "false"):
            field.widget.value = str(value).lower() == "true"
        elif inp.enum and not inp.is_bool:
            self.set_text(f"parameters.{name}", value)
        elif inp.is_bool:  # a broken bool: a checkbox cannot hold it, so the spec's error stays
            try:
                normalize_value(inp, value)
            except SpecError as exc:
                self.load_problems.append(exc)
        else:
            field.widget.value = _fmt_param(value)

    # ------------------------------------------------------------------ actions
    def check(self):
        """Plan without creating anything: the effective parameters table."""
        spec = self.validate()
        if spec is None:
            return None
        from ...plan import effective_table

        try:
            self.plan = self.session.plan_finetune(spec)
        except AzmlError as exc:
            self.say(exc.message, error=True)
            return None
        self.publish(effective_table(self.plan).html())
        return self.plan

    def submit(self):
        """Check everything, submit, and watch the job in the form."""
        spec = self.validate()
        if spec is None:
            return None
        from ..jobview import JobView

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
        self.view = JobView(self.session, self.job.name, target=self.result_target)
        self.view.run(background=self.background)
        return self.job


def finetune_form(session, cell_text: str | None = "", first_line: int = 1) -> FinetuneForm:
    """What ``%%azml_finetune --form`` (or an empty cell) displays; ``first_line`` as in load_yaml."""
    return FinetuneForm(session, cell_text, first_line=first_line)
