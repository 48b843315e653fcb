# The seed notebook's code cells (shared/seed/chat-completion-finetune-notebook.el.md and the reference
# doc's steps 4-6, whose cells the translation omits), transcribed with three changes only:
#   1. the connection: the emulator's env is in os.environ (the standard sovereign-cloud settings),
#      config.json is absent so MLClient.from_config fails over to explicit names, as in the original;
#   2. the data cell writes a few bundled sample rows instead of downloading ultrachat_200k;
#   3. `SUBSCRIPTION_ID`, `RESOURCE_GROUP`, `WORKSPACE_NAME` are variables the runner sets.
# Cells are separated by "# %% <name>" lines; the runner executes them in order in one namespace.

# %% connect
from azure.ai.ml import MLClient
from azure.identity import (
    DefaultAzureCredential,
    InteractiveBrowserCredential,
)
from azure.ai.ml.entities import AmlCompute
import time

try:
    credential = DefaultAzureCredential()
    credential.get_token("https://management.azure.com/.default")
except Exception as ex:
    credential = InteractiveBrowserCredential()

try:
    workspace_ml_client = MLClient.from_config(credential=credential)
except:
    workspace_ml_client = MLClient(
        credential,
        subscription_id=SUBSCRIPTION_ID,
        resource_group_name=RESOURCE_GROUP,
        workspace_name=WORKSPACE_NAME,
    )

registry_ml_client = MLClient(credential, registry_name="azureml")
experiment_name = "chat_completion_Phi-3-mini-4k-instruct"
timestamp = str(int(time.time()))

# %% model
model_name = "Phi-3-mini-4k-instruct"
foundation_model = registry_ml_client.models.get(model_name, label="latest")
print(
    "\n\nUsing model name: {0}, version: {1}, id: {2} for fine tuning".format(
        foundation_model.name, foundation_model.version, foundation_model.id
    )
)

# %% allow_list
import ast

if "finetune_compute_allow_list" in foundation_model.tags:
    computes_allow_list = ast.literal_eval(
        foundation_model.tags["finetune_compute_allow_list"]
    )
    print(f"Please create a compute from the above list - {computes_allow_list}")
else:
    computes_allow_list = None
    print("`finetune_compute_allow_list` is not part of model tags")

# %% compute
compute_cluster_size = "Standard_NC24ads_A100_v4"
compute_cluster = "gpu-cluster-big"
if computes_allow_list is not None and compute_cluster_size not in computes_allow_list:
    raise ValueError(f"VM size {compute_cluster_size} is not in the allow-listed computes for finetuning")

try:
    compute = workspace_ml_client.compute.get(compute_cluster)
    print("The compute cluster already exists! Reusing it for the current run")
except Exception as ex:
    print(f"Looks like the compute cluster doesn't exist. Creating a new one with compute size {compute_cluster_size}!")
    try:
        print("Attempt #1 - Trying to create a dedicated compute")
        compute = AmlCompute(
            name=compute_cluster,
            size=compute_cluster_size,
            tier="Dedicated",
            max_instances=2,
        )
        workspace_ml_client.compute.begin_create_or_update(compute).wait()
    except Exception as e:
        try:
            print("Attempt #2 - Trying to create a low priority compute. Since this is a low priority compute, the job could get pre-empted before completion.")
            compute = AmlCompute(
                name=compute_cluster,
                size=compute_cluster_size,
                tier="LowPriority",
                max_instances=2,
            )
            workspace_ml_client.compute.begin_create_or_update(compute).wait()
        except Exception as e:
            print(e)
            raise ValueError(f"WARNING! Compute size {compute_cluster_size} not available in workspace")

compute = workspace_ml_client.compute.get(compute_cluster)
print("Sanity check on GPU compute size")
gpus_per_node = 0
compute_sizes = workspace_ml_client.compute.list_sizes()
for compute_size in compute_sizes:
    if compute_size.name.lower() == compute.size.lower():
        gpus_per_node = compute_size.gpus
        print(f"Number of GPU's in compute {compute.size}: {gpus_per_node}")
        break
if gpus_per_node == 0:
    raise ValueError(f"Number of GPU's in compute {compute.size}: {gpus_per_node}")

# %% data
import json, os

os.makedirs("./ultrachat_200k_dataset", exist_ok=True)
for split, rows in SAMPLE_SPLITS.items():
    with open(f"./ultrachat_200k_dataset/{split}.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")

# %% parameters
finetune_parameters = {
    "num_train_epochs": 3,
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "learning_rate": 5e-6,
    "lr_scheduler_type": "cosine",
    "apply_lora": "true",
    "apply_deepspeed": "true",
    "deepspeed_stage": 2,
}
model_specific_defaults = ast.literal_eval(foundation_model.tags.get("model_specific_defaults", "{}"))
if model_specific_defaults:
    print("Warning! Model specific defaults exist. The defaults could be overridden.")
    finetune_parameters.update(model_specific_defaults)
print(f"The following finetune parameters are going to be set for the run: {finetune_parameters}")

# %% display_name
def get_pipeline_display_name():
    batch_size = (
        int(finetune_parameters.get("per_device_train_batch_size", 1))
        * int(finetune_parameters.get("gradient_accumulation_steps", 1))
        * int(gpus_per_node)
        * int(finetune_parameters.get("num_nodes_finetune", 1))
    )
    scheduler = finetune_parameters.get("lr_scheduler_type", "linear")
    deepspeed = finetune_parameters.get("apply_deepspeed", "false")
    ds_stage = finetune_parameters.get("deepspeed_stage", "2")
    if deepspeed == "true":
        ds_string = f"ds{ds_stage}"
    else:
        ds_string = "nods"
    lora = finetune_parameters.get("apply_lora", "false")
    if lora == "true":
        lora_string = "lora"
    else:
        lora_string = "nolora"
    save_limit = finetune_parameters.get("save_total_limit", -1)
    seq_len = finetune_parameters.get("max_seq_length", -1)
    return (
        model_name
        + "-"
        + "ultrachat"
        + "-"
        + f"bs{batch_size}"
        + "-"
        + f"{scheduler}"
        + "-"
        + ds_string
        + "-"
        + lora_string
        + f"-save_limit{save_limit}"
        + f"-seqlen{seq_len}"
    )

