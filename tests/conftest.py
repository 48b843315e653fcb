"""Fixtures every test folder uses: a throwaway home, a real IPython shell, the offline tiny model.

Each test folder has its own ``conftest.py`` for the fixtures only its tests use.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["azureml_emulator.pytest_plugin"]


@pytest.fixture
def azml_home(tmp_path, monkeypatch):
    """A fresh home folder for state, jobs, MLflow and endpoints; nothing outside tmp is touched.
    A test that fails half-way leaves no endpoint server or trainer of this home running."""
    home = tmp_path / "azml_home"
    monkeypatch.setenv("AZML_MAGICS_HOME", str(home))
    yield home
    stop_leftovers(home)


def stop_leftovers(home: Path) -> None:
    """Stop the endpoints and trainers a home recorded, by their verified pids (never by name)."""
    if not ((home / "endpoints").is_dir() or (home / "jobs").is_dir()):
        return
    from azml_magics.backends.local import endpoints, jobs

    for record in endpoints.records(home):
        endpoints.stop_endpoint(home, record["name"])
    for name in jobs.list_names(home):
        jobs.cancel(home / "jobs" / name, grace=2)


@pytest.fixture
def ip(azml_home):
    """A real IPython InteractiveShell with azml_magics loaded fresh (no mocks)."""
    from IPython.core.interactiveshell import InteractiveShell

    import azml_magics

    shell = InteractiveShell.instance()
    shell.magics_manager.registry.pop("AzmlMagics", None)
    magics = azml_magics.load_ipython_extension(shell)
    shell.extension_manager.loaded.add("azml_magics")
    shell.azml = magics
    yield shell
    azml_magics.unload_ipython_extension(shell)
    shell.config.pop("AzmlMagics", None)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny model, built into a session cache that child processes find through AZML_MAGICS_CACHE."""
    from azml_magics.backends.local import tiny_model

    cache = os.environ.get("AZML_MAGICS_TEST_CACHE") or str(tmp_path_factory.mktemp("azml-cache"))
    os.environ["AZML_MAGICS_CACHE"] = cache
    return tiny_model.ensure_tiny_model()
