"""What the system registry ``azureml`` holds, generated from the published asset specs in
``assets/azureml-assets/`` (Azure/azureml-assets, MIT; see its SOURCE.md): one model version per
``models/*/spec.yaml`` and every ``components/chat_completion_pipeline-<version>.yaml``.

Nothing here is hand-written: a model's tags, system metadata and archived flag are the spec's own.
On the wire every tag value is a string (a mapping becomes a Python literal, which the seed notebook
parses with ``ast.literal_eval``).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

ASSETS = Path(__file__).parent / "assets" / "azureml-assets"
PIPELINE = "chat_completion_pipeline"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    tags: dict  # as published (mappings kept as mappings)
    system_metadata: dict
    archived: bool
    description: str
    source: str  # the spec file, relative to ASSETS

    def wire_tags(self) -> dict[str, str]:
        return {str(k): v if isinstance(v, str) else repr(v) for k, v in self.tags.items()}

    def finetune_retired(self, today: _dt.date | None = None) -> _dt.date | None:
        """The fine-tune retirement date when it has passed (None while fine-tuning is allowed)."""
        raw = str((self.system_metadata.get("deprecation") or {}).get("finetuneRetirementDate") or "")[:10]
        try:
            day = _dt.date.fromisoformat(raw)
        except ValueError:
            return None
        return day if day <= (today or _dt.date.today()) else None


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


@lru_cache(maxsize=1)
def models() -> dict[str, list[ModelSpec]]:
    """Registry model name -> its versions (one per published spec), oldest first."""
    out: dict[str, list[ModelSpec]] = {}
    for spec_file in sorted(ASSETS.glob("models/*/spec.yaml")):
        spec = _load(spec_file)
        system = spec.get("system_metadata") or {}
        out.setdefault(spec["name"], []).append(ModelSpec(
            name=spec["name"], version=str(spec["version"]), tags=dict(spec.get("tags") or {}),
            system_metadata=dict(system), archived=bool(spec.get("isArchived", False)),
            description=str(system.get("summary") or spec.get("description") or ""),
            source=str(spec_file.relative_to(ASSETS)),
        ))
    for versions in out.values():
        versions.sort(key=lambda m: int(m.version) if m.version.isdigit() else 0)
    return out


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


@lru_cache(maxsize=1)
def components() -> dict[str, dict[str, dict]]:
    """Component name -> version -> the published spec (YAML as a dict), versions oldest first."""
    found: dict[str, dict[str, dict]] = {}
    for path in ASSETS.glob("components/*.yaml"):
        spec = _load(path)
        found.setdefault(spec["name"], {})[str(spec["version"])] = spec
    return {name: dict(sorted(v.items(), key=lambda kv: _version_key(kv[0]))) for name, v in found.items()}


def component_versions(name: str) -> list[str]:
    return list(components().get(name, {}))


def latest_component_version(name: str) -> str | None:
    versions = component_versions(name)
    return versions[-1] if versions else None


def component_spec(name: str, version: str) -> dict:
    """The component's interface as the registry's ``componentSpec`` carries it: the published YAML
    without its ``jobs`` (the child components they name are not in this registry copy)."""
    spec = components()[name][version]
    return {k: v for k, v in spec.items() if k != "jobs"}


def pipeline_steps(version: str) -> list[str]:
    """The step names of the published pipeline component, in the spec's order."""
    return list((components()[PIPELINE][version].get("jobs") or {}))
