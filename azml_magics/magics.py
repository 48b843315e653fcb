"""The magics: parse the line or cell, call :mod:`azml_magics.api`, display the result.

No business logic lives here. One configurable class holds the settings (``%config AzmlMagics``);
every user mistake surfaces as a one-line ``UsageError``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Bool, Float, Unicode, default, observe

from . import api
from .errors import AzmlError
from .magic_args import HelpShown, MagicParser
from .tables import Table


def _user_errors(func):
    """Turn AzmlError into UsageError (one line, no traceback); make -h stop quietly."""

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        try:
            return func(self, *args, **kwargs)
        except HelpShown:
            return None
        except AzmlError as exc:
            raise UsageError(str(exc)) from None

    return wrapper


# ----------------------------------------------------------------------------- parsers
P_CONNECT = MagicParser(
    "azml_connect",
    "Connect to a backend: 'local' (the default: runs on this machine) or 'azure' (an Azure ML workspace).",
    """
  %azml_connect                                   # local backend, home from %config AzmlMagics.home
  %azml_connect --backend local --home ./azml_home
  %azml_connect --backend azure                   # reads config.json like MLClient.from_config
  %azml_connect --backend azure --subscription SUB --resource-group RG --workspace WS --credential cli
""",
)
P_CONNECT.add_argument("--backend", "-b", help="backend name: local or azure (default: %%config AzmlMagics.backend)")
P_CONNECT.add_argument("--home", help="local folder for state, jobs, the MLflow store and endpoints")
P_CONNECT.add_argument("--subscription", help="Azure subscription id")
P_CONNECT.add_argument("--resource-group", dest="resource_group", help="Azure resource group")
P_CONNECT.add_argument("--workspace", "-w", help="Azure ML workspace name")
P_CONNECT.add_argument("--config", help="path to a config.json (default: searched like MLClient.from_config)")
P_CONNECT.add_argument("--registry", help="model registry (default: azureml)")
P_CONNECT.add_argument(
    "--credential", choices=["auto", "default", "cli", "device-code", "managed-identity", "browser"],
    help="Azure credential (default: auto = DefaultAzureCredential, then interactive browser)",
)
P_CONNECT.add_argument("--form", action="store_true", help="show a form instead")

P_DATA = MagicParser(
    "azml_data",
    "Prepare, validate and explore chat fine-tuning data (the ultrachat_200k schema: a 'messages' list).",
    """
  %azml_data prepare                                     # 5% of HuggingFaceH4/ultrachat_200k -> ultrachat_200k_dataset/
  %azml_data prepare --fraction 0.01 --out my_data
  %azml_data prepare ./raw.parquet --rows 2000          # local JSON lines / JSON / CSV / Parquet
  %azml_data prepare --sample --out quick_data           # the bundled sample (fast, offline)
  %azml_data validate ultrachat_200k_dataset --model Phi-3-mini-4k-instruct --max-seq-length 2048
  %azml_data validate train.jsonl --policy drop
  %azml_data summary ultrachat_200k_dataset
