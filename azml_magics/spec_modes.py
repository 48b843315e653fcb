"""How a fine-tune runs (the spec's ``mode:``) and what each mode takes and bills.

- ``pipeline``: the registry's chat_completion_pipeline on a cluster (the original notebook's way).
- ``job``: a ``FineTuning`` job (``azure.ai.ml.finetuning.create_finetuning_job``) on managed compute,
  the VM size given as its ``instance_types`` and ``compute.job_tier`` as its queue tier (Microsoft's
  model-as-a-platform notebook).
- ``serverless``: the same job with no compute at all, billed per token, for models whose card lists
  ``ServerlessMaaS`` among its ``deploymentOptions`` (the model-as-a-service notebook).

Without ``mode:`` the mode is chosen from the model card (:func:`choose_mode`): serverless where the
card offers it and no compute is named, else the pipeline; the plan says which and why.

The hyperparameters a FineTuning job takes: its REST model types them ``dict[str, str]`` and no list
of names is published; Microsoft's two notebooks send exactly ``per_device_train_batch_size``,
``learning_rate`` and ``num_train_epochs``. So those three are accepted (typed and ranged as the
pipeline's inputs of the same names, sent as strings) and any other is refused before anything is
created, rather than guessed at.
"""

from __future__ import annotations

from .errors import SpecError
from .pipeline_inputs import PIPELINE_INPUTS
from .spec_values import Where, closest, format_value, normalize_value

MODES = ("pipeline", "job", "serverless")
JOB_TIERS = ("Spot", "Basic", "Standard", "Premium")  # the SDK's QueueSettings.job_tier values
JOB_PARAMETERS = ("per_device_train_batch_size", "learning_rate", "num_train_epochs")
SERVERLESS_OPTION = "ServerlessMaaS"
BILLING = {
    "pipeline": "VM hours of the compute cluster while it has nodes (it scales to its min_instances when idle)",
    "job": "VM hours of the managed compute the job runs on, for the job's duration",
    "serverless": "per token trained (no cluster), then per token served by the serverless endpoint",
}


def parse_mode(raw: dict, spec, where: Where) -> None:
    """Check ``mode:``, ``compute.job_tier`` and, for an explicit job/serverless mode, the parameter names."""
    mode = raw.get("mode")
    if mode is not None:
        if mode not in MODES:
            match = closest(str(mode), MODES)
            hint = f"did you mean '{match}'? " if match else ""
            raise where.error(("mode",), f"mode '{mode}' is not a fine-tune mode; {hint}use one of {', '.join(MODES)}.")
        spec.mode = mode
    compute = raw.get("compute") if isinstance(raw.get("compute"), dict) else {}
    if compute.get("job_tier") is not None:
        tier = str(compute["job_tier"]).capitalize()
        if tier not in JOB_TIERS:
            where.report(where.error(("compute", "job_tier"),
                                     f"compute.job_tier must be one of {', '.join(JOB_TIERS)} (got {compute['job_tier']!r})."))
        else:
            spec.compute.job_tier = tier
        if spec.mode == "pipeline":
            where.report(where.error(("compute", "job_tier"), "compute.job_tier is a FineTuning job's queue tier; "
                                     "remove it or set mode: job."))
    if spec.mode == "serverless" and "compute" in raw:
        where.report(where.error(("compute",), "mode serverless runs on no compute; remove the compute section, "
                                 "or set mode: job to fine-tune on a VM size."))
    if spec.mode in ("job", "serverless"):
        for key in spec.parameters:
            with where.guard():
                check_job_parameter(key, spec.mode, where("parameters", key))


def check_job_parameter(key: str, mode: str, prefix: str = "") -> None:
    if key not in JOB_PARAMETERS:
        match = closest(key, JOB_PARAMETERS)
        hint = f"did you mean '{match}'? " if match else ""
        raise SpecError(f"{prefix}parameter '{key}' is not a hyperparameter a FineTuning job takes (mode {mode}); "
                        f"{hint}use {', '.join(JOB_PARAMETERS)}, or mode: pipeline for the others.",
                        path=f"parameters.{key}")


def job_hyperparameters(params: dict) -> dict[str, str]:
    """The checked parameters as the strings the FineTuning job's ``hyperParameters`` carries."""
    out = {}
    for key, value in params.items():
        check_job_parameter(key, "job")
        out[key] = format_value(normalize_value(PIPELINE_INPUTS[key], value))
    return out


def choose_mode(spec, model, *, jobs_supported: bool) -> tuple[str, str]:
    """(mode, why): the spec's own, or from the card. Raise when the model does not support that mode or a
    parameter is not one that mode takes (a mode chosen from the card had no line to name before)."""
    offers = SERVERLESS_OPTION in (model.deployment_options or [])
    mode, why = spec.mode, "from your spec"
    if mode is None:
        if not jobs_supported:
            return "pipeline", ""  # the only way this backend runs (nothing to say, nothing billed by the hour)
        if offers and not getattr(spec, "compute_named", False):
            mode, why = "serverless", f"chosen from the model card: {model.name} offers {SERVERLESS_OPTION} and no compute is named"
        else:
            reason = "a compute is named" if offers else f"{model.name}'s card does not offer {SERVERLESS_OPTION}"
            return "pipeline", f"chosen from the model card: {reason}"
    if mode == "pipeline" and not jobs_supported:
        return "pipeline", ""
    if mode != "pipeline" and not jobs_supported:
        raise SpecError(f"mode {mode} needs Azure ML's FineTuning jobs, which this backend does not run; "
                        "use mode: pipeline or connect with %azml_connect --backend azure.", path="mode")
    if mode == "serverless" and not offers:
        options = ", ".join(model.deployment_options or []) or "none published"
        raise SpecError(f"model {model.name} does not offer serverless fine-tuning (its deploymentOptions: {options}); "
                        "use mode: job or mode: pipeline, or pick a model that lists ServerlessMaaS (%azml_models).",
                        path="mode")
    if mode != "pipeline":
        for key in spec.parameters:
            check_job_parameter(key, mode)
    return mode, why
