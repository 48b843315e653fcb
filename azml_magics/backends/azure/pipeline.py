"""The ``chat_completion_pipeline`` job: the notebook's pipeline cell, fed with checked parameters.

What changes from the notebook: parameters are the merged, visible ones (the user's values win over
``model_specific_defaults``; keys the fetched component lacks were dropped before we get here), data
inputs are content-versioned data assets, and the component version can be pinned.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import SpecError
from ..base import ComputeInfo, DataFiles, ModelInfo
from .remote import is_not_found, remote_error

COMPONENT = "chat_completion_pipeline"
COMPUTE_INPUTS = ("compute_model_import", "compute_preprocess", "compute_finetune", "compute_model_evaluation")
OUTPUT = "mlflow_model_folder"


def get_component(registry, version: str | None = None):
    """The registry's component, latest or pinned; a missing pinned version is the user's to fix."""
    try:
        if version:
            return registry.components.get(name=COMPONENT, version=version)
        return registry.components.get(name=COMPONENT, label="latest")
    except Exception as err:
        if version and is_not_found(err):
            raise SpecError(
                f"{COMPONENT} version {version} is not in the registry; remove pipeline_version to use the latest."
            ) from None
        raise remote_error(err, f"fetch {COMPONENT} from the registry") from None


def input_names(component) -> set[str]:
    return {str(name) for name in (component.inputs or {})}


@dataclass
class PipelineCall:
    """The keyword arguments the component is called with, before the SDK sees them."""

    values: dict[str, object]  # plain values (parameters, compute names, the model id)
    files: dict[str, str]  # input name -> azureml:<name>:<version> (or a path)

    def kwargs(self) -> dict[str, object]:
        from azure.ai.ml import Input

        out = dict(self.values)
        for key, path in self.files.items():
            out[key] = Input(type="uri_file", path=path)
        return out


def call_arguments(
    effective, inputs: set[str], model: ModelInfo, compute: ComputeInfo | None, data_uris: dict[str, str]
) -> PipelineCall:
    """Model id, compute names, GPUs, data and every parameter that is not the component's own default."""
    values: dict[str, object] = {"mlflow_model_path": model.id}
    if compute is not None:
        for key in COMPUTE_INPUTS:
            if key in inputs:
                values[key] = compute.name
    for row in effective.rows:
        if row.source == "component default":
            continue  # the component applies its own defaults; sending ours could only disagree
        if row.name not in inputs:
            raise SpecError(f"parameter '{row.name}' is not an input of the {COMPONENT} version in use.")
        values[row.name] = row.value
    files: dict[str, str] = {}
    for split, key in (("train", "train_file_path"), ("test", "test_file_path"), ("validation", "validation_file_path")):
        if split in data_uris:
            files[key] = data_uris[split]
    return PipelineCall(values, files)


def build_job(component, call: PipelineCall, display_name: str, tags: dict[str, str] | None = None):
    """The notebook's ``@pipeline`` function, settings and output mapping."""
    from azure.ai.ml.dsl import pipeline

    kwargs = call.kwargs()

    @pipeline(name=display_name)
    def create_pipeline():
        step = component(**kwargs)
        return {"trained_model": getattr(step.outputs, OUTPUT)}

    try:
        job = create_pipeline()
    except Exception as err:  # the SDK refuses a keyword the component lacks: name it, one line
        if type(err).__name__ not in ("UnexpectedKeywordError", "TypeError", "ValidationException"):
            raise
        message = str(err).split(", valid keywords")[0]
        raise SpecError(f"{COMPONENT} refused the call: {message}.") from None
    job.settings.force_rerun = True
    job.settings.continue_on_step_failure = False
    if tags:
        job.tags = {**(job.tags or {}), **tags}
    return job


def data_uris(uploaded: dict) -> dict[str, str]:
    return {split: item.uri for split, item in uploaded.items()}


def split_files(data: DataFiles | None) -> dict[str, str]:
    if data is None:
        raise SpecError("the Azure backend needs training data; give data: in the spec.")
    return {k: v for k, v in (("train", data.train), ("test", data.test), ("validation", data.validation)) if v}
