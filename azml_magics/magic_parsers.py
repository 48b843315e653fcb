"""The argument parsers of the magics, with their help and examples.

Built on first use (not at ``%load_ext``) so loading the extension stays fast.
"""

from __future__ import annotations

import argparse

from .defaults import CREDENTIALS, DATA_FOLDER, ENDPOINT_PREFIX, SPLITS
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
    "--credential", choices=list(CREDENTIALS),
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
  %azml_data validate ultrachat_200k_dataset --model Phi-4 --max-seq-length 2048
  %azml_data validate train.jsonl --policy drop
  %azml_data summary ultrachat_200k_dataset
""",
)
P_DATA.add_argument("action", choices=["prepare", "validate", "summary", "show"], help="what to do")
P_DATA.add_argument("source", nargs="?", help="hub dataset id, file or folder")
P_DATA.add_argument("--fraction", type=float, help="fraction of each split to keep (default 0.05)")
P_DATA.add_argument("--rows", type=int, help="rows per split instead of a fraction")
P_DATA.add_argument("--out", help=f"output folder (default {DATA_FOLDER})")
P_DATA.add_argument("--splits", help=f"comma-separated splits (default {','.join(SPLITS)})")
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
  model: Phi-4                           # live; its defaults: LoRA, DeepSpeed 3, lr 5e-6, cosine, 1 epoch
  data: {source: HuggingFaceH4/ultrachat_200k, fraction: 0.05}
  compute: {name: gpu-cluster, size: Standard_NC24ads_A100_v4, max_instances: 2}
  parameters:
    num_train_epochs: 3                  # your values win over the model's defaults

  %%azml_finetune --no-wait
  model: azml-tiny-phi3                  # the built-in tiny model (local backend)
  data: {train: data/train_sft.jsonl, test: data/test_sft.jsonl}

  %%azml_finetune --smoke                # the same spec on this machine in a minute: the model's config
  model: Phi-3-mini-4k-instruct          # and tokenizer shrunk to 2 layers, the first rows, 3 steps,
  data: {source: HuggingFaceH4/ultrachat_200k, fraction: 0.05}   # then register and score once

  %azml_finetune                         # a form with every field, filled with the defaults
  %azml_finetune --list-parameters       # every chat_completion_pipeline input
""",
    cell=True,
)
P_FINETUNE.add_argument("--dry-run", dest="dry_run", action="store_true", help="show the effective parameters and stop")
P_FINETUNE.add_argument("--smoke", action="store_true",
                        help="run the spec here first: the model's own config, tokenizer and chat template shrunk to "
                             "2 layers, the first rows of the data, a few steps, then register and score once")
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
  %azml_jobs compare JOB_A JOB_B  # loss curves on one chart, and the parameters that differ
""",
)
P_JOBS.add_argument("action", nargs="?", default="list",
                    choices=["list", "attach", "status", "logs", "metrics", "cancel", "compare"])
P_JOBS.add_argument("job", nargs="?", help="job name (default: the last one submitted here)")
P_JOBS.add_argument("other", nargs="?", help="compare: the second job")

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
  %azml_deploy my-chat-model:3 --endpoint ultrachat-demo --instance-type Standard_NC24ads_A100_v4
  %azml_deploy --base --endpoint base-demo         # its base model, to compare and chat with
  %%azml_deploy
  model: my-chat-model@latest
  endpoint: ultrachat-demo
  instance_type: Standard_NC24ads_A100_v4
  instance_count: 1
  request_timeout_ms: 90000
""",
)
P_DEPLOY.add_argument("model", nargs="?", help="registered model: name:version, name@latest (default: the last registered)")
P_DEPLOY.add_argument("--base", action="store_true",
                      help="deploy the base model the last registered model (or MODEL) was fine-tuned from")
P_DEPLOY.add_argument("--endpoint", "-e", help=f"endpoint name (default: {ENDPOINT_PREFIX}-<timestamp>)")
P_DEPLOY.add_argument("--deployment", help="deployment name (default: demo)")
P_DEPLOY.add_argument("--instance-type", dest="instance_type", help="VM size (default: Standard_NC24ads_A100_v4)")
P_DEPLOY.add_argument("--instance-count", dest="instance_count", type=int, help="instances (default 1)")
P_DEPLOY.add_argument("--request-timeout-ms", dest="request_timeout_ms", type=int, help="request timeout (default 90000)")
P_DEPLOY.add_argument("--engine", help="local endpoint: auto (vllm with a GPU and the vllm extra, else transformers), "
                      "transformers, batcher or vllm")
