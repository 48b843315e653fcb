"""The plan of a fine-tune: everything that will be submitted, checked, before anything is created.

A :class:`FinetunePlan` is made once (by ``Session.plan_finetune``) and flows down unchanged: the dry
run shows it, the forms show it, and ``Backend.submit(plan)`` takes it. It holds the spec, the model
card, the checked compute, the effective parameters (each value with its source) and the checked data.
The display name is computed here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backends.base import ComputeInfo, DataFiles, ModelInfo
from .display import Table
from .errors import SpecError
from .pipeline_inputs import PIPELINE_INPUTS
from .spec import FinetuneSpec, format_value, normalize_value


# ----------------------------------------------------------------------------- parameters
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
                f"remove it or pin pipeline_version to one that has it.",
                path=f"parameters.{key}",
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
        values[key] = EffectiveRow(key, value, "model default", format_value(prev.value) if prev else None)
    for key, value in (derived or {}).items():
        if key in inputs:
            prev = values.get(key)
            values[key] = EffectiveRow(key, value, "derived", format_value(prev.value) if prev else None)
    for key, value in user.items():
        prev = values.get(key)
        values[key] = EffectiveRow(key, value, "your spec", f"{format_value(prev.value)} ({prev.source})" if prev else None)
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


# ----------------------------------------------------------------------------- the plan
@dataclass
class FinetunePlan:
    """Everything that will be submitted, checked, before anything is created."""

    spec: FinetuneSpec
    model: ModelInfo
    compute: ComputeInfo | None
    effective: EffectiveParameters
    data: DataFiles | None = None  # the clean files of this submission, written by Session.finetune
    data_report: object = None  # azml_magics.data.ValidationReport, when data was checked
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    display_name: str = ""
    estimate: object = None  # azml_magics.estimate.Estimate, from a backend that estimates
    mode: str = "pipeline"  # pipeline | job | serverless (spec_modes.py)
    mode_reason: str = ""  # from the spec, or why the model card chose it

    @property
    def hyperparameters(self) -> dict[str, str]:
        """A FineTuning job's hyperParameters: the spec's values as the strings the job type takes."""
        from .spec_modes import job_hyperparameters

        return job_hyperparameters({r.name: r.value for r in self.effective.rows if r.source == "your spec"})

    def refuse_if_it_does_not_fit(self) -> None:
        """A run the estimate says will not fit in the device's memory is refused, with the numbers."""
        if self.estimate is not None and not self.estimate.fits:
            raise SpecError(self.estimate.refusal())

    def __post_init__(self):
        if not self.display_name and self.mode != "pipeline":  # a FineTuning job: the mode and the spec's values
            base = self.spec.model.rstrip("/").split("/")[-1].split(":")[0].split("@")[0]
            values = "".join(f"-{k}{format_value(v)}" for k, v in sorted(self.spec.parameters.items()))
            self.display_name = self.spec.name or f"{base}-ultrachat-{self.mode}{values}"
        if not self.display_name:
            gpus = self.compute.gpus_per_node if self.compute else 1
            self.display_name = self.spec.name or pipeline_display_name(self.spec.model, self.effective.values, gpus)


def refuse_unusable_model(model: ModelInfo) -> None:
    """An archived or deprecated model cannot be fine-tuned: say so before anything else is checked."""
    if model.archived or model.deprecated:
        why = model.state if model.state != "live" else "archived" if model.archived else f"deprecated ({model.deprecated})"
        raise SpecError(
            f"model {model.name} version {model.version} is {why} in the registry and cannot be fine-tuned; "
            "pick another with %azml_models (models that support chat-completion fine-tuning)."
        )


