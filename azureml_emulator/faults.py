"""Fault injection: what a test can switch on, from Python (``emulator.faults``) or over HTTP
(``POST /_emulator/faults`` with the same field names; ``DELETE`` resets).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .routing import error_response
from .resources import retry_after_headers

# The text the service puts on a failed pipeline step (shape of a real user error from the
# fine-tune component); a test may replace it.
DEFAULT_STEP_ERROR = (
    "UserError: Execution failed. User process 'python' exited with status code 1. Please check log file "
    "'user_logs/std_log.txt' for more details. Error: torch.cuda.OutOfMemoryError: CUDA out of memory. "
    "Tried to allocate 2.00 GiB"
)

STEPS = ("validation", "model_import", "preprocess", "finetune", "model_converter")


@dataclass
class HttpFault:
    route: str
    status: int = 429
    retry_after: float | None = 1.0
    times: int = 1
    method: str | None = None

    def response(self):
        code = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}.get(
            self.status, "EmulatedFault")
        message = {
            429: "The request was throttled. Retry after the time in the Retry-After header.",
            500: "An unexpected error occurred in the service. Retry the request.",
        }.get(self.status, f"Emulated HTTP {self.status}.")
        return error_response(self.status, code, message, headers=retry_after_headers(self.retry_after))


@dataclass
class Faults:
    """Per-test switches. Reset between tests by the fixture."""

    archived: bool = False                       # every registry model carries the archived flag
    registry_omits_system_metadata: bool = False  # registry GET without system metadata (the recorded shape)
    model_specific_defaults: dict | None = None  # replace the tag (None: the realistic default)
    failing_step: str | None = None              # one of STEPS: that child job fails
    failing_step_error: str = DEFAULT_STEP_ERROR
    lro_delay: float = 0.0                       # seconds every long-running operation stays InProgress
    endpoint_stuck_creating: bool = False        # endpoint provisioning never finishes
    job_duration: float | None = None            # seconds from submit to Completed (None: emulator default)
    real_replies: bool = False                   # score with the local tiny model (see routes_scoring)
    stream_delay: float = 0.0                    # seconds between streamed words (a reply generated as it streams)
    quota: dict | None = None                    # VM family -> vCPU limit (compute.list_usage; create refused)
    identity_datastores: bool = False            # datastores without an account key (credentialsType None, recorded)
    # the user's data role on the storage account (storage_gate.ROLES); None: no data role, so blob
    # requests made with the user's token get Azure's 403 AuthorizationPermissionMismatch
    storage_data_role: str | None = "Storage Blob Data Contributor"
    http_faults: list[HttpFault] = field(default_factory=list)

    def http(self, route: str, status: int = 429, retry_after: float | None = 1.0, times: int = 1,
             method: str | None = None) -> HttpFault:
        """Answer the next TIMES requests to ROUTE (a route name, see README) with STATUS."""
        fault = HttpFault(route, status, retry_after, times, method.upper() if method else None)
        self.http_faults.append(fault)
        return fault

    def take_http_fault(self, route: str, method: str) -> HttpFault | None:
        for fault in self.http_faults:
            if fault.route == route and fault.times > 0 and fault.method in (None, method):
                fault.times -= 1
                return fault
        return None

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, [] if f.name == "http_faults" else f.default)

    def update(self, values: dict) -> None:
        names = {f.name for f in fields(self)}
        unknown = sorted(set(values) - names - {"http"})
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(names)}")
        if values.get("failing_step") not in (None, *STEPS):
            raise ValueError(f"failing_step must be one of {STEPS}")
        from .storage_gate import ROLES

        if "storage_data_role" in values and values["storage_data_role"] not in ROLES:
            raise ValueError(f"storage_data_role must be one of {ROLES}")
        for key, value in values.items():
            if key == "http":
                for spec in value:
                    self.http(**spec)
            elif key != "http_faults":
                setattr(self, key, value)

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "http_faults"}
        out["http_faults"] = [vars(h).copy() for h in self.http_faults]
        return out
