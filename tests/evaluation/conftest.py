"""Evaluation fixtures: one fine-tuned and registered tiny model in a real local home, shared by the session."""

from __future__ import annotations

import pytest

from tests.paths import SAMPLE


@pytest.fixture(scope="session")
def tuned(tmp_path_factory, tiny_model_dir):
    """A Session on a home holding a completed tiny fine-tune of the sample, registered: (session, ModelRef)."""
    from azml_magics.api import Session

    s = Session(home=tmp_path_factory.mktemp("eval") / "home", poll_interval=0.5)
    s.connect("local")
    job = s.finetune({"model": "azml-tiny-phi3",
                      "data": {"train": str(SAMPLE / "train_sft.jsonl"), "test": str(SAMPLE / "test_sft.jsonl")}})
    status = s.watch(job.name, timeout=300)
    assert status.state == "Completed", (status.error, "\n".join(s.logs(job.name).lines[-20:]))
    ref = s.register(job.name)
    yield s, ref
    for endpoint in s.endpoints():
        s.delete(endpoint.name)
