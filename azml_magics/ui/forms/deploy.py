"""The ``%azml_deploy --form``: deploy a registered model to an endpoint."""

from __future__ import annotations

import threading

import ipywidgets as widgets

from ...defaults import ENDPOINT_PREFIX
from ...display import Table
from ...errors import AzmlError
from ...spec import DEPLOY_KEYS, DeploySpec, check_deploy_dict
from ...spec_local import ENGINES
from .base import Form, _parse_number

# VM sizes offered for inference (the user may type any other).
COMMON_INFERENCE_SIZES = (
    "Standard_NC6s_v3", "Standard_NC12s_v3", "Standard_NC24s_v3", "Standard_NC24ads_A100_v4",
    "Standard_NC48ads_A100_v4", "Standard_NC96ads_A100_v4", "Standard_ND96asr_v4", "Standard_DS3_v2",
)

class DeployForm(Form):
    """Deploy a registered model to an endpoint (the ``%azml_deploy`` options as a form)."""

    title = "deploy"

    def __init__(self, session, *, threaded: bool = True):
        super().__init__()
        self.session = session
        self.threaded = threaded
        self.endpoint = None
        self.spec: DeploySpec | None = None
        self._worker: threading.Thread | None = None
        d = DeploySpec(model="last")
        models = self._registered()
        self.combo("model", "registered model", models[-1] if models else "last", models + ["last"],
                   "name:version, name@latest, or 'last' (the last one registered here)")
        self.text("endpoint", "endpoint name", "", placeholder=f"({ENDPOINT_PREFIX}-<time>)")
        self.text("deployment", "deployment", d.deployment)
        self.combo("instance_type", "VM size", d.instance_type, COMMON_INFERENCE_SIZES)
        self.text("instance_count", "instances", str(d.instance_count))
        self.text("request_timeout_ms", "request timeout (ms)", str(d.request_timeout_ms))
        if getattr(getattr(session, "backend", None), "name", None) == "local":  # Azure has no engine choice
            self.dropdown("engine", "engine", "auto", ENGINES,
                          "auto: vllm with a CUDA GPU and the vllm extra, else transformers' continuous batching")
        self.deploy_button = widgets.Button(description="Deploy", button_style="primary", icon="cloud-upload")
        self.deploy_button.on_click(lambda _: self.deploy())
        self.widget = widgets.VBox([widgets.HTML("<b>Deploy</b>"), *[f.row for f in self.fields.values()],
                                    self.deploy_button, self.status, self.result])
        self.widget.add_class("azml-form")
        self.validate()

    def _registered(self) -> list[str]:
        state = self.session.state
        return [r.name for r in state.list("models")] if state is not None else []

    def to_dict(self) -> dict:
        """The raw deploy spec the form holds, in the YAML's shape (each field's path is its key)."""
        numbers = {k for k, v in vars(DeploySpec(model="")).items() if isinstance(v, int)}
        raw: dict = {}
        for key, field in self.fields.items():
            text = field.text
            if key in DEPLOY_KEYS and text:
                raw[key] = _parse_number(text) if key in numbers else text
        return raw

    def validate(self) -> DeploySpec | None:
        """Every field checked at once with the spec's own rules; the spec when all pass."""
        raw = self.to_dict()
        checked = check_deploy_dict(raw)
        errors = self.by_path(checked.errors)
        if not raw.get("model"):
            errors["model"] = "name a registered model, e.g. my-model:3, or 'last'."
        self.spec = checked.spec
        self.show_errors(errors)
        self.deploy_button.disabled = self.spec is None
        return self.spec

    def deploy(self):
        """Deploy in a worker thread (it takes minutes on Azure); the form shows progress and the result."""
        spec = self.validate()
        if spec is None:
            return None
        self.deploy_button.disabled = True
        self.say(f"deploying {spec.model}… (minutes on Azure)")
        if self.threaded:
            self._worker = threading.Thread(target=self._deploy, args=(spec,), name="azml-deploy", daemon=True)
            self._worker.start()
            return None
        return self._deploy(spec)

    def wait(self, timeout: float | None = None):
        if self._worker is not None:
            self._worker.join(timeout)
        return self.endpoint

    def _deploy(self, spec: DeploySpec):
        try:
            endpoint = self.session.deploy(spec)
        except Exception as exc:  # shown in the form: a worker thread has nowhere else to report
            self.say(exc.message if isinstance(exc, AzmlError) else f"{type(exc).__name__}: {exc}", error=True)
            self.deploy_button.disabled = False
            return None
        self.endpoint = endpoint
        rows = [["endpoint", endpoint.name], ["deployment", endpoint.deployment],
                ["scoring URI", endpoint.scoring_uri], ["state", endpoint.state]]
        notes = [f"Chat with it: %azml_chat {endpoint.name}", f"Delete it: %azml_delete {endpoint.name}"]
        self.publish(Table(["", ""], rows, title="Deployed", notes=notes).html())
        self.say(f"deployed {endpoint.name}")
        self.deploy_button.disabled = False
        return endpoint


def deploy_form(session) -> DeployForm:
    """What ``%azml_deploy --form`` displays."""
    return DeployForm(session)
