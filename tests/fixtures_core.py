"""Core fixtures: a real IPython shell with the extension loaded, a throwaway local home."""

from __future__ import annotations

import pytest


@pytest.fixture
def azml_home(tmp_path, monkeypatch):
    """A fresh home folder for state, jobs, MLflow and endpoints; nothing outside tmp is touched."""
    home = tmp_path / "azml_home"
    monkeypatch.setenv("AZML_MAGICS_HOME", str(home))
    return home


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


def run_cell(shell, code):
    """Run a cell; return (result, stdout text, rich outputs)."""
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        result = shell.run_cell(code, store_history=False)
    return result, cap.stdout + cap.stderr, cap.outputs
