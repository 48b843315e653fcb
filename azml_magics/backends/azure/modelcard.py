"""Turn a registry model (tags, properties, system metadata, archived flag) into a ModelInfo, without the SDK.

The ``azureml`` registry has published the same facts in three shapes over the years (see the
published specs in Azure/azureml-assets, ``assets/models/system/*/spec.yaml``): tags with Python
literals (``finetune_compute_allow_list``), comma-separated properties (``finetune-recommended-sku``),
and today nested ``system_metadata`` (``SKU.finetuneRecommendedSkus``, ``supportedComputes.*``,
``tasks.fineTuningTasks``, ``deprecation.*`` dates, ``deploymentOptions``, ``SKU.finetuneMinSkuSpec``).
The reader never raises on a shape it does not know: what it cannot find goes to ``unpublished``, what it
cannot read goes to ``problems``, and a check against a missing allow list says so instead of passing.
"""

from __future__ import annotations

import ast
import datetime as _dt
import json
import re
from typing import Mapping

from ...errors import SpecError
from ..base import ModelInfo

# (source, dotted path), newest shape first; keys match case-insensitively.
FINETUNE_LISTS = (
    ("system_metadata", "SKU.finetuneRecommendedSkus"), ("system_metadata", "supportedComputes.finetuneComputes"),
    ("system_metadata", "finetune_recommended_skus"), ("tags", "finetune_compute_allow_list"),
    ("properties", "finetune-recommended-sku"), ("properties", "finetune_recommended_sku"),
    ("properties", "finetune_recommended_skus"), ("properties", "finetuneRecommendedSkus"),
)
INFERENCE_LISTS = (
    ("system_metadata", "SKU.inferenceRecommendedSkus"), ("system_metadata", "supportedComputes.inferenceComputes"),
    ("system_metadata", "inference_recommended_skus"), ("tags", "inference_compute_allow_list"),
    ("properties", "inference-recommended-sku"), ("properties", "inference_recommended_sku"),
    ("properties", "inference_recommended_skus"), ("properties", "inferenceRecommendedSkus"),
)
TASKS = (
    ("system_metadata", "tasks.fineTuningTasks"), ("properties", "finetuning-tasks"), ("properties", "finetuning_tasks"),
    ("tags", "finetuning_tasks"), ("tags", "finetuning-tasks"), ("tags", "finetuningTasks"), ("tags", "task"),
)
MIN_SKU = (("system_metadata", "SKU.finetuneMinSkuSpec"), ("properties", "finetune-min-sku-spec"))
DEPLOYMENT_OPTIONS = (("system_metadata", "deploymentOptions"),)
DEPRECATE = (("system_metadata", "deprecation.finetuneDeprecationDate"), ("tags", "FinetuneDeprecationDate"))
RETIRE = (("system_metadata", "deprecation.finetuneRetirementDate"), ("tags", "FinetuneRetirementDate"))
MIN_SKU_PARTS = ("cores", "GPU", "GB RAM", "GB disk")  # cores|GPUs|RAM GB|disk GB


def literal(value: object) -> object:
    """A value written as a Python literal or JSON; parsed with ``ast.literal_eval``, never ``eval``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    for parse in (ast.literal_eval, json.loads):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    if text.startswith("[") and text.endswith("]"):  # a YAML flow list: [Standard_NC6s_v3, Standard_NC12s_v3]
        return [item.strip().strip("'\"") for item in text[1:-1].split(",") if item.strip()]
    return text


def string_list(value: object, what: str) -> list[str]:
    """A list of names from a list, a literal, or a comma-separated string; SpecError if it is none of those."""
    if isinstance(value, str) and not value.strip().startswith(("[", "(")):
        items = value.split(",")
    else:
        parsed = literal(value)
        if isinstance(parsed, str):
            items = parsed.split(",")
        elif isinstance(parsed, (list, tuple, set)):
            items = [str(part) for part in parsed]
        else:
            raise SpecError(f"the model's {what} is not a list (got {type(parsed).__name__})")
    return [item.strip() for item in items if item.strip()]


def sku_list(value: object, what: str) -> list[str] | None:
    """A VM size list, or None when there is none (kept for the deploy path's copied tag)."""
    if value in (None, ""):
        return None
    try:
        return string_list(value, what)
    except SpecError:
        return None


def _get(mapping: Mapping, path: str) -> object:
    node: object = mapping
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        lowered = {str(k).lower(): k for k in node}
        key = lowered.get(part.lower())
        if key is None:
            return None
        node = node[key]
    return node


def _find(sources: dict[str, Mapping], paths) -> tuple[str, object] | None:
    """(where it was found, value) of the first published path, or None."""
    for source, path in paths:
        value = _get(sources.get(source) or {}, path)
        if value not in (None, "", [], {}):
            return f"{source}.{path}", value
    return None


def as_mapping(value: object) -> tuple[dict, str | None]:
    """(mapping, problem) from a mapping, a JSON/literal string or an SDK object."""
    if value is None:
        return {}, None
    if isinstance(value, Mapping):
        return dict(value), None
    if isinstance(value, str):
        parsed = literal(value)
        if isinstance(parsed, Mapping):
            return dict(parsed), None
        return {}, f"system metadata is not a mapping ({value[:40]!r})"
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return dict(as_dict()), None
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}, None
    return {}, f"system metadata is a {type(value).__name__}, not a mapping"


