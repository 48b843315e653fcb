"""The magics: parse the line or cell, call :mod:`azml_magics.api`, display the result.

No business logic lives here. One configurable class holds the settings (``%config AzmlMagics``);
every user mistake surfaces as a one-line ``UsageError``.
"""

from __future__ import annotations

import functools
import time

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Bool, Float, TraitError, Unicode, default, observe, validate

from . import defaults
from .display import Table
from .errors import AzmlError
from .magic_args import HelpShown

# Loading the extension imports only this module, IPython and traitlets: everything else (the API,
# the parsers, backends, and through them azure/torch/mlflow) loads on first use. display and
# defaults are stdlib only.

# A cell magic's body starts on the cell's second line (the first is the %%magic line; IPython keeps
# the body's own leading blank lines), so YAML errors name the line the user sees.
CELL_BODY_LINE = 2


def _parse(name: str, line: str):
    from .magic_parsers import PARSERS

    return PARSERS[name].parse(line)


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
            for problem in s.state.take_problems() if s is not None and s.state is not None else ():
                print(f"Warning: {problem}")
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
        return defaults.default_home()

    @validate("backend")
    def _valid_backend(self, proposal):
        from .backends import available

        name = proposal["value"]
        installed = sorted(available())
        if name not in installed:
            import difflib

            close = difflib.get_close_matches(name, installed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise TraitError(f"AzmlMagics.backend: no backend named '{name}'; {hint}installed: {', '.join(installed)}.")
        return name

    @validate("poll_interval")
    def _valid_poll_interval(self, proposal):
        value = proposal["value"]
        if not value > 0:
            raise TraitError(f"AzmlMagics.poll_interval must be a number of seconds above 0 (got {value:g}).")
        return value

    @validate("registry", "home")
    def _valid_nonempty(self, proposal):
        value = proposal["value"].strip()
        if not value:
            raise TraitError(f"AzmlMagics.{proposal['trait'].name} cannot be empty.")
        return value

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
            kwargs = {"out": args.out or defaults.DATA_FOLDER}
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
        target = args.source or defaults.DATA_FOLDER
        if args.action == "validate":
            report = s.validate_data(target, model=args.model, max_seq_length=args.max_seq_length, policy=args.policy)
            display(report)
            if not report.ok and args.policy == "strict":
                report.raise_for_problems()
            return None
        summary = s.summarize_data(target, model=args.model, examples=args.examples, max_seq_length=args.max_seq_length)
        display(summary)
        return None

    # ------------------------------------------------------------------ fine-tune
    @line_cell_magic
    @_user_errors
    def azml_finetune(self, line="", cell=None):
        """Line form (%azml_finetune) opens the form; the cell form takes a YAML spec."""
        args = _parse("azml_finetune", line)
        if args.list_parameters:
            from .pipeline_inputs import parameter_table

            return display(parameter_table())
        if not (cell or "").strip() and (args.dry_run or args.no_wait):
            from .spec import parse_finetune

            parse_finetune(cell)  # raises: the cell is empty
        if args.form or not (cell or "").strip():
            from .ui.forms import finetune_form

            return display(finetune_form(self.session, cell, first_line=CELL_BODY_LINE))
        from .spec import parse_finetune

        spec = parse_finetune(cell, first_line=CELL_BODY_LINE)
        if args.smoke:  # the spec here first, in its own home (smoke.py); a failure fails the cell
            from .smoke import run_smoke

            return run_smoke(spec, self.session.home / "smoke").show()
        plan = self.session.plan_finetune(spec, check_data=not args.skip_data, dry_run=args.dry_run)
        from .plan import effective_table

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
        if args.action in ("list", "compare"):
            from .ui import jobtable

            if args.action == "list":
                return display(jobtable.jobs_table(s))
            if not (args.job and args.other):
                raise AzmlError("%azml_jobs compare needs two job names: %azml_jobs compare JOB_A JOB_B")
            return display(jobtable.compare(s, args.job, args.other))
        if args.action == "attach":
            return self._watch(s.job_name(args.job))
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
            from .ui.jobtable import metrics_table

            return display(metrics_table(s.metrics(args.job), title=f"Metrics of {s.job_name(args.job)}"))
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
        spec = parse_deploy(cell, first_line=CELL_BODY_LINE) if cell is not None and cell.strip() else None
        raw = spec.to_dict() if spec else {"model": args.model or "last"}
        if spec and args.model:
            raw["model"] = args.model
        if args.base:  # the base model of that registered model
            raw["model"] = "base" if raw["model"] == "last" else f"base:{raw['model']}"
        for key in ("endpoint", "deployment", "instance_type", "instance_count", "request_timeout_ms", "engine"):
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
        if (endpoint.details or {}).get("engine"):  # the local endpoint's generation engine
            rows.append(["engine", endpoint.details["engine"]])
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
        from .magic_parsers import generation_params

        params = generation_params(args)
        s = self.session
        if args.request_file:
            response = s.invoke(args.endpoint, args.request_file)
            import json

            print(json.dumps(response, indent=1))
            return None
        from .magic_parsers import chat_targets

        names, text = chat_targets(args, s, cell)
        if text is None:
            from .ui.chat import ChatBox
            from .ui.chat_compare import ChatCompare

            box = ChatBox(s, names[0], params=params, system=args.system) if len(names) == 1 else \
                ChatCompare(s, names, params=params, system=args.system)
            if args.load:
                for one in getattr(box, "boxes", [box]):
                    one.load(args.load)
            return display(box)
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": text}
        ]
        if len(names) > 1:  # %%azml_chat EP1 EP2 + a cell: each endpoint's reply to the same message
            return {name: s.chat(name, messages, params) for name in names}
        return s.chat(names[0], messages, params)

    # ------------------------------------------------------------------ evaluate
    @line_magic
    @_user_errors
    def azml_eval(self, line=""):
        from .magic_parsers import eval_options

        candidates, options = eval_options(_parse("azml_eval", line))  # None: it printed the judge prompt
        return None if options is None else display(self.session.evaluate(candidates, **options))

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
        from .overview import overview_tables

        s = self.session
        tables = overview_tables(s.status(), s.workspace.key if s.workspace else None)
        if not tables:
            print(f"Nothing recorded under {s.home}. Run %azml_connect (local by default) or %azml_connect --backend azure.")
        for table in tables:
            display(table)
        return None

    # ------------------------------------------------------------------ models
    @line_magic
    @_user_errors
    def azml_models(self, line=""):
        args = _parse("azml_models", line)
        s = self.session
        from . import model_views

        if args.model:
            return display(model_views.card(s.model(args.model)))
        return display(model_views.listing(s.models(args.task), args.task))


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
    "azml_eval": "Compare the fine-tuned model with its base (or any models/endpoints) on held-out rows.",
}

for _name, _summary in _SUMMARIES.items():
    getattr(AzmlMagics, _name).__doc__ = f"{_summary}\n\nRun %{_name} -h for every option and examples."
