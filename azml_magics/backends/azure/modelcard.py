"""Turn a registry model (tags, properties, system metadata) into a ModelInfo, without the SDK.

Registry models carry what we need in three places, depending on their age: tags with Python
literals (``finetune_compute_allow_list``, ``model_specific_defaults``), properties with
comma-separated SKU lists (``finetune-recommended-sku``), and system metadata on newer assets.
Everything here takes plain dicts, so it is tested without a network.
"""

from __future__ import annotations

import ast
import datetime as _dt
import re
from typing import Mapping

from ...errors import SpecError
from ..base import ModelInfo

FINETUNE_LIST_KEYS = (
    "finetune_compute_allow_list",
    "finetune-recommended-sku",
    "finetune_recommended_sku",
    "finetune_recommended_skus",
    "finetuneRecommendedSkus",
)
INFERENCE_LIST_KEYS = (
    "inference_compute_allow_list",
    "inference-recommended-sku",
    "inference_recommended_sku",
    "inference_recommended_skus",
    "inferenceRecommendedSkus",
)
TASK_KEYS = ("finetuning-tasks", "finetuning_tasks", "finetuningTasks", "task", "tasks")


def literal(value: object, what: str) -> object:
    """A tag value written as a Python literal; parsed with ``ast.literal_eval``, never ``eval``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return _bare_list(text, what)


def _bare_list(text: str, what: str) -> object:
    # YAML flow lists such as "[Standard_NC6s_v3, Standard_NC12s_v3]" reach us unquoted.
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else None
    if inner is not None:
        return [item.strip().strip("'\"") for item in inner.split(",") if item.strip()]
    raise SpecError(f"the model's {what} tag is not a readable literal ({text[:60]!r}); report it to the model's owner.")


def sku_list(value: object, what: str) -> list[str] | None:
    """A SKU list from a list, a Python list literal, or a comma-separated string."""
    if value is None:
        return None
    if isinstance(value, str) and not value.strip().startswith(("[", "(")):
        items = [part.strip() for part in value.split(",")]
    else:
        parsed = literal(value, what)
        if parsed is None:
            return None
        if isinstance(parsed, str):
            items = [part.strip() for part in parsed.split(",")]
        elif isinstance(parsed, (list, tuple, set)):
            items = [str(part).strip() for part in parsed]
        else:
            raise SpecError(f"the model's {what} is not a list of VM sizes (got {type(parsed).__name__}).")
    return [item for item in items if item]


def _first(sources: list[Mapping], keys: tuple[str, ...]) -> tuple[str, object] | None:
    for source in sources:
        for key in keys:
            if key in source and source[key] not in (None, ""):
                return key, source[key]
    return None


def _as_mapping(value: object) -> dict:
    if isinstance(value, Mapping):
        return dict(value)
    if value is None:
        return {}
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return dict(as_dict())
    return {k: v for k, v in vars(value).items() if not k.startswith("_")} if hasattr(value, "__dict__") else {}


def model_defaults(tags: Mapping) -> dict[str, object]:
    raw = tags.get("model_specific_defaults")
    if raw in (None, ""):
        return {}
    parsed = literal(raw, "model_specific_defaults")
    if not isinstance(parsed, dict):
        raise SpecError("the model's model_specific_defaults tag is not a mapping; report it to the model's owner.")
    return {str(k): v for k, v in parsed.items()}


def _date(value: object) -> _dt.date | None:
    if not value:
        return None
    text = str(value).strip()[:10]
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        return None


def _dates_in_text(text: str) -> tuple[_dt.date | None, _dt.date | None]:
    """(deprecation, retirement) from a note such as 'Fine-tuning deprecation 2025-06-30, retirement 2025-08-30.'"""
    found = {}
    for word, day in re.findall(r"(deprecat\w*|retire\w*)\D{0,20}?(\d{4}-\d{2}-\d{2})", text, flags=re.I):
        found.setdefault("retire" if word.lower().startswith("retire") else "deprecate", _date(day))
    return found.get("deprecate"), found.get("retire")


def lifecycle(
    tags: Mapping, properties: Mapping, stage: str | None, today: _dt.date | None = None
) -> tuple[bool, str | None, list[str]]:
    """(archived, why it cannot be fine-tuned now or None, notes about dates still ahead).

    Read from the registry's ``FinetuneDeprecationDate`` / ``FinetuneRetirementDate`` tags, or a
    ``deprecation`` note in the properties; archived from the stage or ``isArchived``.
    """
    today = today or _dt.date.today()
    stages = {str(stage or "").lower(), str(properties.get("stage", "")).lower()}
    archived = "archived" in stages or str(properties.get("isArchived", "")).lower() == "true"
    deprecate = _date(tags.get("FinetuneDeprecationDate"))
    retire = _date(tags.get("FinetuneRetirementDate"))
    note = str(properties.get("deprecation") or tags.get("deprecation") or "")
    if note and not (deprecate or retire):
        deprecate, retire = _dates_in_text(note)
    notes: list[str] = []
    blocked: str | None = None
    if retire and retire <= today:
        blocked = f"fine-tuning retired on {retire.isoformat()}"
    elif deprecate and deprecate <= today:
        blocked = f"fine-tuning deprecated on {deprecate.isoformat()}"
    else:
        if deprecate:
            notes.append(f"fine-tuning deprecated from {deprecate.isoformat()}")
        if retire:
            notes.append(f"fine-tuning retired from {retire.isoformat()}")
    return archived, blocked, notes


def model_info(
    *,
    name: str,
    version: str,
    id: str,
    tags: Mapping | None = None,
    properties: Mapping | None = None,
    system_metadata: object = None,
    stage: str | None = None,
    description: str | None = None,
    today: _dt.date | None = None,
) -> ModelInfo:
    """The short card the magics show, with allow lists and defaults parsed."""
    tags = dict(tags or {})
    properties = dict(properties or {})
    system = _as_mapping(system_metadata)
    sources = [tags, system, properties]
    ft = _first(sources, FINETUNE_LIST_KEYS)
    inf = _first(sources, INFERENCE_LIST_KEYS)
    tasks_raw = _first([properties, system, tags], TASK_KEYS)
    tasks = sku_list(tasks_raw[1], "task") if tasks_raw else []
    archived, blocked, notes = lifecycle(tags, properties, stage, today)
    text = (description or "").strip()
    if notes:
        text = (text + "\n" if text else "") + "; ".join(notes)
    return ModelInfo(
        name=name,
        version=str(version),
        id=id,
        tasks=tasks or [],
        finetune_allow_list=sku_list(ft[1], ft[0]) if ft else None,
        inference_allow_list=sku_list(inf[1], inf[0]) if inf else None,
        model_defaults=model_defaults(tags),
        archived=archived,
        deprecated=blocked,
        description=text,
        tags={str(k): str(v) for k, v in tags.items()},
    )


def from_sdk(model, today: _dt.date | None = None) -> ModelInfo:
    """ModelInfo from an ``azure.ai.ml.entities.Model``."""
    return model_info(
        name=model.name,
        version=str(model.version),
        id=model.id,
        tags=model.tags,
        properties=model.properties,
        system_metadata=getattr(model, "_system_metadata", None),
        stage=getattr(model, "stage", None),
        description=model.description,
        today=today,
    )


def supports_task(info: ModelInfo, task: str) -> bool:
    return task in info.tasks


def check_size(size: str, allowed: list[str] | None, what: str, model: ModelInfo, fix: str) -> None:
    """Refuse a VM size outside the model's allow list; the message lists the allowed sizes."""
    if allowed is None:
        return
    if size.lower() not in {s.lower() for s in allowed}:
        raise SpecError(
            f"{size} is not in {model.name} version {model.version}'s {what} allow list; "
            f"{fix} one of: {', '.join(allowed)}."
        )
