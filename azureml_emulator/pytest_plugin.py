"""pytest plugin: fixtures for the Azure ML emulator. A suite lists it in its top conftest.py,
``pytest_plugins = ["azureml_emulator.pytest_plugin"]``, as tests/conftest.py and this package's tests do.

- ``azure_emulator_session``: one emulator (with Azurite) for the whole session.
- ``azure_emulator``: that emulator with faults reset, created resources and the request log cleared, and its ``env`` set
  in ``os.environ`` for the test (so an unmodified ``MLClient`` talks to it).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def azure_emulator_session():
    from azureml_emulator.server import Emulator

    emulator = Emulator(job_duration=3.0).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def azure_emulator(azure_emulator_session, monkeypatch):
    emulator = azure_emulator_session
    emulator.faults.reset()
    emulator.state.reset_resources()
    emulator.state.clear_log()
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    yield emulator
    emulator.faults.reset()
