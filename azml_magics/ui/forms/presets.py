"""What the fine-tune form starts from: the local data default, the presets, the insert-as-cell link.

The local backend trains on this machine, so its form starts from the data the user last prepared
(all of it), not from the hub at 5%. A preset only fills fields; the user sees and can change every
value before anything runs. The insert-as-cell link is a JupyterLab command link (no JavaScript of
ours): clicking it inserts a ``%%azml_finetune`` cell below with the form's YAML, so the run is
reproducible as code.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path


# VM sizes offered after the model's allow list (the user may type any other).
COMMON_FINETUNE_SIZES = (
    "Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4",
    "Standard_ND96asr_v4", "Standard_ND96amsr_A100_v4", "Standard_NC6s_v3", "Standard_NC12s_v3",
    "Standard_NC24s_v3", "Standard_ND40rs_v2",
)


@dataclass(frozen=True)
class Preset:
    """A named set of field values (spec paths -> values) and a line saying what it is for."""

    name: str
    help: str
    values: dict = field(default_factory=dict)


PRESETS = (
    Preset("smoke test", "a few steps on a few rows: checks the whole path in a minute",
           {"data.rows": 16, "parameters.max_steps": 5, "parameters.num_train_epochs": 1,
            "parameters.logging_steps": 1, "parameters.apply_lora": "true"}),
    Preset("LoRA", "one epoch of low-rank adapters (little memory, fast)",
           {"data.rows": "", "parameters.max_steps": -1, "parameters.num_train_epochs": 1,
            "parameters.apply_lora": "true", "parameters.lora_r": 8, "parameters.lora_alpha": 16}),
    Preset("full fine-tune", "every weight trained, one epoch (more memory; on Azure a bigger VM)",
           {"data.rows": "", "parameters.max_steps": -1, "parameters.num_train_epochs": 1,
            "parameters.apply_lora": "false"}),
)
PRESET_NAMES = tuple(p.name for p in PRESETS)


def preset(name: str) -> Preset:
    for p in PRESETS:
        if p.name == name:
            return p
    raise KeyError(f"no preset named {name!r}; the presets are {', '.join(PRESET_NAMES)}")


@dataclass(frozen=True)
class DataDefault:
    """Where a form's data comes from when the cell names none, and the note that says why."""

    source: str
    fraction: float
    note: str


def local_data_default(session) -> DataDefault | None:
    """The last prepared folder, all of it (fraction 1.0); else the bundled sample. None off local."""
    found = session.last_prepared()
    if found is not None:
        folder, rows = found
        counts = ", ".join(f"{split} {n}" for split, n in rows.items())
        return DataDefault(str(folder), 1.0, f"data: the last prepared folder, all of it{f' ({counts} rows)' if counts else ''}")
    from ...data import sample_dir

    return DataDefault(str(Path(sample_dir())), 1.0,
                       "data: the bundled sample (nothing prepared yet; %azml_data prepare writes your own)")


def insert_cell_link(yaml_text: str | None) -> str:
    """A button-like JupyterLab command link that inserts ``%%azml_finetune`` + ``yaml_text`` below.

    ``apputils:run-all-enabled`` runs insert-cell-below, then replace-selection with the text (both
    get the same args; insert-cell-below ignores them). Disabled while the spec has errors.
    """
    if not yaml_text:
        return ("<button class='jp-Button azml-insert-cell' disabled title='fix the fields first'>"
                "Insert as %%azml_finetune cell</button>")
    args = {"commands": ["notebook:insert-cell-below", "notebook:replace-selection"],
            "args": {"text": "%%azml_finetune\n" + yaml_text.rstrip("\n")}}
    return ("<button class='jp-Button azml-insert-cell' "
            "data-commandlinker-command='apputils:run-all-enabled' "
            f"data-commandlinker-args='{html.escape(json.dumps(args), quote=True)}' "
            "title='JupyterLab: insert a %%azml_finetune cell with this spec below the form'>"
            "Insert as %%azml_finetune cell</button>")


def fill_local_data(form, raw: dict) -> None:
    """On the local backend a cell that names no data trains on the last prepared folder, all of it."""
    from .base import backend_name

    default = local_data_default(form.session) if backend_name(form.session) == "local" else None
    if default is None or "data" in raw:
        return
    quiet, form._quiet = form._quiet, True
    try:
        form.set_text("data.source", default.source)
        form.set_text("data.fraction", default.fraction)
    finally:
        form._quiet = quiet
    form.data_note.value = f"<small>{html.escape(default.note)}</small>"


def fill_preset(form, name: str) -> None:
    """Put a preset's values in the form's fields, then check the whole form once."""
    from ...pipeline_inputs import PIPELINE_INPUTS
    from ...spec import normalize_value

    chosen = preset(name)
    quiet, form._quiet = form._quiet, True
    try:
        for path, value in chosen.values.items():
            if path.startswith("parameters."):
                pname = path.removeprefix("parameters.")
                form._explicit.discard(pname)
                form._set_param(pname, normalize_value(PIPELINE_INPUTS[pname], value))
            else:
                form.set_text(path, value)
    finally:
        form._quiet = quiet
    form._rows_changed()
    if form.validate() is not None:
        form.say(f"preset '{name}': {chosen.help}")