P_DEPLOY.add_argument("--dry-run", dest="dry_run", action="store_true", help="check the spec and stop")
P_DEPLOY.add_argument("--form", action="store_true", help="show a form instead")

P_CHAT = MagicParser(
    "azml_chat",
    "Chat with an endpoint: a chat box, or one reply for the text given (line) or the cell body.",
    """
  %azml_chat                                       # chat box on the last endpoint
  %azml_chat ultrachat-demo "What is the capital of France?"
  %azml_chat base-demo ultrachat-demo                  # side by side: one input, a column per endpoint
  %azml_chat ultrachat-demo --request-file sample_score.json    # the original notebook's request file
  %%azml_chat ultrachat-demo --max-new-tokens 100
  Write a haiku about GPUs.
""",
    intermixed=True,
)
P_CHAT.add_argument("endpoint", nargs="?", help="endpoint name (default: the last one deployed here)")
P_CHAT.add_argument("text", nargs="*", help="a user message (the reply is returned); or more endpoint names: "
                    "one chat box with a column per endpoint, side by side")
P_CHAT.add_argument("--request-file", dest="request_file", help="send this JSON request to /score as is")
P_CHAT.add_argument("--system", help="system prompt")
P_CHAT.add_argument("--load", help="open the chat box with this history (a file written by box.export)")
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
    "List registry models that support chat-completion fine-tuning (with their state), or show one model's card.",
    """
  %azml_models                           # state (live, archived, retiring on ...), allowed VM sizes, minimum SKU
  %azml_models Phi-4
  %azml_models Phi-4:8
""",
)
P_MODELS.add_argument("model", nargs="?", help="a model name (name, name:version or name@label)")
P_MODELS.add_argument("--task", default="chat-completion", help="task to filter on")

P_EVAL = MagicParser(
    "azml_eval",
    "Compare candidates (default: the base model, then the last registered model) on held-out rows: ROUGE-L, "
    "BLEU, reply length, stop rate, speed, loss on test_sft for models loaded here, and an optional pairwise "
    "judge. Shows a table with the delta and examples side by side; logs an MLflow evaluation run.",
    """
  %azml_eval --data quickstart_data                        # base vs fine-tuned on test_gen (loss on test_sft)
  %azml_eval base my-chat-model:3 -n 50 --seed 1
  %azml_eval endpoint:base-demo endpoint:ultrachat-demo     # through two endpoints
  %azml_eval --judge endpoint:judge-demo                    # an endpoint of this workspace as the judge
  %azml_eval --judge http://127.0.0.1:8000/v1 --judge-model gpt-4o   # any OpenAI-compatible endpoint
  %azml_eval --show-judge-prompt                            # print the judge prompt; change it with --judge-prompt FILE
""",
)
P_EVAL.add_argument("candidates", nargs="*", help="endpoint:NAME, base, last, name:version, a base model name")
P_EVAL.add_argument("--data", help=f"folder (its test_gen/test_sft) or JSON-lines file (default {DATA_FOLDER})")
P_EVAL.add_argument("--loss-data", dest="loss_data", help="test_sft file for the loss (default: beside --data)")
P_EVAL.add_argument("-n", "--rows", dest="n", type=int, default=20, help="rows to evaluate (default 20)")
P_EVAL.add_argument("--all-rows", dest="all_rows", action="store_true", help="every row of the file")
P_EVAL.add_argument("--seed", type=int, default=0, help="picks the rows and seeds sampling (default 0)")
P_EVAL.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=128)
P_EVAL.add_argument("--temperature", type=float, default=0.0, help="0 (the default) is greedy")
P_EVAL.add_argument("--top-p", dest="top_p", type=float, default=0.9)
P_EVAL.add_argument("--batch-size", dest="batch_size", type=int, default=8, help="prompts generated together")
P_EVAL.add_argument("--no-loss", dest="loss", action="store_false", help="skip the loss on test_sft")
P_EVAL.add_argument("--judge", help="endpoint:NAME or an OpenAI-compatible base URL (key: AZML_JUDGE_KEY)")
P_EVAL.add_argument("--judge-model", dest="judge_model", help="model name sent to the judge")
P_EVAL.add_argument("--judge-prompt", dest="judge_prompt", help="file with the judge prompt ({question}, {answer_a}, {answer_b})")
P_EVAL.add_argument("--show-judge-prompt", dest="show_judge_prompt", action="store_true", help="print the judge prompt and stop")
P_EVAL.add_argument("--examples", type=int, default=5, help="examples shown side by side (default 5)")
P_EVAL.add_argument("--sort", choices=["diff", "bleu", "row"], default="diff", help="examples order (default: largest ROUGE-L difference)")
P_EVAL.add_argument("--no-log", dest="log", action="store_false", help="do not log an MLflow run")


