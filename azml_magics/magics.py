"""The magics: parse the line or cell, call :mod:`azml_magics.api`, display the result.

No business logic lives here. One configurable class holds the settings (``%config AzmlMagics``);
every user mistake surfaces as a one-line ``UsageError``.
"""

from __future__ import annotations

import functools
import os
import time

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Bool, Float, Unicode, default, observe

from .errors import AzmlError
from .magic_args import HelpShown

# Loading the extension imports only this module, IPython and traitlets: everything else (the API,
# the parsers, tables, backends, and through them azure/torch/mlflow) loads on first use.


def _parse(name: str, line: str):
    from .magic_parsers import PARSERS

    return PARSERS[name].parse(line)


def Table(*args, **kwargs):  # noqa: N802 - lazy alias of tables.Table
    from .tables import Table as _Table

    return _Table(*args, **kwargs)


def _user_errors(func):
    """Turn AzmlError into UsageError (one line, no traceback); make -h stop quietly."""

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        was_connected = self._session is not None and self._session.connected
        try:
            return func(self, *args, **kwargs)
        except HelpShown:
            return None
        except AzmlError as exc:
            raise UsageError(str(exc)) from None
        finally:
            s = self._session
            if not was_connected and s is not None and s.connected and func.__name__ != "azml_connect":
                where = s.home if s.workspace.backend == "local" else s.workspace.name
                print(f"(connected to the {s.workspace.backend} backend at {where}; %azml_connect chooses another)")

    return wrapper


