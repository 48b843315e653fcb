"""What the user asks for: the fine-tune and deploy specs, typed and checked completely.

A spec is checked before anything is created, uploaded or billed. Every problem is one line that
names the key (and its line in the cell), what is wrong, and the fix: the closest valid name for a
typo, the allowed values for an enum, the minimum for a number. Each error carries the dotted path
of its key (``SpecError.path``); ``parse_*`` raise the first one (the magics show one clear line),
``check_*`` collect them all (the forms mark every wrong field at once).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import defaults, yaml_lines
from .errors import SpecError
from .files import special_kind
from .spec_local import ENGINES, LocalSpec, parse_local
from .spec_modes import parse_mode
from .spec_values import (  # noqa: F401  (format_value, normalize_value, check_endpoint_name: re-exported)
    Checked,
    Where,
    check_endpoint_name,
    check_parameters,
    closest,
    format_value,
    nonempty_str,
    normalize_value,
    positive_int,
)

DEFAULT_SOURCE = defaults.DATASET_SOURCE
SPLITS = defaults.SPLITS


def _did_you_mean(word: str, choices, missing=()) -> str:
    swapped = [c for c in choices if sorted(c) == sorted(word)]  # two letters swapped ('modle': model, not mode)
    match = closest(word, list(missing)) or (swapped[0] if swapped else closest(word, choices))
    return f"did you mean '{match}'?" if match else f"valid keys: {', '.join(sorted(choices))}."


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
    folder: str = defaults.DATA_FOLDER
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
    job_tier: str | None = None  # mode job: the FineTuning job's queue tier (spec_modes.JOB_TIERS)


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
    local: LocalSpec | None = None  # local-only options (spec_local.py); Azure never reads them
    mode: str | None = None  # pipeline | job | serverless; None: chosen from the model card (spec_modes.py)
    compute_named: bool = field(default=False, repr=False, compare=False)  # was a compute section given

    @property
    def experiment_name(self) -> str:
        base = self.model.rstrip("/").split("/")[-1].split(":")[0].split("@")[0]
        return self.experiment or f"chat_completion_{base}"

    def to_dict(self) -> dict:
        def clean(value):
            if isinstance(value, dict):
                cleaned = {k: clean(v) for k, v in value.items() if v is not None}
                return {k: v for k, v in cleaned.items() if v != {}}
            return value

        return {k: v for k, v in clean(asdict(self)).items() if k != "compute_named"}

    def to_yaml(self) -> str:
        return yaml_lines.dump(self.to_dict())


TOP_KEYS = {f for f in FinetuneSpec.__dataclass_fields__} - {"compute_named"}


# ----------------------------------------------------------------------------- sections
def _check_keys(section: dict, allowed: set, label: str, where: Where, path: tuple, missing=()) -> None:
    for key in section:
        if key not in allowed:
            hint = _did_you_mean(str(key), allowed, [m for m in missing if not section.get(m)])
            where.report(where.error((*path, key), f"unknown key '{key}' in {label}; {hint}"))


def parse_data(raw, where: Where) -> DataSpec:
    if raw is None:
        return DataSpec()
    if isinstance(raw, str):
        return _data_from_path(raw, where)
    if not isinstance(raw, dict):
        raise where.error(("data",), "'data' must be a mapping (source, fraction, ...) or a path.")
    _check_keys(raw, DATA_KEYS, "data", where, ("data",))
    spec = DataSpec()
    for key in ("source", "train_split", "test_split", "folder", "train", "test", "validation"):
        if key in raw:
            with where.guard():
                setattr(spec, key, nonempty_str(raw[key], f"data.{key}", where("data", key)))
    if "rows" in raw:
        with where.guard():
            spec.rows = positive_int(raw["rows"], "data.rows", where("data", "rows"))
            spec.fraction = None
    if "fraction" in raw:
        with where.guard():
            f = raw["fraction"]
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
                raise where.error(
                    ("data", "fraction"), f"data.fraction must be a number in (0, 1], e.g. 0.05 for 5% (got {f!r})."
                )
            if "rows" in raw:
                raise where.error(("data", "rows"), "give data.fraction or data.rows, not both.")
            spec.fraction = float(f)
    if "policy" in raw:
        with where.guard():
            if raw["policy"] not in ("strict", "drop"):
                raise where.error(("data", "policy"), f"data.policy must be strict or drop (got {raw['policy']!r}).")
            spec.policy = raw["policy"]
    for key in ("train_split", "test_split"):
        value = getattr(spec, key)
        if not spec.train and spec.source == DEFAULT_SOURCE and value not in SPLITS:
            where.report(where.error(
                ("data", key),
                f"data.{key} '{value}' is not a split of {DEFAULT_SOURCE}; use one of {', '.join(SPLITS)}.",
            ))
    if (spec.test or spec.validation) and not spec.train:
        where.report(where.error(("data",), "data.test or data.validation needs data.train too.",
                                 field=("data", "test" if spec.test else "validation")))
    for key in ("train", "test", "validation"):
        value = getattr(spec, key)
        if value and "://" not in value:
            kind = special_kind(Path(value).expanduser())  # a FIFO or /dev/zero "exists" but is no data file
            if kind or not Path(value).expanduser().exists():
                what = f"{value} is {kind}, not a data file" if kind else f"file not found: {value}"
                where.report(where.error(("data", key), f"data.{key}: {what}"))
    return spec


def _data_from_path(path: str, where: Where) -> DataSpec:
    p = Path(path).expanduser()
    if p.is_dir():
        train = p / "train_sft.jsonl"
        test = p / "test_sft.jsonl"
        if not train.exists():
            raise where.error(("data",), f"data folder {path} has no train_sft.jsonl; prepare it with %azml_data.")
        return DataSpec(source=str(p), train=str(train), test=str(test) if test.exists() else None)
    if p.is_file():
        return DataSpec(source=str(p), train=str(p))
    if special_kind(p):
        raise where.error(("data",), f"data: {path} is {special_kind(p)}, not a data file or folder")
    if "/" in path and not path.startswith((".", "/", "~")):
        return DataSpec(source=path)  # a hub dataset id
    raise where.error(("data",), f"data: no such file or folder: {path}")


def parse_compute(raw, where: Where) -> ComputeSpec:
    if raw is None:
        return ComputeSpec()
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise where.error(("compute",), "'compute' must be a mapping (name, size, max_instances) or a name.")
    _check_keys(raw, COMPUTE_KEYS, "compute", where, ("compute",))
    spec = ComputeSpec()
    if "name" in raw:
        with where.guard():
            name = nonempty_str(raw["name"], "compute.name", where("compute", "name"))
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,15}", name) or name.endswith("-"):
                raise where.error(
                    ("compute", "name"), f"compute.name '{name}' is not a valid cluster name: 2-16 characters, "
                    "a letter first, then letters, digits or hyphens, not ending with a hyphen."
                )
            spec.name = name
    if "size" in raw:
        with where.guard():
            size = nonempty_str(raw["size"], "compute.size", where("compute", "size"))
            if not re.fullmatch(r"Standard_[A-Za-z0-9_]+", size):
                raise where.error(
                    ("compute", "size"),
                    f"compute.size '{size}' is not an Azure VM size; sizes look like Standard_NC24ads_A100_v4.",
                )
            spec.size = size
    for key in ("min_instances", "max_instances", "idle_time_before_scale_down"):
        if key in raw:
            with where.guard():
                setattr(spec, key, positive_int(raw[key], f"compute.{key}", where("compute", key), minimum=0))
    if spec.max_instances < 1:
        where.report(where.error(("compute", "max_instances"), "compute.max_instances must be at least 1."))
    if spec.min_instances > spec.max_instances:
        where.report(where.error(
            ("compute", "min_instances"),
            f"compute.min_instances ({spec.min_instances}) is above max_instances ({spec.max_instances}).",
        ))
    if "tier" in raw:
        tier = str(raw["tier"]).lower().replace("lowpriority", "low_priority")
        if tier in COMPUTE_TIERS:
            spec.tier = tier
        else:
            where.report(where.error(
                ("compute", "tier"), f"compute.tier must be dedicated or low_priority (got {raw['tier']!r})."
            ))
    return spec


# ----------------------------------------------------------------------------- fine-tune
def _load(text: str, what: str, first_line: int, empty: str) -> yaml_lines.LocatedYaml:
    if text is None or not text.strip():
        raise SpecError(empty)
    return yaml_lines.load(text, what, first_line)


def _load_finetune(text: str, first_line: int) -> yaml_lines.LocatedYaml:
    located = _load(text, "%%azml_finetune cell", first_line,
                    "the %%azml_finetune cell is empty; write at least 'model: <name>' (see %%azml_finetune -h), "
                    "or use --form.")
    if located.data is None:
        raise SpecError(
            "the %%azml_finetune cell is empty (only comments); write at least 'model: <name>' "
            "(see %%azml_finetune -h), or use --form."
        )
    return located


def parse_finetune(text: str, *, first_line: int = 1) -> FinetuneSpec:
    """Parse and check the YAML body of ``%%azml_finetune``; raise the first error.

    ``first_line`` is the cell line the body starts on (2 under the ``%%azml_finetune`` line), so
    'line N' is the line the user sees.
    """
    located = _load_finetune(text, first_line)
    return finetune_from_dict(located.data, located)


def check_finetune(text: str, *, first_line: int = 1) -> Checked[FinetuneSpec]:
    """Like :func:`parse_finetune`, but every error of the spec, not only the first."""
    try:
        located = _load_finetune(text, first_line)
    except SpecError as exc:
        return Checked(None, [exc])
    return check_finetune_dict(located.data, located)


def finetune_from_dict(raw, located: yaml_lines.LocatedYaml | None = None) -> FinetuneSpec:
    """The spec from its mapping (what the YAML or a form holds); raise the first error."""
    return _finetune(raw, Where(located))


def check_finetune_dict(raw, located: yaml_lines.LocatedYaml | None = None) -> Checked[FinetuneSpec]:
    """Like :func:`finetune_from_dict`, but every error of the spec, each with its path."""
    return Where(located, collect=True).checked(_finetune, raw)


def _finetune(raw, where: Where) -> FinetuneSpec:
    if not isinstance(raw, dict):
        raise SpecError(
            "the fine-tune spec must be a YAML mapping such as 'model: Phi-4' "
            f"(got a {type(raw).__name__})."
        )
    _check_keys(raw, TOP_KEYS, "the spec", where, (), missing=("model",))
    spec = FinetuneSpec(model="")
    with where.guard():
        if "model" not in raw or raw["model"] in (None, ""):
            raise SpecError("the spec has no 'model:'; name a model, e.g. 'model: Phi-4'.",
                            path="model")
        spec.model = nonempty_str(raw["model"], "model", where("model"))
    with where.guard():
        spec.data = parse_data(raw.get("data"), where)
    with where.guard():
        spec.compute = parse_compute(raw.get("compute"), where)
    with where.guard():
        spec.local = parse_local(raw.get("local"), where)
    if "parameters" in raw:
        with where.guard():
            spec.parameters = check_parameters(raw.get("parameters") or {}, where)
    spec.compute_named = "compute" in raw
    with where.guard():
        parse_mode(raw, spec, where)
    for key in ("experiment", "name", "pipeline_version"):
        if raw.get(key) is not None:
            with where.guard():
                setattr(spec, key, nonempty_str(str(raw[key]), key, where(key)))
    if spec.name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}", spec.name):
        where.report(where.error(  # it names a folder locally: no path parts (checked before any data is written)
            ("name",), f"name '{spec.name[:80]}' may only hold letters, digits, '_', '-' and '.', a letter or digit first."
        ))
    if spec.experiment and not re.fullmatch(r"[A-Za-z0-9_.\-]{1,255}", spec.experiment):
        where.report(where.error(
            ("experiment",), f"experiment '{spec.experiment}' may only hold letters, digits, '_', '-' and '.'."
        ))
    if "tags" in raw:
        tags = raw["tags"]
        if isinstance(tags, dict):
            spec.tags = {str(k): str(v) for k, v in tags.items()}
        else:
            where.report(where.error(("tags",), "'tags' must be a mapping of name: value."))
    return spec


# ----------------------------------------------------------------------------- deploy
@dataclass
class DeploySpec:
    """A deployment request (``%azml_deploy`` options or its YAML cell)."""

    model: str
    endpoint: str | None = None
    deployment: str = "demo"
    # the original used Standard_NC6s_v3 (V100), which Phi-4 no longer allows; this one every published
    # chat-completion model's inference list has (azureml-assets, 2026-07)
    instance_type: str = "Standard_NC24ads_A100_v4"
    instance_count: int = 1
    request_timeout_ms: int = 90000
    max_concurrent_requests_per_instance: int = 1
    liveness_initial_delay: int = 600
    traffic: int = 100
    description: str | None = None
    # the local endpoint's generation engine (auto | transformers | batcher | vllm); None: auto. Azure's
    # endpoints serve with the model's own inference container, so Azure refuses any other value
    engine: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


DEPLOY_KEYS = {f for f in DeploySpec.__dataclass_fields__}
_DEPLOY_NUMBERS = {  # key: (minimum, maximum, what to say above the maximum)
    "instance_count": (1, None, ""),
    "request_timeout_ms": (1, 180000, "request_timeout_ms is at most 180000 on managed online endpoints"),
    "max_concurrent_requests_per_instance": (1, None, ""),
    "liveness_initial_delay": (0, None, ""),
    "traffic": (0, 100, "traffic is a percentage, 0 to 100"),
}


def deploy_from_dict(raw, located: yaml_lines.LocatedYaml | None = None) -> DeploySpec:
    """The deploy spec from its mapping (the YAML cell, the options, a form); raise the first error."""
    return _deploy(raw, Where(located))


def check_deploy_dict(raw, located: yaml_lines.LocatedYaml | None = None) -> Checked[DeploySpec]:
    """Like :func:`deploy_from_dict`, but every error, each with its path."""
    return Where(located, collect=True).checked(_deploy, raw)


def _deploy(raw, where: Where) -> DeploySpec:
    if not isinstance(raw, dict):
        raise SpecError("the deploy spec must be a mapping such as 'model: my-model:1'.")
    _check_keys(raw, DEPLOY_KEYS, "the deploy spec", where, ())
    spec = DeploySpec(model="")
    with where.guard():
        if not raw.get("model"):
            raise SpecError("the deploy spec has no model; name a registered model, e.g. 'my-model:3' or "
                            "'my-model@latest'.", path="model")
        spec.model = nonempty_str(str(raw["model"]), "model", where("model"))
    for key in ("endpoint", "deployment"):
        if raw.get(key) is not None:
            with where.guard():
                setattr(spec, key, check_endpoint_name(raw[key], f"{key} name", where(key), path=key))
    if raw.get("instance_type") is not None:
        with where.guard():
            it = nonempty_str(raw["instance_type"], "instance_type", where("instance_type"))
            if not re.fullmatch(r"Standard_[A-Za-z0-9_]+", it):
                raise where.error(
                    ("instance_type",), f"instance_type '{it}' is not an Azure VM size; sizes look like Standard_NC6s_v3."
                )
            spec.instance_type = it
    for key, (minimum, top, above) in _DEPLOY_NUMBERS.items():
        if key in raw:
            with where.guard():
                value = positive_int(raw[key], key, where(key), minimum=minimum)
                if top is not None and value > top:
                    raise where.error((key,), f"{above} (got {value}).")
                setattr(spec, key, value)
    if raw.get("description") is not None:
        spec.description = str(raw["description"])
    if raw.get("engine") is not None:
        with where.guard():
            engine = str(raw["engine"]).lower()
            if engine not in ENGINES:
                guess = closest(engine, ENGINES)
                hint = f"; did you mean '{guess}'?" if guess else ""
                raise where.error(("engine",), f"engine must be one of {', '.join(ENGINES)} (got {raw['engine']!r}){hint}")
            spec.engine = engine
    return spec


def _load_deploy(text: str, first_line: int) -> yaml_lines.LocatedYaml:
    return _load(text, "%%azml_deploy cell", first_line,
                 "the deploy spec is empty; give at least 'model: <registered model>'.")


def parse_deploy(text: str, *, first_line: int = 1) -> DeploySpec:
    """Parse and check the YAML body of ``%%azml_deploy``; raise the first error."""
    located = _load_deploy(text, first_line)
    return deploy_from_dict(located.data, located)


def check_deploy(text: str, *, first_line: int = 1) -> Checked[DeploySpec]:
    """Like :func:`parse_deploy`, but every error of the spec, not only the first."""
    try:
        located = _load_deploy(text, first_line)
    except SpecError as exc:
        return Checked(None, [exc])
    return check_deploy_dict(located.data, located)


def as_finetune_spec(spec) -> FinetuneSpec:
    """A FinetuneSpec from YAML text, a dict or a FinetuneSpec (the API takes all three)."""
    if isinstance(spec, FinetuneSpec):
        return spec
    if isinstance(spec, (str, dict)):
        return parse_finetune(spec) if isinstance(spec, str) else finetune_from_dict(spec)
    raise SpecError(f"a fine-tune spec is YAML text, a dict or a FinetuneSpec (got {type(spec).__name__}).")


def as_deploy_spec(spec) -> DeploySpec:
    """A DeploySpec from YAML text, a dict or a DeploySpec."""
    if isinstance(spec, (str, dict)):
        return parse_deploy(spec) if isinstance(spec, str) else deploy_from_dict(spec)
    return spec
