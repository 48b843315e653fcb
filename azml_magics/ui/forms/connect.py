"""The ``%azml_connect --form``: pick a backend and its settings, then connect."""

from __future__ import annotations

import re
from pathlib import Path

import ipywidgets as widgets

from ...defaults import CREDENTIALS, DEFAULT_HOME
from ...display import Table
from ...errors import AzmlError
from .base import Form

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class ConnectForm(Form):
    """Pick a backend and its settings, then connect."""

    title = "connect"

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.workspace = None
        names = _backend_names()
        default = session.default_backend if session.default_backend in names else names[0]
        self.dropdown("backend", "backend", default, names, "local: this machine; azure: an Azure ML workspace")
        self.text("home", "home folder", str(session.home), "state, jobs, the MLflow store and endpoints")
        self.text("subscription_id", "subscription id", "", placeholder="(from config.json)")
        self.text("resource_group", "resource group", "", placeholder="(from config.json)")
        self.text("workspace_name", "workspace", "", placeholder="(from config.json)")
        self.text("config_path", "config.json", "", placeholder="(searched like MLClient.from_config)")
        self.text("registry", "model registry", session.registry)
        self.dropdown("credential", "credential", "auto", CREDENTIALS)
        self.connect_button = widgets.Button(description="Connect", button_style="primary", icon="plug")
        self.connect_button.on_click(lambda _: self.connect())
        self.azure_box = widgets.VBox(self.rows("subscription_id") + self.rows("resource_group")
                                      + self.rows("workspace_name") + self.rows("config_path")
                                      + self.rows("registry") + self.rows("credential"))
        self.widget = widgets.VBox([widgets.HTML("<b>Connect</b>"), self.fields["backend"].row, self.fields["home"].row,
                                    self.azure_box, self.connect_button, self.status, self.result])
        self.widget.add_class("azml-form")
        self.validate()

    def options(self) -> dict:
        keys = ("home", "subscription_id", "resource_group", "workspace_name", "config_path", "registry", "credential")
        backend = self.fields["backend"].text
        out = {k: self.fields[k].text or None for k in keys}
        if backend != "azure":
            out = {"home": out["home"]}
        return out

    def validate(self) -> dict | None:
        backend = self.fields["backend"].text
        self.azure_box.layout.display = "flex" if backend == "azure" else "none"
        errors: dict[str, str] = {}
        opts = self.options()
        if not opts.get("home"):
            errors["home"] = f"give a folder for state and local jobs, e.g. {DEFAULT_HOME}."
        if backend == "azure":
            sub = opts.get("subscription_id")
            if sub and not GUID.fullmatch(sub):
                errors["subscription_id"] = "a subscription id is a GUID like 00000000-0000-0000-0000-000000000000."
            given = [k for k in ("subscription_id", "resource_group", "workspace_name") if opts.get(k)]
            if given and len(given) < 3:
                for k in ("subscription_id", "resource_group", "workspace_name"):
                    if not opts.get(k):
                        errors.setdefault(k, "give subscription, resource group and workspace together, or none (config.json).")
            config = opts.get("config_path")
            if config and not Path(config).expanduser().exists():
                errors["config_path"] = f"file not found: {config}"
        self.show_errors(errors)
        self.connect_button.disabled = bool(errors)
        return None if errors else opts

    def connect(self):
        opts = self.validate()
        if opts is None:
            return None
        self.say("connecting…")
        try:
            ws = self.session.connect(self.fields["backend"].text, **opts)
        except AzmlError as exc:
            self.say(exc.message, error=True)
            return None
        self.workspace = ws
        rows = [["backend", ws.backend], ["workspace", ws.name]] + [[k, v] for k, v in ws.details.items()]
        self.say(f"connected to {ws.backend}: {ws.name}")
        self.publish(Table(["", ""], rows, title="Connected").html())
        return ws


def _backend_names() -> list[str]:
    from ... import backends

    names = sorted(backends.available())
    return names or ["local", "azure"]


def connect_form(session) -> ConnectForm:
    """What ``%azml_connect --form`` displays."""
    return ConnectForm(session)
