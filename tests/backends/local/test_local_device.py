"""The device, precision and launcher arguments the local backend builds (GPU paths without a GPU).

``plan_launch`` takes the Device it runs on as an argument, so a CUDA machine is described here and
the arguments built for it are checked against the libraries that read them: SFTConfig (built for
real where it can be on a CPU), accelerate's own launch parser, PEFT and transformers' quantization
config class.
"""

from __future__ import annotations

import pytest

from azml_magics.backends.local import device
from azml_magics.errors import AzmlError
from azml_magics.plan import merge_parameters
from azml_magics.spec import finetune_from_dict

A100x4 = device.Device("cuda", 4, "NVIDIA A100-SXM4-80GB", 80 * 2**30, bf16=True, flash_attention=False, cores=32)
V100x2 = device.Device("cuda", 2, "Tesla V100-SXM2-16GB", 16 * 2**30, bf16=False, cores=16)
CPU = device.Device("cpu", 1, "CPU", 8 * 2**30, cores=2)


def values(**user):
    return merge_parameters(user).values


def local(**raw):
    return finetune_from_dict({"model": "m", "local": raw}).local


def test_the_machine_is_detected():
    found = device.detect()  # this machine: no GPU
    assert found.kind in ("cpu", "cuda", "mps") and found.memory > 0 and found.cores >= 1
    assert device.plan_launch(values(), None, found).device == found.kind


def test_cpu_default_is_one_fp32_process():
    plan = device.plan_launch(values(), None, CPU)
    assert (plan.device, plan.precision, plan.processes, plan.distributed, plan.attention) == ("cpu", "fp32", 1, "none", "sdpa")
    assert not plan.launcher


def test_cuda_uses_bf16_where_supported_else_fp16():
    assert device.plan_launch(values(), None, A100x4).precision == "bf16"
    assert device.plan_launch(values(), None, V100x2).precision == "fp16"
    # precision 32 written by the user is kept; precision 16 on a CPU is a note, not a surprise
    assert device.plan_launch(values(precision="32"), None, A100x4, precision_from_user=True).precision == "fp32"
    cpu = device.plan_launch(values(precision="16"), None, CPU, precision_from_user=True)
    assert cpu.precision == "fp32" and any("float32" in n for n in cpu.notes)


def test_gpus_become_ddp_processes_capped_at_the_machine():
    plan = device.plan_launch(values(number_of_gpu_to_use_finetuning=4), None, A100x4)
    assert (plan.processes, plan.distributed, plan.launcher) == (4, "ddp", True)
    capped = device.plan_launch(values(number_of_gpu_to_use_finetuning=8), None, A100x4)
    assert capped.processes == 4 and any("8 asked" in n for n in capped.notes)
    with pytest.raises(AzmlError, match="local.processes=8 asked, but this machine has 4 GPU"):
        device.plan_launch(values(), local(processes=8), A100x4)


def test_several_nodes_need_the_main_address():
    alone = device.plan_launch(values(num_nodes_finetune=2, number_of_gpu_to_use_finetuning=4), None, A100x4)
    assert alone.nodes == 1 and any("this machine only" in n for n in alone.notes)
    two = device.plan_launch(values(num_nodes_finetune=2, number_of_gpu_to_use_finetuning=4),
                             local(main_process_ip="10.0.0.4", machine_rank=1), A100x4)
    assert (two.nodes, two.world_size, two.machine_rank, two.main_process_port) == (2, 8, 1, 29500)


def test_accelerate_launch_arguments_parse_as_accelerate_reads_them():
    from accelerate.commands.launch import launch_command_parser

    plan = device.plan_launch(values(num_nodes_finetune=2, number_of_gpu_to_use_finetuning=4),
                              local(main_process_ip="10.0.0.4", machine_rank=1), A100x4)
    cmd = device.launcher_args(plan) + ["azml_magics.backends.local.trainer", "/jobs/x"]
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])
    assert (args.num_processes, args.num_machines, args.machine_rank, args.main_process_ip) == (8, 2, 1, "10.0.0.4")
    assert args.multi_gpu and args.mixed_precision == "bf16" and args.module
    assert (args.training_script, args.training_script_args) == ("azml_magics.backends.local.trainer", ["/jobs/x"])


def test_deepspeed_asked_and_missing_is_one_line(monkeypatch):
    monkeypatch.setattr(device, "installed", lambda module: False)
    with pytest.raises(AzmlError, match=r"needs deepspeed, which is not installed; pip install 'azml_magics\[deepspeed\]'"):
        device.plan_launch(values(apply_deepspeed="true", number_of_gpu_to_use_finetuning=4), None, A100x4)
    # the same Azure spec on a CPU: DeepSpeed has nothing to shard, said in a note
    cpu = device.plan_launch(values(apply_deepspeed="true"), None, CPU)
    assert cpu.distributed == "none" and any("DeepSpeed" in n for n in cpu.notes)


