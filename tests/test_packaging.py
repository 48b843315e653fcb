"""The front door: installing raises no deprecation warning of our own making."""

from __future__ import annotations

import warnings

from tests.paths import REPO


def test_pyproject_reads_without_setuptools_warnings():
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), str(REPO / "pyproject.toml"))
    ours = [str(w.message).splitlines()[0] for w in caught if "project." in str(w.message)]
    assert ours == [], ours
    assert dist.metadata.license_expression == "MIT"


def test_scripts_run_pip_quietly():
    for script in (REPO / "scripts").glob("*.sh"):
        for line in script.read_text().splitlines():
            if "pip install" in line and not line.lstrip().startswith("#"):
                assert " -q" in line, f"{script.name}: {line.strip()}"