def model_defaults(tags: Mapping, problems: list[str]) -> dict[str, object]:
    raw = _get(tags, "model_specific_defaults")
    if raw in (None, ""):
        return {}
    parsed = literal(raw)
    if not isinstance(parsed, Mapping):
        problems.append("tags.model_specific_defaults is not a mapping; no model defaults applied")
        return {}
    return {str(k): v for k, v in parsed.items()}


def _date(value: object) -> _dt.date | None:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    try:
        return _dt.date.fromisoformat(str(value or "").strip()[:10])
    except ValueError:
        return None


def _dates_in_text(text: str) -> tuple[_dt.date | None, _dt.date | None]:
    """(deprecation, retirement) from a note such as 'Fine-tuning deprecation 2025-06-30, retirement 2025-08-30.'"""
    found = {}
    for word, day in re.findall(r"(deprecat\w*|retire\w*)\D{0,20}?(\d{4}-\d{2}-\d{2})", text, flags=re.I):
        found.setdefault("retire" if word.lower().startswith("retire") else "deprecate", _date(day))
    return found.get("deprecate"), found.get("retire")


def lifecycle(sources: dict[str, Mapping], archived: bool, today: _dt.date) -> tuple[str, str | None, list[str]]:
    """(state, why it cannot be fine-tuned now or None, notes about dates still ahead)."""
    deprecate = _date((_find(sources, DEPRECATE) or (None, None))[1])
    retire = _date((_find(sources, RETIRE) or (None, None))[1])
    note = str(_get(sources["properties"], "deprecation") or _get(sources["tags"], "deprecation") or "")
    if note and not (deprecate or retire):
        deprecate, retire = _dates_in_text(note)
    notes: list[str] = []
    blocked: str | None = None
    if retire and retire <= today:
        blocked = state = f"fine-tuning retired on {retire.isoformat()}"
    elif deprecate and deprecate <= today:
        blocked = f"fine-tuning deprecated on {deprecate.isoformat()}"
        state = blocked + (f", retiring on {retire.isoformat()}" if retire else "")
    else:
        state = f"retiring on {retire.isoformat()}" if retire else "live"
        if deprecate:
            notes.append(f"fine-tuning deprecated from {deprecate.isoformat()}")
        if retire:
            notes.append(f"fine-tuning retired from {retire.isoformat()}")
    if archived:
        state = "archived" + ("" if state == "live" else f"; {state}")
    return state, blocked, notes


def min_sku_words(value: object, problems: list[str]) -> str | None:
    parts = str(value).split("|")
    if len(parts) != len(MIN_SKU_PARTS) or not all(p.strip().isdigit() for p in parts):
        problems.append(f"finetuneMinSkuSpec {str(value)[:40]!r} is not cores|GPUs|RAM GB|disk GB")
        return str(value)
    return ", ".join(f"{p.strip()} {unit}" for p, unit in zip(parts, MIN_SKU_PARTS))


def _read_list(sources, paths, what: str, unpublished: list[str], problems: list[str]) -> list[str] | None:
    found = _find(sources, paths)
    if found is None:
        unpublished.append(what)
        return None
    try:
        return string_list(found[1], found[0])
    except SpecError as err:
        problems.append(f"{err}; {what} not read")
        return None