def test_deepspeed_and_fsdp_reach_sftconfig(monkeypatch):
    monkeypatch.setattr(device, "installed", lambda module: True)
    ds = device.plan_launch(values(apply_deepspeed="true", deepspeed_stage="3", number_of_gpu_to_use_finetuning=4),
                            None, A100x4)
    kw = device.sft_kwargs(ds, checkpointing=True)
    assert ds.distributed == "deepspeed" and kw["deepspeed"]["zero_optimization"]["stage"] == 3
    assert kw["bf16"] and not kw["fp16"] and not kw["use_cpu"] and kw["ddp_backend"] == "nccl"
    assert kw["activation_checkpointing"] is True
    fsdp = device.plan_launch(values(number_of_gpu_to_use_finetuning=2), local(distributed="fsdp"), A100x4)
    kw = device.sft_kwargs(fsdp, checkpointing=True)
    assert kw["fsdp"] == "full_shard auto_wrap" and kw["fsdp_config"]["activation_checkpointing"] is True
    assert kw["activation_checkpointing"] is False  # FSDP checkpoints per wrapped layer itself
    with pytest.raises(AzmlError, match="local.distributed=fsdp shards a model across GPUs"):
        device.plan_launch(values(), local(distributed="fsdp"), CPU)


def test_device_arguments_are_sftconfig_fields_and_a_cpu_one_builds():
    from trl import SFTConfig

    from azml_magics.backends.local import params

    fields = set(SFTConfig.__dataclass_fields__)
    for plan in (device.plan_launch(values(), local(processes=2), CPU),
                 device.plan_launch(values(number_of_gpu_to_use_finetuning=4), local(liger=False), A100x4)):
        kw = device.sft_kwargs(plan, False)
        assert set(kw) <= fields, set(kw) - fields
    assert device.sft_kwargs(device.plan_launch(values(), local(processes=2), CPU), False)["ddp_backend"] == "gloo"
    one = device.plan_launch(values(), None, CPU)  # one process: a real SFTConfig (several need a process group)
    cfg = SFTConfig(**{**params.sft_kwargs(values(), "/tmp/out", True, 128), **device.sft_kwargs(one, False)})
    assert cfg.use_cpu and not cfg.bf16 and not cfg.fp16 and cfg.use_liger_kernel is False


def test_qlora_builds_a_bitsandbytes_config_and_is_refused_without_it(monkeypatch):
    from transformers import BitsAndBytesConfig

    with pytest.raises(AzmlError, match="local.qlora .* needs a CUDA GPU"):
        device.plan_launch(values(apply_lora="true"), local(qlora=True), CPU)
    monkeypatch.setattr(device, "installed", lambda module: module != "bitsandbytes")
    with pytest.raises(AzmlError, match=r"needs bitsandbytes, which is not installed; pip install 'azml_magics\[qlora\]'"):
        device.plan_launch(values(apply_lora="true"), local(qlora=True), A100x4)
    with pytest.raises(AzmlError, match="set apply_lora: true"):
        device.plan_launch(values(apply_lora="false"), local(qlora=True), A100x4)
    monkeypatch.setattr(device, "installed", lambda module: True)
    plan = device.plan_launch(values(apply_lora="true"), local(qlora=True), A100x4)
    kw = device.model_kwargs(plan, lora=True, local_rank=3)
    assert kw["device_map"] == {"": 3} and kw["dtype"] == "bfloat16"
    q = dict(kw["quantization_config"], bnb_4bit_compute_dtype=None)
    config = BitsAndBytesConfig(**q)  # the keys are the class's own
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"


def test_liger_and_flash_attention():
    with pytest.raises(AzmlError, match="local.liger .* needs a CUDA GPU"):
        device.plan_launch(values(), local(liger=True), CPU)
    flash = device.Device("cuda", 1, "NVIDIA H100", 80 * 2**30, bf16=True, flash_attention=True)
    assert device.plan_launch(values(), None, flash).attention == "flash_attention_2"
    assert device.plan_launch(values(), None, A100x4).attention == "sdpa"  # flash_attn not installed
    with pytest.raises(AzmlError, match="flash_attention_2 needs flash-attn"):
        device.plan_launch(values(), local(attention="flash_attention_2"), A100x4)


def test_lora_base_in_half_full_fine_tune_in_fp32():
    bf16 = device.plan_launch(values(), None, A100x4)
    assert device.model_kwargs(bf16, lora=True)["dtype"] == "bfloat16"
    assert device.model_kwargs(bf16, lora=False)["dtype"] == "float32"  # fp32 master weights, autocast


def test_job_command_goes_through_the_launcher_only_when_asked(tmp_path):
    from azml_magics.backends.local import jobs

    single = jobs.command(tmp_path, device.LaunchPlan().to_json())
    assert single[1:] == ["-m", "azml_magics.backends.local.trainer", str(tmp_path.resolve())]
    two = jobs.command(tmp_path, device.plan_launch(values(), local(processes=2), CPU).to_json())
    assert "accelerate.commands.launch" in two and two[-2:] == ["azml_magics.backends.local.trainer", str(tmp_path.resolve())]


def test_local_section_is_checked_and_leaves_the_azure_spec_alone():
    from azml_magics.errors import SpecError

    spec = finetune_from_dict({"model": "m", "parameters": {"learning_rate": 1e-4}, "local": {"qlora": True}})
    assert spec.local.qlora is True and "qlora" not in spec.parameters
    assert "local" not in finetune_from_dict({"model": "m"}).to_dict()  # no section, nothing in the spec
    with pytest.raises(SpecError, match="unknown key 'qlroa' in local; did you mean 'qlora'"):
        finetune_from_dict({"model": "m", "local": {"qlroa": True}})
    with pytest.raises(SpecError, match="local.device must be one of auto, cuda, mps, cpu"):
        finetune_from_dict({"model": "m", "local": {"device": "tpu"}})
    with pytest.raises(SpecError, match="local.processes must be a whole number of at least 1"):
        finetune_from_dict({"model": "m", "local": {"processes": 0}})
