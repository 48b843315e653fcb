"""The Azure backend on the behaviours the emulator took from recorded real traffic
(azureml_emulator/tests/recordings/): each ends in one clear line, and nothing is written that would
overwrite or orphan what exists.
"""

from __future__ import annotations

import pytest

from azml_magics.errors import AzmlError, NotFound, SpecError
from tests.backends.azure.test_azure_e2e import creates, log_since, routes, spec_text, wait_done

pytestmark = pytest.mark.azure


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


def test_deploying_a_model_that_was_never_registered_is_one_line(azure, emulator):
    """The SDK's 'latest' lookup lists the versions; a missing container is Azure's 404 ModelNotFound."""
    mark = len(emulator.requests())
    with pytest.raises(NotFound) as err:
        azure.deploy({"model": "never-registered@latest", "endpoint": "ep-none", "instance_type": "Standard_NC24ads_A100_v4"})
    assert "never-registered is not registered in this workspace" in one_line(err.value)
    assert creates(log_since(emulator, mark)) == []
    assert [e["status"] for e in emulator.responses() if e["route"] == "model_versions_list"] == [404]


def test_chat_with_an_endpoint_still_being_created_says_so(azure, emulator):
    """While it is created an endpoint has scoringUri null (recorded); the SDK would post to 'None'."""
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    emulator.faults.endpoint_stuck_creating = True
    azure.backend._ws().online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="slow-ep", auth_mode="key"))
    with pytest.raises(AzmlError) as err:
        azure.chat("slow-ep", "hello")
    line = one_line(err.value)
    assert "endpoint slow-ep is Creating and has no scoring URI yet" in line and "None" not in line


@pytest.mark.slow
def test_registering_over_a_version_another_job_holds_is_refused(azure, emulator):
    """A re-PUT of an existing model version is 200 on Azure and overwrites it (recorded), so the backend
    must refuse before writing."""
    first = azure.finetune(spec_text())
    second = azure.finetune(spec_text())
    wait_done(azure, first.name)
    wait_done(azure, second.name)
    ref = azure.register(first.name, version="7")
    mark = len(emulator.requests())
    with pytest.raises(SpecError) as err:
        azure.register(second.name, version="7")
    assert f"{ref.name}:7 already exists (registered from job {first.name})" in one_line(err.value)
    assert "model_create" not in routes(log_since(emulator, mark))
    kept = azure.backend._ws().models.get(ref.name, version="7")
    assert kept.tags["azml.job"] == first.name
