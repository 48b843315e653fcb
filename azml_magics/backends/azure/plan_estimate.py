"""The estimate of an Azure run (pipeline or FineTuning job) before anything is submitted: training rows as Azure's
preprocess step slices them, tokens where the model's tokenizer is at hand, and optimizer steps over
the GPUs the job gets (the VM size's GPU count from the workspace's list_sizes, times the nodes).

Memory and time are not estimated, and the plan says why: the `azureml` registry's model cards publish
neither the model's shape (no parameter count, no Hugging Face id: see the vendored Phi-4 spec.yaml) nor
the pipeline's throughput, and list_sizes gives a VM's GPU count but not its GPU memory.
"""

from __future__ import annotations

from ...estimate import Estimate, optimizer_steps
from ..base import DataFiles

MEMORY_UNKNOWN = ("the registry card publishes no model shape and the workspace's VM sizes give GPU counts, "
                  "not GPU memory")
TIME_UNKNOWN = "no published throughput of chat_completion_pipeline per VM size"


def estimate_plan(plan, tokenizer=None) -> Estimate | None:
    """None for a plan whose data was not checked. A serverless FineTuning job runs on GPUs the service
    picks: its steps are given for one GPU, and the plan says so."""
    report = plan.data_report
    if report is None:
        return None
    from ..local import train_data

    train = report.files[report.train_split]
    test = report.files.get(report.test_split)
    validation = report.files.get("validation")
    files = DataFiles(train=str(train.path), test=str(test.path) if test else None,
                      validation=str(validation.path) if validation else None)
    notes = []
    if plan.mode == "pipeline":
        rows = train_data.training_rows(train.kept, files)
    else:  # the job gets our test file as its validation data (finetuning.py); how it splits is not published
        rows = train.kept
        notes.append("FineTuning job: every train row counted (the service gets the test file as validation "
                     "data; how it splits is not published)")
    values = plan.effective.values
    compute = plan.compute
    gpus = int(values.get("number_of_gpu_to_use_finetuning") or (compute.gpus_per_node if compute else 1) or 1)
    nodes = int(values.get("num_nodes_finetune", 1) or 1) if plan.mode == "pipeline" else 1
    epochs = float(values.get("num_train_epochs", 1))
    steps = optimizer_steps(rows, int(values.get("per_device_train_batch_size", 1)),
                            int(values.get("gradient_accumulation_steps", 1)), gpus * nodes, epochs,
                            int(values.get("max_steps", -1) or -1))
    tokens = None
    if tokenizer is not None:
        seq_len = int(values.get("max_seq_length", -1) or -1)
        if seq_len <= 0:
            seq_len = min(int(getattr(tokenizer, "model_max_length", 0) or 0) or 2**31, 2**31)
        conversations = train_data.read_conversations(files.train)[:rows]
        tokenized, _ = train_data.tokenize_all(tokenizer, conversations, seq_len)
        tokens = sum(len(r["input_ids"]) for r in tokenized)
    if compute is not None:
        device = f"{nodes} x {compute.size} ({gpus} GPU{'s' if gpus != 1 else ''} each)"
    else:
        device = "the GPUs the service picks"
        notes.append("serverless: the service picks the GPUs, so the optimizer steps are shown for one GPU; "
                     "the run bills per training token (tokens x epochs)")
    out = Estimate(rows, tokens, epochs, steps, gpus * nodes, device, {}, None,
                   memory_basis=MEMORY_UNKNOWN, time_basis=TIME_UNKNOWN, notes=notes)
    return out
