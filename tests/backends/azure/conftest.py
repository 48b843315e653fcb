"""Fixtures of the Azure backend's tests: the shared emulator and a Session connected to it."""

from __future__ import annotations

import pytest

from azml_magics import api


@pytest.fixture
def emulator(azure_emulator):
    """The shared emulator (azureml_emulator/pytest_plugin.py): resources, log and faults reset, env set."""
    azure_emulator.faults.job_duration = 2.0
    return azure_emulator


@pytest.fixture
def azure(emulator, tmp_path, monkeypatch):
    """A connected Session on the emulator; faults reset, cwd and home in tmp."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    session = api.Session(home=tmp_path / "home", poll_interval=0.05)
    session.connect("azure", subscription_id=emulator.subscription_id, resource_group=emulator.resource_group,
                     workspace_name=emulator.workspace)
    session.messages = []
    session.backend.progress = session.messages.append
    session.backend.deploy_timeout = 60
    return session
