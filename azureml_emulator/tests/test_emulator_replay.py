"""Replay recorded real Azure ML responses against the emulator: status, the headers that matter and
the body's field names must match (ids, names of test resources and times aside).

Recordings: ``recordings/*.json``, entries copied from the Azure SDK's own test recordings
(Azure/azure-sdk-assets, MIT; each file names its source and what was cut). The entries of one file are
replayed in order against a fresh emulator, so a later entry sees what an earlier one created. A GET of an
operation status URL follows the Azure-AsyncOperation header the emulator gave (the recorded URL is
signed for the real service). Where the emulator knowingly serves more than the recording shows, the
extra is listed here with its reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.azure

RECORDINGS = Path(__file__).parent / "recordings"
KNOWN_EXTRAS = {
    # the spec's system metadata (see assets/azureml-assets/SOURCE.md; the fault registry_omits_system_metadata
    # serves the recorded shape exactly)
    "registry_model_version_get": {"properties.system_metadata"},
    # the emulator's systemData always has the six fields the SDK's SystemData model reads
    "endpoint_create_lro": {"systemData.createdByType", "systemData.lastModifiedBy", "systemData.lastModifiedByType"},
    "datastore_identity_based": {"systemData.createdBy", "systemData.createdByType"},
}
# present in the recording <=> present in the emulator's answer (values of the timeout compared too)
LRO_HEADERS = ("Azure-AsyncOperation", "Location", "x-ms-async-operation-timeout")


def keys(body, prefix="") -> set[str]:
    """Dotted field names: the top level, and one level into properties and systemData (values of free-form
    maps such as tags are not names)."""
    out = set()
    for k, v in body.items():
        name = f"{prefix}{k}"
        out.add(name)
        if isinstance(v, dict) and not prefix and k in ("properties", "systemData"):
            out |= keys(v, name + ".")
    return out


def replay_path(emu, uri: str) -> str:
    """The recorded request's path with its subscription, group and workspace (or registry and asset) swapped
    for the emulator's."""
    parts = urlsplit(uri).path.split("/")
    if "registries" in parts:
        swap = {"subscriptions": "00000000-0000-4000-8000-00000000beef",
                "resourceGroups": "registry-builtin-prod-eastus-01", "registries": emu.registry, "models": "Phi-4",
                "versions": "8"}
    else:
        swap = {"subscriptions": emu.subscription_id, "resourceGroups": emu.resource_group,
                "workspaces": emu.workspace}
    for i, part in enumerate(parts[:-1]):
        if part in swap:
            parts[i + 1] = swap[part]
    return "/".join(parts) + "?" + urlsplit(uri).query


def error_shape(body: dict) -> tuple:
    err = body["error"]
    return err["code"], err["message"], [(d["code"], d["message"]) for d in err.get("details") or []]


@pytest.mark.parametrize("recording", sorted(RECORDINGS.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_responses_replay_with_the_same_status_headers_and_fields(azure_emulator, recording):
    emu = azure_emulator
    emu.faults.lro_delay = 5.0  # the recorded operations were still running when polled
    data = json.loads(recording.read_text())
    assert data["source"] and data["licence"]
    for name, value in data.get("faults", {}).items():  # the workspace shape the recording was made on
        setattr(emu.faults, name, value)
    route = recording.stem
    previous = None
    for entry in data["Entries"]:
        uri = entry["RequestUri"]
        if "OperationsStatus/" in uri:
            url = previous.headers["Azure-AsyncOperation"]
        else:
            url = emu.base_url + replay_path(emu, uri)
        got = httpx.request(entry["RequestMethod"], url, json=entry.get("RequestBody"),
                            verify=str(emu.tls.ca_bundle), headers={"Authorization": "Bearer emulator-static-token"})
        what = f"{entry['RequestMethod']} {urlsplit(uri).path}"
        assert got.status_code == entry["StatusCode"], (what, got.text)
        recorded = entry["ResponseHeaders"]
        assert got.headers["content-type"].split(";")[0] == recorded["Content-Type"].split(";")[0]
        for header in LRO_HEADERS:
            assert (header in got.headers) == (header in recorded), (what, header)
        if "x-ms-async-operation-timeout" in recorded:
            assert got.headers["x-ms-async-operation-timeout"] == recorded["x-ms-async-operation-timeout"]
        want, have = entry["ResponseBody"], got.json()
        if "error" in want:
            assert error_shape(have) == error_shape(want), what
            continue
        assert keys(have) - KNOWN_EXTRAS.get(route, set()) == keys(want), what
        for field in ("type", "status"):
            assert have.get(field) == want.get(field), (what, field)
        for field in ("scoringUri", "swaggerUri", "provisioningState", "isArchived", "stage", "credentials"):
            if field in want.get("properties", {}):
                assert have["properties"][field] == want["properties"][field], (what, field)
        if "registries" in uri:  # name is the asset's name (the id's models/<name> segment), not its version
            assert have["name"] == have["id"].split("/models/")[1].split("/")[0]
            assert want["name"] == want["id"].split("/models/")[1].split("/")[0]
        previous = got
