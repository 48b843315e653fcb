"""Core fixtures: a real IPython shell with the extension loaded, a throwaway local home."""

from __future__ import annotations

import pytest


@pytest.fixture
def azml_home(tmp_path, monkeypatch):
    home = tmp_path / "azml_home"
    monkeypatch.setenv("AZML_MAGICS_HOME", str(home))
    return home
