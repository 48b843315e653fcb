"""``%%azml_finetune --smoke``: the very spec meant for Azure (or a big local model), run here in a minute.

The model's own config and tokenizer (hub cache or a local folder; no weights fetched) shrunk to
two narrow layers with random weights (``backends.local.smoke_model``), the model's own chat
template, the first rows of the spec's real data, the spec's parameters mapped exactly as the local
backend maps them, a few optimizer steps, then register, deploy, score once through the endpoint
contract and delete. It catches template, data, parameter and output-format mistakes that Azure
reports only after a GPU cluster has started. Everything lives in its own home folder (``smoke/``
under the session's home), so the user's jobs, models and endpoints are untouched.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from .display import Table
from .errors import AzmlError
from .spec import DataSpec, FinetuneSpec, as_finetune_spec

ROWS = 32
STEPS = 3


@dataclass
class SmokeResult:
    job: str
    state: str
    checks: list[tuple[str, str]] = field(default_factory=list)  # (what, result)
    reply: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state == "Completed" and self.reply is not None

    def show(self) -> None:
        """Display the table; a failed smoke run then raises, so 'Run all' stops before the real submit."""
        from IPython.display import display

        display(self.table())
        if not self.ok:
            raise AzmlError(f"the smoke run ended {self.state}; fix what the table above says before submitting.")

    def table(self) -> Table:
        return Table(["check", "result"], [list(c) for c in self.checks], title=f"Smoke run {self.job}: {self.state}",
                     notes=[f"{self.seconds:.0f} s on this machine; nothing was sent to Azure"])


def _head(path: str, rows: int, out: Path) -> str:
    """The first ``rows`` non-blank lines of a JSON lines file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    with open(Path(path).expanduser()) as fh:
        for line in fh:
            if line.strip():
                kept.append(line if line.endswith("\n") else line + "\n")
                if len(kept) >= rows:
                    break
    out.write_text("".join(kept))
    return str(out)


def _data(d: DataSpec, rows: int, folder: Path) -> DataSpec:
    if d.is_local_files:
        return dataclasses.replace(
            d, train=_head(d.train, rows, folder / "train_sft.jsonl"),
            test=_head(d.test, rows // 4 or 1, folder / "test_sft.jsonl") if d.test else None,
            validation=_head(d.validation, rows // 4 or 1, folder / "validation.jsonl") if d.validation else None)
    return dataclasses.replace(d, rows=rows, fraction=None, folder=str(folder))


def smoke_spec(spec: FinetuneSpec, model_folder: Path, data_folder: Path, rows: int = ROWS,
               steps: int = STEPS) -> FinetuneSpec:
    """The spec as the smoke run trains it: the shrunk model, the first rows, ``steps`` optimizer steps."""
    parameters = {**spec.parameters, "max_steps": steps, "logging_steps": 1}
    local = dataclasses.replace(spec.local, probe_steps=0) if spec.local else None
    return dataclasses.replace(spec, model=str(model_folder), data=_data(spec.data, rows, data_folder),
                               parameters=parameters, name=None, local=local)


def run_smoke(spec, home: Path, rows: int = ROWS, steps: int = STEPS, timeout: float = 600) -> SmokeResult:
    """Run ``spec`` (YAML text, dict or FinetuneSpec) as a smoke run under ``home``; see the module docstring."""
    from .api import Session
    from .backends.local import smoke_model
    from .scoring import GenerationParams, build_score_request, score_output

    started = time.time()
    spec = as_finetune_spec(spec)
    home = Path(home) / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}"
    base = spec.model.rstrip("/").split("/")[-1].split(":")[0] or "model"
    model_folder = smoke_model.shrink(spec.model, home / f"{base}-smoke")
    session = Session(home=home, poll_interval=0.5)
    session.connect(backend="local", home=str(home))
    small = smoke_spec(spec, model_folder, home / "data", rows, steps)
    plan = session.plan_finetune(small)
    checks = [("model", f"{spec.model}: its config and tokenizer, {smoke_model.LAYERS} layers of width "
                        f"{smoke_model.HEADS * smoke_model.HEAD_DIM}, random weights"),
              ("data", ", ".join(f"{split}: {r.kept} rows" for split, r in plan.data_report.files.items())
               + " (the first rows, checked with the model's tokenizer and chat template)")]
    job = session.finetune(small, plan=plan)
    status = session.watch(job.name, timeout=timeout)
    result = SmokeResult(job.name, status.state, checks)
    loss = session.metrics(job.name).get("loss", [])
    checks.append(("fine-tune", f"{status.state}, {len(loss)} logged steps"
                   + (f", loss {loss[0].value:.3f} -> {loss[-1].value:.3f}" if loss else "")
                   + (f": {status.error}" if status.error else "")))
    if status.state != "Completed":
        result.seconds = time.time() - started
        return result
    ref = session.register(job.name)
    checks.append(("register", f"{ref.name}:{ref.version}"))
    endpoint = session.deploy({"model": f"{ref.name}:{ref.version}", "endpoint": "smoke-endpoint"})
    try:
        messages = _first_conversation(plan)
        request = build_score_request(messages, GenerationParams(max_new_tokens=16, do_sample=False))
        result.reply = score_output(session.invoke(endpoint.name, request))
        checks.append(("score", f"the endpoint answered in the Azure /score shape ({len(result.reply)} characters)"))
    finally:
        session.delete(endpoint.name)
    result.seconds = time.time() - started
    return result


def _first_conversation(plan) -> list[dict]:
    """The first data row's turns up to its last user turn: what a client would send."""
    import json

    path = plan.data_report.files[plan.data_report.train_split].path
    with open(path) as fh:
        messages = json.loads(fh.readline())["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[: last_user + 1]