""",
)
P_DATA.add_argument("action", choices=["prepare", "validate", "summary", "show"], help="what to do")
P_DATA.add_argument("source", nargs="?", help="hub dataset id, file or folder")
P_DATA.add_argument("--fraction", type=float, help="fraction of each split to keep (default 0.05)")
P_DATA.add_argument("--rows", type=int, help="rows per split instead of a fraction")
P_DATA.add_argument("--out", help="output folder (default ultrachat_200k_dataset)")
P_DATA.add_argument("--splits", help="comma-separated splits (default train_sft,test_sft,train_gen,test_gen)")
P_DATA.add_argument("--sample", action="store_true", help="use the bundled sample instead of the hub")
P_DATA.add_argument("--model", help="check with this model's tokenizer and chat template")
P_DATA.add_argument("--max-seq-length", dest="max_seq_length", type=int, help="token limit per row")
P_DATA.add_argument("--policy", choices=["strict", "drop"], default="strict", help="stop on bad rows, or drop them")
P_DATA.add_argument("-n", "--examples", type=int, default=2, help="conversations to show")

P_FINETUNE = MagicParser(
    "azml_finetune",
    "Fine-tune a chat model. The cell body is a YAML spec; it is checked completely (parameters, model, "
    "compute allow list, data) before anything is created or billed.",
    """
  %%azml_finetune --dry-run
  model: Phi-3-mini-4k-instruct
  data: {source: HuggingFaceH4/ultrachat_200k, fraction: 0.05}
  compute: {name: gpu-cluster, size: Standard_NC24ads_A100_v4, max_instances: 2}
  parameters:
    num_train_epochs: 3
    learning_rate: 5.0e-6
    lr_scheduler_type: cosine
    apply_lora: true

  %%azml_finetune --no-wait
  model: azml-tiny-phi3                  # the built-in tiny model (local backend)
  data: {train: data/train_sft.jsonl, test: data/test_sft.jsonl}

  %azml_finetune                         # a form with every field, filled with the defaults
  %azml_finetune --list-parameters       # every chat_completion_pipeline input
""",
    cell=True,
)
P_FINETUNE.add_argument("--dry-run", dest="dry_run", action="store_true", help="show the effective parameters and stop")
P_FINETUNE.add_argument("--no-wait", dest="no_wait", action="store_true", help="return at once; the job view updates in the background")
P_FINETUNE.add_argument("--form", action="store_true", help="edit the spec in a form")
P_FINETUNE.add_argument("--list-parameters", dest="list_parameters", action="store_true", help="list every pipeline input")
P_FINETUNE.add_argument("--skip-data-check", dest="skip_data", action="store_true", help=argparse.SUPPRESS)

P_JOBS = MagicParser(
    "azml_jobs",
    "List, watch, cancel fine-tune jobs and read their logs and metrics.",
    """
  %azml_jobs                      # list the jobs of this workspace
  %azml_jobs attach JOB_NAME      # re-attach the live view (Ctrl-C detaches again)
  %azml_jobs status JOB_NAME
  %azml_jobs logs JOB_NAME
  %azml_jobs metrics JOB_NAME
  %azml_jobs cancel JOB_NAME
""",
)
P_JOBS.add_argument("action", nargs="?", default="list", choices=["list", "attach", "status", "logs", "metrics", "cancel"])
P_JOBS.add_argument("job", nargs="?", help="job name (default: the last one submitted here)")

P_REGISTER = MagicParser(
    "azml_register",
    "Register a finished job's trained model (an MLflow model) in the workspace's model registry.",
    """
  %azml_register                                   # the last job, name <model>-ultrachat-200k, version = timestamp
  %azml_register JOB_NAME --name my-chat-model --version 3
""",
)
P_REGISTER.add_argument("job", nargs="?", help="job name (default: the last one)")
P_REGISTER.add_argument("--name", help="model name (default: <base model>-ultrachat-200k)")
P_REGISTER.add_argument("--version", help="model version (default: a timestamp)")

P_DEPLOY = MagicParser(
    "azml_deploy",
    "Deploy a registered model to an online endpoint with key auth. As a cell magic, the body is a YAML deploy spec.",
    """
  %azml_deploy                                     # the last registered model
  %azml_deploy my-chat-model:3 --endpoint ultrachat-demo --instance-type Standard_NC6s_v3
  %%azml_deploy
  model: my-chat-model@latest
  endpoint: ultrachat-demo
  instance_type: Standard_NC6s_v3
  instance_count: 1
  request_timeout_ms: 90000