@magics_class
class AzmlMagics(Magics):
    """Fine-tune, deploy and chat with a chat model from the notebook. Settings: ``%config AzmlMagics``."""

    backend = Unicode("local", help="Backend used when %azml_connect names none: local or azure.").tag(config=True)
    home = Unicode(help="Folder for state, local jobs, the MLflow store and endpoint records.").tag(config=True)
    poll_interval = Float(5.0, help="Seconds between job status polls.").tag(config=True)
    registry = Unicode("azureml", help="Model registry the Azure backend reads foundation models from.").tag(config=True)
    wait = Bool(True, help="Whether %%azml_finetune blocks with a live view until the job ends.").tag(config=True)

    @default("home")
    def _home_default(self):
        return os.environ.get("AZML_MAGICS_HOME", "~/.azml_magics")

    _session = None

    @property
    def session(self):
        """The API session these magics drive (created on first use)."""
        if self._session is None:
            from . import api

            self._session = api.reset_session(
                api.Session(home=self.home, default_backend=self.backend, poll_interval=self.poll_interval,
                            registry=self.registry)
            )
        return self._session

    @session.setter
    def session(self, value):
        """Drive another api.Session (scripts and tests can hand one in)."""
        from . import api

        self._session = api.reset_session(value)

    @observe("backend", "home", "poll_interval", "registry")
    def _sync(self, change):
        s = self._session
        if s is None:  # not created yet: it reads the traits when it is
            return
        s.default_backend, s.poll_interval, s.registry = self.backend, self.poll_interval, self.registry
        if change["name"] == "home" and not s.connected:
            from pathlib import Path

            s.home = Path(self.home).expanduser().resolve()

    # ------------------------------------------------------------------ connect
    @line_magic
    @_user_errors
    def azml_connect(self, line=""):
        args = _parse("azml_connect", line)
        if args.form:
            from .ui.forms import connect_form

            return display(connect_form(self.session))
        options = {
            "subscription_id": args.subscription, "resource_group": args.resource_group,
            "workspace_name": args.workspace, "config_path": args.config, "registry": args.registry,
            "credential": args.credential, "home": args.home,
        }
        ws = self.session.connect(args.backend, **options)
        rows = [["backend", ws.backend], ["workspace", ws.name]]
        if ws.location:
            rows.append(["region", ws.location])
        if ws.registry:
            rows.append(["registry", ws.registry])
        rows += [[k, v] for k, v in ws.details.items()]
        display(Table(["", ""], rows, title="Connected"))

    # ------------------------------------------------------------------ data
    @line_magic
    @_user_errors
    def azml_data(self, line=""):
        args = _parse("azml_data", line)
        s = self.session
        if args.action == "prepare":
            from . import data

            source = str(data.sample_dir()) if args.sample else (args.source or data.DEFAULT_SOURCE)
            kwargs = {"out": args.out or "ultrachat_200k_dataset"}
            if args.rows is not None:
                kwargs.update(rows=args.rows, fraction=None)
            elif args.fraction is not None:
                kwargs["fraction"] = args.fraction
            elif args.sample:
                kwargs["fraction"] = 1.0  # the sample is small already: keep all of it
            if args.splits:
                kwargs["splits"] = tuple(x.strip() for x in args.splits.split(",") if x.strip())
            kwargs.update(policy=args.policy, max_seq_length=args.max_seq_length)
            prepared = s.prepare_data(source, model=args.model, **kwargs)
            rows = [[split, n, str(prepared.files[split])] for split, n in prepared.rows.items()]
            report = getattr(prepared, "report", None)
            notes = []
            if report is not None and report.dropped:
                notes.append(f"{report.dropped} rows dropped (--policy drop); the report follows.")
            display(Table(["split", "rows", "file"], rows, title=f"Prepared from {prepared.source}", notes=notes))
            if report is not None and report.problems:
                display(report)
            return None
        target = args.source or "ultrachat_200k_dataset"
        if args.action == "validate":
            report = s.validate_data(target, model=args.model, max_seq_length=args.max_seq_length, policy=args.policy)
            display(report)
            if not report.ok and args.policy == "strict":
                report.raise_for_problems()
            return None
        summary = s.summarize_data(target, model=args.model, examples=args.examples)
        display(summary)
        return None

    # ------------------------------------------------------------------ fine-tune
    @line_cell_magic
    @_user_errors
    def azml_finetune(self, line="", cell=None):
        """Line form (%azml_finetune) opens the form; the cell form takes a YAML spec."""
        args = _parse("azml_finetune", line)
        if args.list_parameters:
            return display(_parameter_table())
        if not (cell or "").strip() and (args.dry_run or args.no_wait):
            from .spec import parse_finetune

            parse_finetune(cell)  # raises: the cell is empty
        if args.form or not (cell or "").strip():
            from .ui.forms import finetune_form

            return display(finetune_form(self.session, cell))
        from .spec import parse_finetune

        spec = parse_finetune(cell)
        plan = self.session.plan_finetune(spec, check_data=not args.skip_data, dry_run=args.dry_run)
        from .tables import effective_table

        if args.dry_run:
            display(effective_table(plan))
            return None
        job = self.session.finetune(spec, plan=plan)
        print(f"Submitted {job.name} ({job.display_name})" + (f": {job.url}" if job.url else ""))
        return self._watch(job.name, background=args.no_wait or not self.wait)

    def _watch(self, job: str, background: bool = False):
        try:
            from .ui.jobview import JobView
        except ImportError:  # the widget layer is optional for scripts
            JobView = None
        if JobView is not None:
            view = JobView(self.session, job)
            view.run(background=background)
            if not background:
                _raise_if_failed(view.status)
            return None
        if background:
            print(f"Running in the background; watch with %azml_jobs attach {job}")
            return None
        result = self.session.watch(job, on_update=lambda st: print(f"{time.strftime('%H:%M:%S')} {st.state}"))
        _raise_if_failed(result)
        from . import api

        if isinstance(result, api.Detached):
            print(f"Detached; the job goes on. Re-attach: %azml_jobs attach {job}   Cancel: %azml_jobs cancel {job}")
        return None

    # ------------------------------------------------------------------ jobs
    @line_magic
    @_user_errors
    def azml_jobs(self, line=""):
        args = _parse("azml_jobs", line)
        s = self.session
        if args.action == "list":
            rows = [[j.name, j.state, _ago(j.started), j.error or ""] for j in s.jobs()]
            return display(Table(["job", "state", "started", "error"], rows, title="Jobs"))
        if args.action == "attach":
            return self._watch(s._job_name(args.job))
        if args.action == "status":
            st = s.job(args.job)
            rows = [[step.name, step.state, step.error or ""] for step in st.steps]
            return display(Table(["step", "state", "error"], rows, title=f"{st.name}: {st.state}",
                                 notes=[st.error] if st.error else []))
        if args.action == "logs":
            chunk = s.logs(args.job)
            print("\n".join(chunk.lines))
            return None
        if args.action == "metrics":
            series = s.metrics(args.job)
            rows = []
            for name, points in sorted(series.items()):
                if points:
                    rows.append([name, len(points), points[0].value, points[-1].value, min(p.value for p in points)])
            return display(Table(["metric", "points", "first", "last", "min"], rows, title="Metrics"))
        st = s.cancel(args.job)
        print(f"{st.name}: {st.state}")
        return None

    # ------------------------------------------------------------------ register
    @line_magic
    @_user_errors
    def azml_register(self, line=""):
        args = _parse("azml_register", line)
        ref = self.session.register(args.job, name=args.name, version=args.version)
        display(Table(["", ""], [["name", ref.name], ["version", ref.version], ["id", ref.id], ["job", ref.job]],
                      title="Registered model"))
        return None

    # ------------------------------------------------------------------ deploy
    @line_cell_magic
    @_user_errors
    def azml_deploy(self, line="", cell=None):
        args = _parse("azml_deploy", line)
        from .spec import deploy_from_dict, parse_deploy

        if args.form:
            from .ui.forms import deploy_form

            return display(deploy_form(self.session))
        # the options on the line win over the cell's YAML (so a cell can be reused with --endpoint X)
        spec = parse_deploy(cell) if cell is not None and cell.strip() else None
        raw = spec.to_dict() if spec else {"model": args.model or "last"}
        if spec and args.model:
            raw["model"] = args.model
        for key in ("endpoint", "deployment", "instance_type", "instance_count", "request_timeout_ms"):
            value = getattr(args, key)
            if value is not None:
                raw[key] = value
        spec = deploy_from_dict(raw)
        if args.dry_run:
            display(Table(["setting", "value"], [[k, v] for k, v in spec.to_dict().items()], title="Deploy spec"))
            return None
        endpoint = self.session.deploy(spec)
        rows = [["endpoint", endpoint.name], ["deployment", endpoint.deployment], ["scoring URI", endpoint.scoring_uri],
                ["state", endpoint.state]]
        notes = []
        if (endpoint.instance_type or "").startswith("Standard_"):  # a cloud VM: say what it costs
            notes.append(
                f"Billing: {endpoint.instance_count} x {endpoint.instance_type} while it runs; "
                f"delete with %azml_delete {endpoint.name}"
            )
        display(Table(["", ""], rows, title="Deployed", notes=notes))
        return None

    # ------------------------------------------------------------------ chat
    @line_cell_magic
    @_user_errors
    def azml_chat(self, line="", cell=None):
        args = _parse("azml_chat", line)
        from .backends.base import ChatParams

        if args.temperature < 0:
            raise AzmlError(f"--temperature must be 0 or more (got {args.temperature}).")
        if not 0 < args.top_p <= 1:
            raise AzmlError(f"--top-p must be in (0, 1] (got {args.top_p}).")
        if args.max_new_tokens < 1:
            raise AzmlError(f"--max-new-tokens must be at least 1 (got {args.max_new_tokens}).")
        params = ChatParams(temperature=args.temperature, top_p=args.top_p, do_sample=not args.greedy,
                            max_new_tokens=args.max_new_tokens)
        s = self.session
        if args.request_file:
            response = s.invoke(args.endpoint, args.request_file)
            import json

            print(json.dumps(response, indent=1))
            return None
        text = cell.strip() if cell is not None and cell.strip() else args.text
        name = s._endpoint_name(args.endpoint)
        if not s._endpoint_exists(name):
            hint = ""
            latest = s.state.latest("endpoints") if s.state else None
            if args.text is None and args.endpoint and latest is not None:
                hint = f' To send text to {latest.name}: %azml_chat {latest.name} "{args.endpoint}"'
            raise AzmlError(f"no endpoint named '{name}' (%azml_status lists this workspace's endpoints).{hint}")
        if text is None:
            from .ui.chat import ChatBox

            box = ChatBox(s, name, params=params, system=args.system)
            return display(box)
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": text}
        ]
        return s.chat(name, messages, params)

    # ------------------------------------------------------------------ delete
    @line_magic
    @_user_errors
    def azml_delete(self, line=""):
        args = _parse("azml_delete", line)
        if not (args.endpoint or args.all or args.compute):
            raise UsageError("%azml_delete: name an endpoint, --compute NAME, or --all; see %azml_delete -h")
        removed = self.session.delete(args.endpoint, all=args.all, compute=args.compute)
        print("Deleted: " + (", ".join(removed) if removed else "nothing (this workspace created nothing)"))
        return None

    # ------------------------------------------------------------------ status
    @line_magic
    @_user_errors
    def azml_status(self, line=""):
        _parse("azml_status", line)
        report = self.session.status()
        if report.workspace is None:
            print("Not connected. Run %azml_connect (local by default) or %azml_connect --backend azure.")
            return None
        ws = report.workspace
        rows = []
        for kind, items in (("job", report.jobs), ("model", report.models), ("endpoint", report.endpoints),
                            ("compute", report.computes), ("data", report.data)):
            for item in items:
                detail = ", ".join(f"{k}={v}" for k, v in item.items() if k not in ("name", "created") and v)
                rows.append([kind, item["name"], _ago(item["created"]), detail])
        display(Table(["kind", "name", "created", "details"], rows, title=f"{ws.backend}: {ws.name}"))
        return None

    # ------------------------------------------------------------------ models
    @line_magic
    @_user_errors
    def azml_models(self, line=""):
        args = _parse("azml_models", line)
        s = self.session
        if args.model:
            m = s.model(args.model)
            rows = [["id", m.id], ["version", m.version], ["tasks", ", ".join(m.tasks)],
                    ["fine-tune VMs", ", ".join(m.finetune_allow_list or []) or "any"],
                    ["inference VMs", ", ".join(m.inference_allow_list or []) or "any"],
                    ["model defaults", ", ".join(f"{k}={v}" for k, v in m.model_defaults.items())],
                    ["archived", m.archived], ["deprecated", m.deprecated or ""]]
            return display(Table(["", ""], rows, title=m.name))
        rows = [[m.name, m.version, ", ".join(m.tasks), "archived" if m.archived else (m.deprecated or "")]
                for m in s.models(args.task)]
        return display(Table(["model", "version", "tasks", "status"], rows, title=f"Models for {args.task}"))