def make_plan(spec: FinetuneSpec, model: ModelInfo, compute: ComputeInfo | None, component_inputs: set[str] | None,
              ignored: dict[str, str], mode: tuple[str, str] = ("pipeline", "")) -> FinetunePlan:
    """Merge the parameters for this model, compute and component; note what was dropped. A FineTuning
    job (mode job/serverless) gets only the spec's own values: the service applies its defaults."""
    from .spec_modes import BILLING

    if mode[0] != "pipeline":
        rows = [EffectiveRow(k, v, "your spec") for k, v in sorted(spec.parameters.items())]
        plan = FinetunePlan(spec, model, compute, EffectiveParameters(rows), mode=mode[0], mode_reason=mode[1])
        plan.notes.append(f"mode: {mode[0]} ({mode[1]}); bills {BILLING[mode[0]]}")
        plan.notes.append("a FineTuning job takes only the hyperparameters above; the service sets the rest")
        if compute is not None:
            plan.notes.extend(compute.notes)
        return plan
    derived = {}
    if compute is not None and compute.gpus_per_node:
        derived["number_of_gpu_to_use_finetuning"] = compute.gpus_per_node
    effective = merge_parameters(spec.parameters, model.model_defaults, component_inputs, derived)
    effective.ignored = dict(ignored)
    plan = FinetunePlan(spec, model, compute, effective, mode="pipeline", mode_reason=mode[1])
    if mode[1]:  # a backend with FineTuning jobs (Azure): say which mode and what it bills
        plan.notes.append(f"mode: pipeline ({mode[1]}); bills {BILLING['pipeline']}")
    if compute is not None:
        plan.notes.extend(compute.notes)
    if effective.dropped_model_defaults:
        plan.notes.append(
            "model defaults that are not inputs of the component were dropped: "
            + ", ".join(f"{k}={v}" for k, v in effective.dropped_model_defaults.items())
        )
    return plan


def check_plan_data(plan: FinetunePlan, tokenizer, out: str | None = None):
    """Validate every row of the spec's data (strict: raise; drop: count); returns the report.

    Hub data is prepared into ``out`` (a scratch folder for a dry run) or the spec's folder; local
    files are only read. Nothing of this submission is written here: ``write_clean`` does that later.
    """
    from . import data

    d = plan.spec.data
    if d.is_local_files:
        files = {d.train_split: d.train}
        if d.test:
            files[d.test_split] = d.test
        if d.validation:
            files["validation"] = d.validation
    else:
        splits = (d.train_split, d.test_split) if out else data.SPLITS
        prepared = data.prepare(d.source, fraction=d.fraction, rows=d.rows, out=out or d.folder,
                                splits=splits, train_split=d.train_split, test_split=d.test_split)
        files = {k: str(v) for k, v in prepared.files.items() if k in (d.train_split, d.test_split)}
    max_len = plan.effective.values.get("max_seq_length", -1)
    report = data.validate(
        files,
        tokenizer=tokenizer,
        max_seq_length=None if max_len in (-1, None) else int(max_len),
        supports_system_role=plan.model.supports_system_role,
        policy=d.policy,
        train_split=d.train_split,
        test_split=d.test_split,
    )
    report.raise_for_problems()
    return report


# ----------------------------------------------------------------------------- display
def effective_table(plan: FinetunePlan) -> Table:
    """The dry-run table: every parameter that will be sent, and where its value came from."""
    eff = plan.effective
    rows = [[r.name, r.value, r.source, r.overrides or ""] for r in eff.rows]
    notes = [f"display name: {plan.display_name}", f"model: {plan.model.id}"]
    if plan.compute is not None:
        gpus = f", {plan.compute.gpus_per_node} GPU per node" if plan.compute.size.startswith("Standard_") else ""
        notes.append(f"compute: {plan.compute.name} ({plan.compute.size}{gpus})")
    if eff.dropped_model_defaults:
        notes.append(
            "dropped model defaults (not inputs of this component): "
            + ", ".join(f"{k}={v}" for k, v in sorted(eff.dropped_model_defaults.items()))
        )
    if eff.ignored:
        notes.append("no meaning on this backend (ignored): " + ", ".join(sorted(eff.ignored)))
    report = plan.data_report
    if report is not None:
        kept = ", ".join(f"{split}: {r.kept} rows" for split, r in report.files.items())
        dropped = f"; {report.dropped} dropped" if getattr(report, "dropped", 0) else ""
        notes.append(f"data checked: {kept}{dropped}")
    notes.extend(plan.notes)
    if plan.estimate is not None:
        notes.extend(plan.estimate.lines())
    return Table(["parameter", "value", "source", "replaces"], rows, title="Effective parameters", notes=notes)