pipeline_display_name = get_pipeline_display_name()
print(f"Display name used for the run: {pipeline_display_name}")

# %% pipeline
from azure.ai.ml.dsl import pipeline
from azure.ai.ml import Input

pipeline_component_func = registry_ml_client.components.get(
    name="chat_completion_pipeline", label="latest"
)

@pipeline(name=pipeline_display_name)
def create_pipeline():
    chat_completion_pipeline = pipeline_component_func(
        mlflow_model_path=foundation_model.id,
        compute_model_import=compute_cluster,
        compute_preprocess=compute_cluster,
        compute_finetune=compute_cluster,
        compute_model_evaluation=compute_cluster,
        train_file_path=Input(
            type="uri_file", path="./ultrachat_200k_dataset/train_sft.jsonl"
        ),
        test_file_path=Input(
            type="uri_file", path="./ultrachat_200k_dataset/test_sft.jsonl"
        ),
        number_of_gpu_to_use_finetuning=gpus_per_node,
        **finetune_parameters
    )
    return {
        "trained_model": chat_completion_pipeline.outputs.mlflow_model_folder
    }

pipeline_object = create_pipeline()
pipeline_object.settings.force_rerun = True
pipeline_object.settings.continue_on_step_failure = False

# %% submit
pipeline_job = workspace_ml_client.jobs.create_or_update(
    pipeline_object, experiment_name=experiment_name
)
workspace_ml_client.jobs.stream(pipeline_job.name)

# %% register
from azure.ai.ml.entities import Model
from azure.ai.ml.constants import AssetTypes

print("pipeline job outputs: ", workspace_ml_client.jobs.get(pipeline_job.name).outputs)
model_path_from_job = "azureml://jobs/{0}/outputs/{1}".format(
    pipeline_job.name, "trained_model"
)
finetuned_model_name = model_name + "-ultrachat-200k"
finetuned_model_name = finetuned_model_name.replace("/", "-")
print("path to register model: ", model_path_from_job)
prepare_to_register_model = Model(
    path=model_path_from_job,
    type=AssetTypes.MLFLOW_MODEL,
    name=finetuned_model_name,
    version=timestamp,
    description=model_name + " fine tuned model for ultrachat 200k chat-completion",
)
print("prepare to register model: \n", prepare_to_register_model)
registered_model = workspace_ml_client.models.create_or_update(
    prepare_to_register_model
)
print("registered model: \n", registered_model)

# %% endpoint
from azure.ai.ml.entities import (
    ManagedOnlineEndpoint,
    ManagedOnlineDeployment,
    ProbeSettings,
    OnlineRequestSettings,
)

online_endpoint_name = "ultrachat-completion-" + timestamp
endpoint = ManagedOnlineEndpoint(
    name=online_endpoint_name,
    description="Online endpoint for "
    + registered_model.name
    + ", fine tuned model for ultrachat-200k-chat-completion",
    auth_mode="key",
)
workspace_ml_client.begin_create_or_update(endpoint).wait()

# %% deployment
import ast

instance_type = "Standard_NC6s_v3"
if "inference_compute_allow_list" in foundation_model.tags:
    inference_computes_allow_list = ast.literal_eval(
        foundation_model.tags["inference_compute_allow_list"]
    )
    print(f"Please create a compute from the above list - {computes_allow_list}")
else:
    inference_computes_allow_list = None
    print("`inference_compute_allow_list` is not part of model tags")
if (
    inference_computes_allow_list is not None
    and instance_type not in inference_computes_allow_list
):
    print(
        f"`instance_type` is not in the allow listed compute. Please select a value from {inference_computes_allow_list}"
    )
demo_deployment = ManagedOnlineDeployment(
    name="demo",
    endpoint_name=online_endpoint_name,
    model=registered_model.id,
    instance_type=instance_type,
    instance_count=1,
    liveness_probe=ProbeSettings(initial_delay=600),
    request_settings=OnlineRequestSettings(request_timeout_ms=90000),
)
workspace_ml_client.online_deployments.begin_create_or_update(demo_deployment).wait()
endpoint.traffic = {"demo": 100}
workspace_ml_client.begin_create_or_update(endpoint).result()

# %% sample
import pandas as pd

test_df = pd.read_json("./ultrachat_200k_dataset/test_gen.jsonl", lines=True)
test_df = test_df.sample(n=1)
test_df.reset_index(drop=True, inplace=True)
test_df.head(2)

# %% request_file
import json

parameters = {
    "temperature": 0.6,
    "top_p": 0.9,
    "do_sample": True,
    "max_new_tokens": 200,
}
test_json = {
    "input_data": {
        "input_string": [test_df["messages"][0]],
        "parameters": parameters,
    },
    "params": {},
}
with open("./ultrachat_200k_dataset/sample_score.json", "w") as f:
    json.dump(test_json, f)

# %% invoke
response = workspace_ml_client.online_endpoints.invoke(
    endpoint_name=online_endpoint_name,
    deployment_name="demo",
    request_file="./ultrachat_200k_dataset/sample_score.json",
)
print("raw response: \n", response, "\n")

# %% delete
workspace_ml_client.online_endpoints.begin_delete(name=online_endpoint_name).wait()