""",
)
P_DEPLOY.add_argument("model", nargs="?", help="registered model: name:version, name@latest (default: the last registered)")
P_DEPLOY.add_argument("--endpoint", "-e", help="endpoint name (default: ultrachat-completion-<timestamp>)")
P_DEPLOY.add_argument("--deployment", help="deployment name (default: demo)")
P_DEPLOY.add_argument("--instance-type", dest="instance_type", help="VM size (default: Standard_NC6s_v3)")
P_DEPLOY.add_argument("--instance-count", dest="instance_count", type=int, help="instances (default 1)")
P_DEPLOY.add_argument("--request-timeout-ms", dest="request_timeout_ms", type=int, help="request timeout (default 90000)")
P_DEPLOY.add_argument("--dry-run", dest="dry_run", action="store_true", help="check the spec and stop")
P_DEPLOY.add_argument("--form", action="store_true", help="show a form instead")

P_CHAT = MagicParser(
    "azml_chat",
    "Chat with an endpoint: a chat box, or one reply for the text given (line) or the cell body.",
    """
  %azml_chat                                       # chat box on the last endpoint
  %azml_chat ultrachat-demo "What is the capital of France?"
  %azml_chat ultrachat-demo --request-file sample_score.json    # the original notebook's request file
  %%azml_chat ultrachat-demo --max-new-tokens 100
  Write a haiku about GPUs.
""",
)
P_CHAT.add_argument("endpoint", nargs="?", help="endpoint name (default: the last one deployed here)")
P_CHAT.add_argument("text", nargs="?", help="a user message; the reply is returned")
P_CHAT.add_argument("--request-file", dest="request_file", help="send this JSON request to /score as is")
P_CHAT.add_argument("--system", help="system prompt")
P_CHAT.add_argument("--temperature", type=float, default=0.6)
P_CHAT.add_argument("--top-p", dest="top_p", type=float, default=0.9)
P_CHAT.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=200)
P_CHAT.add_argument("--greedy", action="store_true", help="do_sample=false")

P_DELETE = MagicParser(
    "azml_delete",
    "Delete an endpoint (it stops billing), a compute cluster, or everything this workspace created.",
    """
  %azml_delete ultrachat-demo
  %azml_delete --compute gpu-cluster
  %azml_delete --all              # endpoints, running jobs and clusters recorded in %azml_status
""",
)
P_DELETE.add_argument("endpoint", nargs="?", help="endpoint name")
P_DELETE.add_argument("--all", action="store_true", help="everything this workspace's state says we created")
P_DELETE.add_argument("--compute", help="a compute cluster to delete")

P_STATUS = MagicParser(
    "azml_status",
    "Show the connection and what this workspace created (jobs, models, endpoints, clusters, data).",
    """
  %azml_status
""",
)

P_MODELS = MagicParser(
    "azml_models",
    "List registry models that support chat-completion fine-tuning, or show one model's card.",
    """
  %azml_models
  %azml_models Phi-3-mini-4k-instruct
  %azml_models Phi-3.5-mini-instruct:2
