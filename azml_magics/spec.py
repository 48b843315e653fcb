"""What the user asks for: the fine-tune and deploy specs, typed and checked completely.

A spec is checked before anything is created, uploaded or billed. Every problem is one line that
names the key (and its line in the cell), what is wrong, and the fix: the closest valid name for a
typo, the allowed values for an enum, the minimum for a number.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import yaml_lines
from .errors import SpecError
from .pipeline_inputs import EXCLUSIVE_MINIMUM, MAXIMUM, PIPELINE_INPUTS, PipelineInput

DEFAULT_SOURCE = "HuggingFaceH4/ultrachat_200k"
SPLITS = ("train_sft", "test_sft", "train_gen", "test_gen")


def closest(word: str, choices, n: int = 1) -> str | None:
    found = difflib.get_close_matches(str(word), list(choices), n=n, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(word: str, choices) -> str:
    match = closest(word, choices)
    return f"did you mean '{match}'?" if match else f"valid keys: {', '.join(sorted(choices))}."


class _Where:
    """Turns a key path into a 'line N: ' prefix for messages."""

    def __init__(self, located: yaml_lines.LocatedYaml | None, what: str):
        self.located = located
        self.what = what

    def __call__(self, *path) -> str:
        line = self.located.line_of(*path) if self.located else None
        return f"line {line}: " if line else ""


# ----------------------------------------------------------------------------- data
@dataclass
class DataSpec:
    """Where the training data comes from and how much of it to use."""

    source: str = DEFAULT_SOURCE
    fraction: float | None = 0.05
    rows: int | None = None
    train_split: str = "train_sft"
    test_split: str = "test_sft"
    train: str | None = None
    test: str | None = None
    validation: str | None = None
    folder: str = "ultrachat_200k_dataset"
    policy: str = "strict"

    @property
    def is_local_files(self) -> bool:
        return self.train is not None


DATA_KEYS = {f for f in DataSpec.__dataclass_fields__}


@dataclass
class ComputeSpec:
    """The cluster the Azure pipeline runs on (the local backend ignores it, visibly)."""

    name: str = "gpu-cluster"
    size: str = "Standard_NC24ads_A100_v4"
    min_instances: int = 0
    max_instances: int = 2
    tier: str = "dedicated"
    idle_time_before_scale_down: int = 120


COMPUTE_KEYS = {f for f in ComputeSpec.__dataclass_fields__}
COMPUTE_TIERS = ("dedicated", "low_priority")


@dataclass
class FinetuneSpec:
    """A complete, checked fine-tune request (the YAML body of ``%%azml_finetune``)."""

    model: str
    data: DataSpec = field(default_factory=DataSpec)
    compute: ComputeSpec = field(default_factory=ComputeSpec)
    parameters: dict[str, object] = field(default_factory=dict)
    experiment: str | None = None
    name: str | None = None
    pipeline_version: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def experiment_name(self) -> str:
        base = self.model.rstrip("/").split("/")[-1].split(":")[0].split("@")[0]
        return self.experiment or f"chat_completion_{base}"

    def to_dict(self) -> dict:
        def clean(value):
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items() if v is not None and v != {}}
            return value

        return clean(asdict(self))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)


TOP_KEYS = {f for f in FinetuneSpec.__dataclass_fields__}


# ----------------------------------------------------------------------------- values
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def normalize_value(inp: PipelineInput, value, prefix: str = "") -> object:
    """Return ``value`` in the type the component wants, or raise a one-line SpecError."""
    name = f"parameters.{inp.name}"
    if value is None:
        raise SpecError(f"{prefix}{name} is empty; give a value or remove the line.")
    if inp.is_asset:
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"{prefix}{name} must be a path or azureml:// URI (got {value!r}).")
        return value
    if inp.type == "string":
        if isinstance(value, (dict, list)):
            raise SpecError(f"{prefix}{name} must be a single value, not a {type(value).__name__}.")
        if inp.is_bool:
            if isinstance(value, bool):
                return "true" if value else "false"
            text = str(value).strip().lower()
            if text in ("true", "false"):
                return text
            raise SpecError(f"{prefix}{name} must be true or false (got {value!r}).")
        text = str(value)
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        if inp.enum and text not in inp.enum:
            match = closest(text, inp.enum)
            hint = f" Did you mean '{match}'?" if match else ""
            raise SpecError(
                f"{prefix}{name} must be one of {', '.join(inp.enum)} (got {value!r}).{hint}"
            )
        return text
    if inp.type == "integer":
        number = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                raise SpecError(f"{prefix}{name} must be a whole number (got {value!r}).") from None
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        if not _is_int(number):
            raise SpecError(f"{prefix}{name} must be a whole number (got {value!r}).")
        _check_range(inp, number, prefix)
        return number
    if inp.type == "number":
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise SpecError(f"{prefix}{name} must be a number (got {value!r}).") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise SpecError(f"{prefix}{name} must be a number (got {value!r}).")
        number = float(number)
        _check_range(inp, number, prefix)
        return number
    raise SpecError(f"{prefix}{name}: unsupported input type {inp.type}.")  # pragma: no cover


def _check_range(inp: PipelineInput, number, prefix: str) -> None:
    name = f"parameters.{inp.name}"
    if inp.sentinel is not None and number == inp.sentinel:
        return
    also = f" (or {int(inp.sentinel)} for {inp.help.split(':', 1)[1].strip() if ':' in inp.help else 'the default'})" if inp.sentinel is not None else ""
    if inp.minimum is not None:
        if inp.name in EXCLUSIVE_MINIMUM and number <= inp.minimum:
            raise SpecError(f"{prefix}{name} must be greater than {_fmt(inp.minimum)} (got {_fmt(number)}).")
        if number < inp.minimum:
            raise SpecError(f"{prefix}{name} must be at least {_fmt(inp.minimum)}{also} (got {_fmt(number)}).")
    top = MAXIMUM.get(inp.name)
    if top is not None and number >= top and not (inp.name == "learning_rate" and number == top):
        raise SpecError(f"{prefix}{name} must be below {_fmt(top)} (got {_fmt(number)}).")


def _fmt(x) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def check_parameters(params: dict, where: _Where | None = None) -> dict[str, object]:
    """Check user parameters against the full pipeline input table; return normalized values."""
    where = where or _Where(None, "spec")
    if not isinstance(params, dict):
        raise SpecError(f"{where('parameters')}'parameters' must be a mapping of name: value.")
    out: dict[str, object] = {}
    for key, value in params.items():
        prefix = where("parameters", key)
        key = str(key)
        inp = PIPELINE_INPUTS.get(key)
        if inp is None:
            match = closest(key, PIPELINE_INPUTS)
            hint = f"did you mean '{match}'?" if match else "run %azml_finetune --list-parameters to see them all."
            raise SpecError(f"{prefix}unknown parameter '{key}': not an input of chat_completion_pipeline; {hint}")
        if inp.set_from:
            raise SpecError(
                f"{prefix}parameter '{key}' is set from the spec's '{inp.set_from}:' section; move it there "
                f"(see %%azml_finetune -h)."
            )
        out[key] = normalize_value(inp, value, prefix)
    return out


# ----------------------------------------------------------------------------- sections
def _check_keys(section: dict, allowed: set, label: str, where: _Where, path: tuple) -> None:
    for key in section:
        if key not in allowed:
            raise SpecError(
                f"{where(*path, key)}unknown key '{key}' in {label}; {_did_you_mean(str(key), allowed)}"
            )


def _positive_int(value, label: str, prefix: str, minimum: int = 1) -> int:
    if not _is_int(value):
        raise SpecError(f"{prefix}{label} must be a whole number (got {value!r}).")
    if value < minimum:
        raise SpecError(f"{prefix}{label} must be at least {minimum} (got {value}).")
    return value


def _nonempty_str(value, label: str, prefix: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{prefix}{label} must be a non-empty string (got {value!r}).")
    return value.strip()


def parse_data(raw, where: _Where) -> DataSpec:
    if raw is None:
        return DataSpec()
    if isinstance(raw, str):
        return _data_from_path(raw, where)
    if not isinstance(raw, dict):
        raise SpecError(f"{where('data')}'data' must be a mapping (source, fraction, ...) or a path.")
    _check_keys(raw, DATA_KEYS, "data", where, ("data",))
    spec = DataSpec()
    for key in ("source", "train_split", "test_split", "folder", "train", "test", "validation"):
        if key in raw:
            setattr(spec, key, _nonempty_str(raw[key], f"data.{key}", where("data", key)))
    if "rows" in raw:
        spec.rows = _positive_int(raw["rows"], "data.rows", where("data", "rows"))
        spec.fraction = None
    if "fraction" in raw:
        f = raw["fraction"]
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise SpecError(
                f"{where('data', 'fraction')}data.fraction must be a number in (0, 1], e.g. 0.05 for 5% (got {f!r})."
            )
        if "rows" in raw:
            raise SpecError(f"{where('data', 'rows')}give data.fraction or data.rows, not both.")
        spec.fraction = float(f)
    if "policy" in raw:
        if raw["policy"] not in ("strict", "drop"):
            raise SpecError(
                f"{where('data', 'policy')}data.policy must be strict or drop (got {raw['policy']!r})."
            )
        spec.policy = raw["policy"]
    for key in ("train_split", "test_split"):
        value = getattr(spec, key)
        if not spec.train and spec.source == DEFAULT_SOURCE and value not in SPLITS:
            raise SpecError(
                f"{where('data', key)}data.{key} '{value}' is not a split of {DEFAULT_SOURCE}; "
                f"use one of {', '.join(SPLITS)}."
            )
    if (spec.test or spec.validation) and not spec.train:
        raise SpecError(f"{where('data')}data.test or data.validation needs data.train too.")
    for key in ("train", "test", "validation"):
        value = getattr(spec, key)
        if value and "://" not in value and not Path(value).expanduser().exists():
            raise SpecError(f"{where('data', key)}data.{key}: file not found: {value}")
    return spec


def _data_from_path(path: str, where: _Where) -> DataSpec:
    p = Path(path).expanduser()
    if p.is_dir():
        train = p / "train_sft.jsonl"
        test = p / "test_sft.jsonl"
        if not train.exists():
            raise SpecError(f"{where('data')}data folder {path} has no train_sft.jsonl; prepare it with %azml_data.")
        return DataSpec(source=str(p), train=str(train), test=str(test) if test.exists() else None)
    if p.is_file():
        return DataSpec(source=str(p), train=str(p))
    if "/" in path and not path.startswith((".", "/", "~")):
        return DataSpec(source=path)  # a hub dataset id
    raise SpecError(f"{where('data')}data: no such file or folder: {path}")


def parse_compute(raw, where: _Where) -> ComputeSpec:
    if raw is None:
        return ComputeSpec()
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise SpecError(f"{where('compute')}'compute' must be a mapping (name, size, max_instances) or a name.")
    _check_keys(raw, COMPUTE_KEYS, "compute", where, ("compute",))
    spec = ComputeSpec()
    if "name" in raw:
        name = _nonempty_str(raw["name"], "compute.name", where("compute", "name"))
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,15}", name) or name.endswith("-"):
            raise SpecError(
                f"{where('compute', 'name')}compute.name '{name}' is not a valid cluster name: 2-16 characters, "
                "a letter first, then letters, digits or hyphens, not ending with a hyphen."
            )
        spec.name = name
    if "size" in raw:
        size = _nonempty_str(raw["size"], "compute.size", where("compute", "size"))
        if not re.fullmatch(r"Standard_[A-Za-z0-9_]+", size):
            raise SpecError(
                f"{where('compute', 'size')}compute.size '{size}' is not an Azure VM size; sizes look like "
                "Standard_NC24ads_A100_v4."
            )
        spec.size = size
    for key in ("min_instances", "max_instances", "idle_time_before_scale_down"):
        if key in raw:
            setattr(spec, key, _positive_int(raw[key], f"compute.{key}", where("compute", key), minimum=0))
    if spec.max_instances < 1:
        raise SpecError(f"{where('compute', 'max_instances')}compute.max_instances must be at least 1.")
    if spec.min_instances > spec.max_instances:
        raise SpecError(
            f"{where('compute', 'min_instances')}compute.min_instances ({spec.min_instances}) is above "
            f"max_instances ({spec.max_instances})."
        )
    if "tier" in raw:
        tier = str(raw["tier"]).lower().replace("lowpriority", "low_priority")
        if tier not in COMPUTE_TIERS:
            raise SpecError(
                f"{where('compute', 'tier')}compute.tier must be dedicated or low_priority (got {raw['tier']!r})."
            )
        spec.tier = tier
    return spec


def parse_finetune(text: str) -> FinetuneSpec:
    """Parse and check the YAML body of ``%%azml_finetune``."""
    if text is None or not text.strip():
        raise SpecError(
            "the %%azml_finetune cell is empty; write at least 'model: <name>' (see %%azml_finetune -h), "
            "or use --form."
        )
    located = yaml_lines.load(text, "%%azml_finetune cell")
    if located.data is None:
        raise SpecError(
            "the %%azml_finetune cell is empty (only comments); write at least 'model: <name>' "
            "(see %%azml_finetune -h), or use --form."
        )
    return finetune_from_dict(located.data, located)


def finetune_from_dict(raw, located: yaml_lines.LocatedYaml | None = None) -> FinetuneSpec:
    where = _Where(located, "spec")
    if not isinstance(raw, dict):
        raise SpecError(
            "the fine-tune spec must be a YAML mapping such as 'model: Phi-3-mini-4k-instruct' "
            f"(got a {type(raw).__name__})."
        )
    _check_keys(raw, TOP_KEYS, "the spec", where, ())
    if "model" not in raw or raw["model"] in (None, ""):
        raise SpecError("the spec has no 'model:'; name a model, e.g. 'model: Phi-3-mini-4k-instruct'.")
    spec = FinetuneSpec(model=_nonempty_str(raw["model"], "model", where("model")))
    spec.data = parse_data(raw.get("data"), where)
    spec.compute = parse_compute(raw.get("compute"), where)
    spec.parameters = check_parameters(raw.get("parameters") or {}, where) if "parameters" in raw else {}
    for key in ("experiment", "name", "pipeline_version"):
        if raw.get(key) is not None:
            setattr(spec, key, _nonempty_str(str(raw[key]), key, where(key)))
    if spec.experiment and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,255}", spec.experiment):
        raise SpecError(
            f"{where('experiment')}experiment '{spec.experiment}' may only hold letters, digits, '_', '-' and '.'."
        )
    if "tags" in raw:
        tags = raw["tags"]
        if not isinstance(tags, dict):
            raise SpecError(f"{where('tags')}'tags' must be a mapping of name: value.")
        spec.tags = {str(k): str(v) for k, v in tags.items()}
    return spec


# ----------------------------------------------------------------------------- merging
@dataclass
class EffectiveRow:
    name: str
    value: object
    source: str  # "component default" | "model default" | "your spec" | "derived"
    overrides: str | None = None  # what the winning value replaced, for the table


@dataclass
class EffectiveParameters:
    """The parameters that will be sent, with where each value came from."""

    rows: list[EffectiveRow]
    dropped_model_defaults: dict[str, object] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)  # name -> why (backend has no use for it)

    @property
    def values(self) -> dict[str, object]:
        return {r.name: r.value for r in self.rows}

    def source_of(self, name: str) -> str | None:
        for r in self.rows:
            if r.name == name:
                return r.source
        return None


def merge_parameters(
    user: dict[str, object],
    model_defaults: dict[str, object] | None = None,
    component_inputs: set[str] | None = None,
    derived: dict[str, object] | None = None,
) -> EffectiveParameters:
    """component defaults < model defaults < derived (e.g. GPUs per node) < the user's own values.

    ``component_inputs`` is the input names of the component actually used (the Azure registry may
    serve a version with fewer inputs than our table); a user key outside it is an error, a model
    default outside it is dropped and reported.
    """
    inputs = set(component_inputs) if component_inputs is not None else set(PIPELINE_INPUTS)
    for key in user:
        if key not in inputs:
            raise SpecError(
                f"parameter '{key}' is not an input of the chat_completion_pipeline version in use; "
                f"remove it or pin pipeline_version to one that has it."
            )
    values: dict[str, EffectiveRow] = {}
    for name, inp in PIPELINE_INPUTS.items():
        if name in inputs and inp.set_from is None and inp.default is not None:
            values[name] = EffectiveRow(name, inp.default, "component default")
    dropped: dict[str, object] = {}
    for key, raw in (model_defaults or {}).items():
        inp = PIPELINE_INPUTS.get(key)
        if key not in inputs or inp is None or inp.set_from:
            dropped[key] = raw
            continue
        try:
            value = normalize_value(inp, raw)
        except SpecError:
            dropped[key] = raw
            continue
        prev = values.get(key)
        values[key] = EffectiveRow(key, value, "model default", _fmt(prev.value) if prev else None)
    for key, value in (derived or {}).items():
        if key in inputs:
            prev = values.get(key)
            values[key] = EffectiveRow(key, value, "derived", _fmt(prev.value) if prev else None)
    for key, value in user.items():
        prev = values.get(key)
        values[key] = EffectiveRow(key, value, "your spec", f"{_fmt(prev.value)} ({prev.source})" if prev else None)
    order = {"your spec": 0, "derived": 1, "model default": 2, "component default": 3}
    rows = sorted(values.values(), key=lambda r: (order[r.source], r.name))
    return EffectiveParameters(rows, dropped)


def pipeline_display_name(model: str, params: dict, gpus_per_node: int = 1) -> str:
    """The original notebook's display name, from the effective parameters."""
    batch = (
        int(params.get("per_device_train_batch_size", 1))
        * int(params.get("gradient_accumulation_steps", 1))
        * int(gpus_per_node)
        * int(params.get("num_nodes_finetune", 1))
    )
    scheduler = params.get("lr_scheduler_type", "linear")
    ds = f"ds{params.get('deepspeed_stage', '2')}" if params.get("apply_deepspeed") == "true" else "nods"
    lora = "lora" if params.get("apply_lora") == "true" else "nolora"
    base = model.rstrip("/").split("/")[-1].split(":")[0].split("@")[0]
    return (
        f"{base}-ultrachat-bs{batch}-{scheduler}-{ds}-{lora}"
        f"-save_limit{params.get('save_total_limit', -1)}-seqlen{params.get('max_seq_length', -1)}"
    )


