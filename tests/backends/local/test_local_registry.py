"""The MLflow model registry on the local backend: lineage tags, versions never overwritten."""

from __future__ import annotations

import json

import pytest

from azml_magics.errors import AzmlError, NotFound

pytestmark = pytest.mark.slow  # needs one trained job (module fixture)


def test_register_with_lineage_tags(trained_job):
    backend, job = trained_job
    ref = backend.register(job, name="reg-lineage")
    assert ref.name == "reg-lineage" and ref.version == "1" and ref.job == job
    assert ref.tags["azml.base_model"] == "azml-tiny-phi3"
    assert ref.tags["azml.data_fingerprint"] == "sample-fp"
    assert json.loads(ref.tags["azml.parameters"])["learning_rate"] > 0
    from azml_magics.backends.local import registry

    mv = registry.client(backend.home).get_model_version("reg-lineage", "1")
    assert mv.run_id == json.loads((backend.home / "jobs" / job / "status.json").read_text())["run_id"]
    assert registry.hf_model_dir(ref.id, home=backend.home).joinpath("config.json").exists()


def test_same_job_twice_returns_the_same_version(trained_job):
    backend, job = trained_job
    first = backend.register(job, name="reg-twice")
    second = backend.register(job, name="reg-twice")
    assert (first.version, first.id) == (second.version, second.id)
    from azml_magics.backends.local import registry

    assert len(registry.client(backend.home).search_model_versions("name = 'reg-twice'")) == 1


def test_requested_version_is_kept_and_never_overwritten(trained_job, tmp_path):
    backend, job = trained_job
    ref = backend.register(job, name="reg-version", version="1700000000")
    assert ref.version == "1700000000"
    assert backend.get_registered_model("reg-version", version="1700000000").id == ref.id
    assert backend.get_registered_model("reg-version").id == ref.id  # latest
    # a second job's model asking for the same version is refused, not written over
    other = _copy_job(backend, job, "other-job")
    with pytest.raises(AzmlError, match="already has a version 1700000000.*never overwritten"):
        backend.register(other, name="reg-version", version="1700000000")
    newer = backend.register(other, name="reg-version")
    assert newer.version == "2" and backend.get_registered_model("reg-version").id == newer.id


def _copy_job(backend, job, name):
    """A second completed job with the same output (training again would only cost time)."""
    import shutil

    src = backend.home / "jobs" / job
    dst = backend.home / "jobs" / name
    shutil.copytree(src, dst)
    status = json.loads((dst / "status.json").read_text())
    status["name"] = name
    (dst / "status.json").write_text(json.dumps(status))
    return name


def test_default_name_follows_the_notebook(trained_job):
    backend, job = trained_job
    assert backend.register(job).name == "azml-tiny-phi3-ultrachat-200k"


def test_unfinished_or_unknown_job_cannot_be_registered(trained_job):
    backend, job = trained_job
    with pytest.raises(NotFound):
        backend.register("no-such-job")
    running = _copy_job(backend, job, "still-running")
    status_path = backend.home / "jobs" / running / "status.json"
    status = json.loads(status_path.read_text())
    status.update(state="Failed", outputs={})
    status_path.write_text(json.dumps(status))
    with pytest.raises(AzmlError, match="is Failed and has no model to register"):
        backend.register(running)


def test_unknown_registered_model_and_version(trained_job):
    backend, job = trained_job
    backend.register(job, name="reg-lookup")
    with pytest.raises(NotFound, match="no registered model 'nope'"):
        backend.get_registered_model("nope")
    with pytest.raises(NotFound, match="has no version 9; versions: 1"):
        backend.get_registered_model("reg-lookup", version="9")


_REGISTER = """
import sys, time
from azml_magics.backends.local import registry
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # every contender starts at the same moment
register = registry.register if sys.argv[4] == "locked" else registry._register
print("version", register(sys.argv[1], sys.argv[2], name="reg-race", version=None).version)
"""


def _register_at_once(home, job, how: str, n: int = 3) -> list[str]:
    import os
    import subprocess
    import sys
    import time

    from tests.paths import REPO

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    at = str(time.time() + 20)  # time for every process to import mlflow first
    procs = [subprocess.Popen([sys.executable, "-c", _REGISTER, str(home), job, at, how], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate(timeout=300) for p in procs]
    return [o.strip().splitlines()[-1] if o.strip() else e[-300:] for o, e in outs]


def test_kernels_registering_one_job_at_once_get_one_version(trained_job):
    backend, job = trained_job
    lines = _register_at_once(backend.home, job, "locked")
    assert len(set(lines)) == 1 and lines[0].startswith("version "), lines
    from azml_magics.backends.local import registry

    versions = registry.client(backend.home).search_model_versions("name = 'reg-race'")
    assert [v.tags["azml.job"] for v in versions] == [job]