def model_info(
    *,
    name: str,
    version: str,
    id: str,
    tags: Mapping | None = None,
    properties: Mapping | None = None,
    system_metadata: object = None,
    stage: str | None = None,
    archived: bool | None = None,
    description: str | None = None,
    today: _dt.date | None = None,
) -> ModelInfo:
    """The card the magics show: allow lists, tasks, defaults, state, and what the registry left out."""
    today = today or _dt.date.today()
    problems: list[str] = []
    unpublished: list[str] = []
    tags = dict(tags or {})
    properties = dict(properties or {})
    system, problem = as_mapping(system_metadata)
    if problem:
        problems.append(problem)
    sources = {"tags": tags, "properties": properties, "system_metadata": system}
    ft = _read_list(sources, FINETUNE_LISTS, "fine-tune allow list", unpublished, problems)
    inf = _read_list(sources, INFERENCE_LISTS, "inference allow list", unpublished, problems)
    tasks = _read_list(sources, TASKS, "fine-tune tasks", unpublished, problems) or []
    min_sku = _find(sources, MIN_SKU)
    if min_sku is None:
        unpublished.append("minimum SKU")
    options = _find(sources, DEPLOYMENT_OPTIONS)
    stages = {str(stage or "").lower(), str(properties.get("stage", "")).lower()}
    is_archived = bool(archived) or "archived" in stages or str(properties.get("isArchived", "")).lower() == "true"
    state, blocked, notes = lifecycle(sources, is_archived, today)
    text = (description or "").strip()
    if notes:
        text = (text + "\n" if text else "") + "; ".join(notes)
    return ModelInfo(
        name=name,
        version=str(version),
        id=id,
        tasks=tasks,
        finetune_allow_list=ft,
        inference_allow_list=inf,
        model_defaults=model_defaults(tags, problems),
        archived=is_archived,
        deprecated=blocked,
        description=text,
        tags={str(k): v if isinstance(v, str) else repr(v) for k, v in tags.items()},
        state=state,
        min_sku=min_sku_words(min_sku[1], problems) if min_sku else None,
        deployment_options=string_list(options[1], "deploymentOptions") if options else [],
        unpublished=unpublished,
        problems=problems,
    )


def from_sdk(model, raw_properties: Mapping | None = None, today: _dt.date | None = None) -> ModelInfo:
    """ModelInfo from an ``azure.ai.ml.entities.Model``, plus the REST body's properties when we have them
    (the SDK's Model drops ``isArchived`` and, for registry models, the system metadata)."""
    raw = raw_properties or {}
    system = getattr(model, "_system_metadata", None)
    if system is None:
        system = _get(raw, "system_metadata") if _get(raw, "system_metadata") is not None else _get(raw, "systemMetadata")
    return model_info(
        name=model.name,
        version=str(model.version),
        id=model.id,
        tags=model.tags,
        properties=model.properties,
        system_metadata=system,
        stage=getattr(model, "stage", None),
        archived=bool(_get(raw, "isArchived")) if _get(raw, "isArchived") is not None else None,
        description=model.description,
        today=today,
    )


def supports_task(info: ModelInfo, task: str) -> bool:
    return task in info.tasks


def check_size(size: str, allowed: list[str] | None, what: str, model: ModelInfo, fix: str) -> str | None:
    """Refuse a VM size outside the model's allow list (the message lists the allowed sizes). With no
    allow list, return the note that says the size was not checked: never a silent pass."""
    if allowed is None:
        why = [p for p in model.problems if what.split()[0] in p] or ["the registry published none"]
        return (f"{size} was not checked against an allow list: {why[0]} for {model.name} version "
                f"{model.version} ({what}); make sure the model supports it.")
    if size.lower() not in {s.lower() for s in allowed}:
        raise SpecError(
            f"{size} is not in {model.name} version {model.version}'s {what} allow list; "
            f"{fix} one of: {', '.join(allowed)}."
        )
    return None


def raw_properties(client, name: str, version: str) -> dict | None:
    """The registry REST body's ``properties`` for one version: the SDK's Model keeps neither
    ``isArchived`` nor a registry model's system metadata, so the card reads them from here. Uses the
    SDK's own request (``ModelOperations._get``); None when that is not possible (the card then says
    which facts it could not find)."""
    try:
        rest = client.models._get(name, version)  # noqa: SLF001 - the only call that keeps the raw body
        props = rest.properties
        return dict(props) if hasattr(props, "keys") else None
    except Exception:  # an extra: the card is still made from the Model alone
        return None


def parse_model_id(ref: str, version: str | None) -> tuple[str | None, str, str | None]:
    """(registry or None, name, version) from a name or an azureml://registries/... id."""
    if ref.startswith("azureml://registries/"):
        parts = ref[len("azureml://"):].split("/")
        registry = parts[1] if len(parts) > 1 else None
        name = parts[3] if len(parts) > 3 and parts[2] == "models" else ref
        ver = parts[5] if len(parts) > 5 and parts[4] == "versions" else version
        return registry, name, ver
    return None, ref, version
