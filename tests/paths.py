"""Where things are, for every test folder: the repository root, the bundled sample, shared/, artifacts."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "azml_magics" / "sample_data"
SHARED = REPO.parent / "shared"
ARTIFACTS = REPO / "test-artifacts"