# ----------------------------------------------------------------------------- deploy
NAME_RULE = "3-32 characters: a letter first, then letters, digits or hyphens, not ending with a hyphen"
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]")


def check_endpoint_name(name: str, label: str = "endpoint name", prefix: str = "") -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SpecError(f"{prefix}{label} '{name}' is not valid on Azure ML: {NAME_RULE}.")
    return name


@dataclass
class DeploySpec:
    """A deployment request (``%azml_deploy`` options or its YAML cell)."""

    model: str
    endpoint: str | None = None
    deployment: str = "demo"
    instance_type: str = "Standard_NC6s_v3"
    instance_count: int = 1
    request_timeout_ms: int = 90000
    max_concurrent_requests_per_instance: int = 1
    liveness_initial_delay: int = 600
    traffic: int = 100
    description: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


DEPLOY_KEYS = {f for f in DeploySpec.__dataclass_fields__}


def deploy_from_dict(raw, located: yaml_lines.LocatedYaml | None = None) -> DeploySpec:
    where = _Where(located, "deploy spec")
    if not isinstance(raw, dict):
        raise SpecError("the deploy spec must be a mapping such as 'model: my-model:1'.")
    _check_keys(raw, DEPLOY_KEYS, "the deploy spec", where, ())
    if not raw.get("model"):
        raise SpecError("the deploy spec has no model; name a registered model, e.g. 'my-model:3' or 'my-model@latest'.")
    spec = DeploySpec(model=_nonempty_str(str(raw["model"]), "model", where("model")))
    if raw.get("endpoint") is not None:
        spec.endpoint = check_endpoint_name(raw["endpoint"], "endpoint name", where("endpoint"))
    if raw.get("deployment") is not None:
        spec.deployment = check_endpoint_name(raw["deployment"], "deployment name", where("deployment"))
    if raw.get("instance_type") is not None:
        it = _nonempty_str(raw["instance_type"], "instance_type", where("instance_type"))
        if not re.fullmatch(r"Standard_[A-Za-z0-9_]+", it):
            raise SpecError(
                f"{where('instance_type')}instance_type '{it}' is not an Azure VM size; sizes look like Standard_NC6s_v3."
            )
        spec.instance_type = it
    if "instance_count" in raw:
        spec.instance_count = _positive_int(raw["instance_count"], "instance_count", where("instance_count"))
    if "request_timeout_ms" in raw:
        v = _positive_int(raw["request_timeout_ms"], "request_timeout_ms", where("request_timeout_ms"))
        if v > 180000:
            raise SpecError(
                f"{where('request_timeout_ms')}request_timeout_ms is at most 180000 on managed online endpoints (got {v})."
            )
        spec.request_timeout_ms = v
    if "max_concurrent_requests_per_instance" in raw:
        spec.max_concurrent_requests_per_instance = _positive_int(
            raw["max_concurrent_requests_per_instance"], "max_concurrent_requests_per_instance",
            where("max_concurrent_requests_per_instance"),
        )
    if "liveness_initial_delay" in raw:
        spec.liveness_initial_delay = _positive_int(
            raw["liveness_initial_delay"], "liveness_initial_delay", where("liveness_initial_delay"), minimum=0
        )
    if "traffic" in raw:
        t = _positive_int(raw["traffic"], "traffic", where("traffic"), minimum=0)
        if t > 100:
            raise SpecError(f"{where('traffic')}traffic is a percentage, 0 to 100 (got {t}).")
        spec.traffic = t
    if raw.get("description") is not None:
        spec.description = str(raw["description"])
    return spec


def parse_deploy(text: str) -> DeploySpec:
    if text is None or not text.strip():
        raise SpecError("the deploy spec is empty; give at least 'model: <registered model>'.")
    located = yaml_lines.load(text, "%%azml_deploy cell")
    return deploy_from_dict(located.data, located)