def generation_params(args):
    """GenerationParams from --temperature/--top-p/--max-new-tokens (and --greedy), one line when out of range."""
    from .errors import AzmlError
    from .scoring import GenerationParams

    if not args.temperature >= 0 or args.temperature == float("inf"):  # NaN compares false
        raise AzmlError(f"--temperature must be a finite number, 0 or more (got {args.temperature}).")
    if not 0 < args.top_p <= 1:
        raise AzmlError(f"--top-p must be in (0, 1] (got {args.top_p}).")
    if args.max_new_tokens < 1:
        raise AzmlError(f"--max-new-tokens must be at least 1 (got {args.max_new_tokens}).")
    greedy = getattr(args, "greedy", False) or args.temperature == 0
    return GenerationParams(temperature=args.temperature, top_p=args.top_p, do_sample=not greedy,
                            max_new_tokens=args.max_new_tokens)


def eval_options(args):
    """(candidates, Session.evaluate options) from %azml_eval's arguments; (None, None) after
    --show-judge-prompt printed the prompt. The judge prompt file is read here (one line if it cannot be)."""
    from pathlib import Path

    from .errors import NotFound

    prompt = None
    if args.judge_prompt:
        try:
            prompt = Path(args.judge_prompt).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise NotFound(f"cannot read the judge prompt file {args.judge_prompt} ({exc}).") from None
    if args.show_judge_prompt:
        from .evaluation import DEFAULT_JUDGE_PROMPT

        print(prompt or DEFAULT_JUDGE_PROMPT)
        return None, None
    options = dict(data=args.data, loss_data=args.loss_data, n=None if args.all_rows else args.n, seed=args.seed,
                   params=generation_params(args), batch_size=args.batch_size, loss=args.loss, judge=args.judge,
                   judge_prompt=prompt, judge_model=args.judge_model, log=args.log, examples=args.examples,
                   sort=args.sort)
    return args.candidates or None, options


def chat_targets(args, session, cell=None) -> tuple[list[str], str | None]:
    """(endpoint names, text) of a %azml_chat line: ``EP1 EP2 [...]`` naming only existing endpoints is
    side by side; otherwise ``EP "text"`` (or the cell's text). Every endpoint is checked to exist."""
    from .errors import AzmlError

    words, exists = args.text, session.endpoint_exists
    if args.endpoint and words and all(exists(w) for w in words):
        names, text = [args.endpoint, *words], None
    elif len(words) > 1:
        missing = [w for w in words if not exists(w)]
        raise AzmlError(f"%azml_chat: put the message in quotes (%azml_chat EP \"your message\"), or name only "
                        f"endpoints for side by side; not an endpoint here: {', '.join(missing)}.")
    else:
        names, text = [args.endpoint], (words[0] if words else None)
    text = cell.strip() if cell is not None and cell.strip() else text
    names = [session.endpoint_name(n) for n in names]
    for name in names:
        if not exists(name):
            hint = ""
            latest = session.state.latest("endpoints") if session.state else None
            if text is None and args.endpoint and latest is not None:
                hint = f' To send text to {latest.name}: %azml_chat {latest.name} "{args.endpoint}"'
            raise AzmlError(f"no endpoint named '{name}' (%azml_status lists this workspace's endpoints).{hint}")
    return names, text


PARSERS = {
    "azml_connect": P_CONNECT, "azml_data": P_DATA, "azml_finetune": P_FINETUNE, "azml_jobs": P_JOBS,
    "azml_register": P_REGISTER, "azml_deploy": P_DEPLOY, "azml_chat": P_CHAT, "azml_delete": P_DELETE,
    "azml_status": P_STATUS, "azml_models": P_MODELS, "azml_eval": P_EVAL,
}