def _raise_if_failed(status) -> None:
    """A blocking fine-tune that fails stops 'Run all' here, with the reason and where the log is."""
    from .backends.base import FAILED

    if status is None or getattr(status, "state", None) != FAILED:
        return
    failed = [s for s in status.steps if s.state == FAILED]
    where = f" in step '{failed[0].name}'" if failed else ""
    raise AzmlError(
        f"job {status.name} failed{where}: {status.error or (failed[0].error if failed else 'no reason given')}. "
        f"Full log: %azml_jobs logs {status.name}"
    )


def _ago(ts) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(ts)))


def _parameter_table() -> Table:
    from .pipeline_inputs import PIPELINE_INPUTS

    rows = []
    for p in PIPELINE_INPUTS.values():
        if p.set_from:
            continue
        allowed = "|".join(p.enum)
        rows.append([p.name, p.type, p.default, allowed, p.minimum if p.minimum is not None else "", p.help])
    return Table(["parameter", "type", "default", "allowed", "minimum", "note"], rows,
                 title="chat_completion_pipeline parameters")


_SUMMARIES = {
    "azml_connect": "Connect to a backend: local (default) or azure.",
    "azml_data": "Prepare, validate and explore chat fine-tuning data.",
    "azml_finetune": "Fine-tune a chat model from a YAML spec (cell) or a form (line).",
    "azml_jobs": "List, attach to, cancel fine-tune jobs; show their logs and metrics.",
    "azml_register": "Register a finished job's model in the model registry.",
    "azml_deploy": "Deploy a registered model to an online endpoint.",
    "azml_chat": "Chat with an endpoint: a chat box, or one reply.",
    "azml_delete": "Delete an endpoint, a compute cluster, or everything this workspace created.",
    "azml_status": "Show the connection and what this workspace created.",
    "azml_models": "List registry models for chat-completion fine-tuning, or show one model's card.",
}

for _name, _summary in _SUMMARIES.items():
    getattr(AzmlMagics, _name).__doc__ = f"{_summary}\n\nRun %{_name} -h for every option and examples."