""",
)
P_MODELS.add_argument("model", nargs="?", help="a model name (name, name:version or name@label)")
P_MODELS.add_argument("--task", default="chat-completion", help="task to filter on")

PARSERS = {
    "azml_connect": P_CONNECT, "azml_data": P_DATA, "azml_finetune": P_FINETUNE, "azml_jobs": P_JOBS,
    "azml_register": P_REGISTER, "azml_deploy": P_DEPLOY, "azml_chat": P_CHAT, "azml_delete": P_DELETE,
    "azml_status": P_STATUS, "azml_models": P_MODELS,
}


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
        return str(api.default_home())

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self.session = api.reset_session(
            api.Session(home=self.home, default_backend=self.backend, poll_interval=self.poll_interval,
                        registry=self.registry)
        )

    @observe("backend", "home", "poll_interval", "registry")
    def _sync(self, change):
        s = getattr(self, "session", None)
        if s is None:  # config applied while __init__ runs
            return
        s.default_backend, s.poll_interval, s.registry = self.backend, self.poll_interval, self.registry
        if change["name"] == "home" and not s.connected:
            from pathlib import Path

            s.home = Path(self.home).expanduser()

    # ------------------------------------------------------------------ connect
    @line_magic
    @_user_errors
    def azml_connect(self, line=""):
        args = P_CONNECT.parse(line)
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
        args = P_DATA.parse(line)
        s = self.session
        if args.action == "prepare":
            from . import data

            source = str(data.sample_dir()) if args.sample else (args.source or data.DEFAULT_SOURCE)
            kwargs = {"out": args.out or "ultrachat_200k_dataset"}
            if args.rows is not None:
                kwargs.update(rows=args.rows, fraction=None)
            elif args.fraction is not None:
                kwargs["fraction"] = args.fraction
            if args.splits:
                kwargs["splits"] = tuple(x.strip() for x in args.splits.split(",") if x.strip())
            prepared = s.prepare_data(source, **kwargs)
            rows = [[split, n, str(prepared.files[split])] for split, n in prepared.rows.items()]
            display(Table(["split", "rows", "file"], rows, title=f"Prepared from {prepared.source}"))
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
        args = P_FINETUNE.parse(line)
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
        plan = self.session.plan_finetune(spec, check_data=not args.skip_data)
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
            return view.run(background=background)
        if background:
            print(f"Running in the background; watch with %azml_jobs attach {job}")
            return None
        result = self.session.watch(job, on_update=lambda st: print(f"{time.strftime('%H:%M:%S')} {st.state}"))
        if isinstance(result, api.Detached):
            print(f"Detached; the job goes on. Re-attach: %azml_jobs attach {job}   Cancel: %azml_jobs cancel {job}")
        return None

    # ------------------------------------------------------------------ jobs
    @line_magic
    @_user_errors
    def azml_jobs(self, line=""):
        args = P_JOBS.parse(line)
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
        args = P_REGISTER.parse(line)
        ref = self.session.register(args.job, name=args.name, version=args.version)
        display(Table(["", ""], [["name", ref.name], ["version", ref.version], ["id", ref.id], ["job", ref.job]],
                      title="Registered model"))
        return None

    # ------------------------------------------------------------------ deploy
    @line_cell_magic
    @_user_errors
    def azml_deploy(self, line="", cell=None):
        args = P_DEPLOY.parse(line)
        from .spec import DeploySpec, check_endpoint_name, deploy_from_dict, parse_deploy

        if args.form:
            from .ui.forms import deploy_form

            return display(deploy_form(self.session))
        if cell is not None and cell.strip():
            spec = parse_deploy(cell)
        else:
            raw = {"model": args.model or "last"}
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
        if endpoint.instance_type:
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
        args = P_CHAT.parse(line)
        from .backends.base import ChatParams

        params = ChatParams(temperature=args.temperature, top_p=args.top_p, do_sample=not args.greedy,
                            max_new_tokens=args.max_new_tokens)
        s = self.session
        if args.request_file:
            response = s.invoke(args.endpoint, args.request_file)
            print(json.dumps(response, indent=1))
            return None
        text = cell.strip() if cell is not None and cell.strip() else args.text
        if text is None:
            from .ui.chat import ChatBox

            box = ChatBox(s, s._endpoint_name(args.endpoint), params=params, system=args.system)
            return display(box)
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": text}
        ]
        return s.chat(args.endpoint, messages, params)

    # ------------------------------------------------------------------ delete
    @line_magic
    @_user_errors
    def azml_delete(self, line=""):
        args = P_DELETE.parse(line)
        if not (args.endpoint or args.all or args.compute):
            raise UsageError("%azml_delete: name an endpoint, --compute NAME, or --all; see %azml_delete -h")
        removed = self.session.delete(args.endpoint, all=args.all, compute=args.compute)
        print("Deleted: " + (", ".join(removed) if removed else "nothing (this workspace created nothing)"))
        return None

    # ------------------------------------------------------------------ status
    @line_magic
    @_user_errors
    def azml_status(self, line=""):
        P_STATUS.parse(line)
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
        args = P_MODELS.parse(line)
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


def _help_doc(name: str) -> str:
    return PARSERS[name].format_help()


for _name in PARSERS:
    getattr(AzmlMagics, _name).__doc__ = _help_doc(_name)
