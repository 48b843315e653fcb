"""The argument parsers of the magics, with their help and examples.

Built on first use (not at ``%load_ext``) so loading the extension stays fast.
"""

from __future__ import annotations

import argparse

from .magic_args import MagicParser

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
  %azml_register                                   # the last completed job, as <model>-ultrachat-200k
  %azml_register JOB_NAME --name my-chat-model --version 3
""",
)
P_REGISTER.add_argument("job", nargs="?", help="job name (default: the newest completed job)")
P_REGISTER.add_argument("--name", help="model name (default: <base model>-ultrachat-200k)")
P_REGISTER.add_argument("--version", help="model version (default: a timestamp on Azure, as in the original; the registry's next number locally)")

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


