"""The MLflow ``pyfunc`` loader for models the local backend produces.

The model is stored as a plain Hugging Face folder inside the MLflow model (its ``data`` path), so
the endpoint loads it with ``from_pretrained`` and anyone else with ``mlflow.pyfunc.load_model``,
which answers the Azure scoring contract (``{"input_data": {"input_string": [...]}}``).
"""

from __future__ import annotations


class ChatPyfunc:
    """``predict`` takes an Azure /score body and returns the /score response."""

    def __init__(self, folder: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder)
        self.model.eval()

    def _reply(self, messages: list[dict], params):
        import torch

        from ...scoring import Reply

        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        gen = dict(max_new_tokens=params.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id)
        if params.greedy:
            gen.update(do_sample=False)
        else:
            gen.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        with torch.no_grad():
            out = self.model.generate(**ids, **gen)
        new = out[0, ids["input_ids"].shape[1]:].tolist()
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        stopped = bool(new) and new[-1] in eos
        reply = Reply()
        reply.text = self.tokenizer.decode(new, skip_special_tokens=True)
        reply.finish_reason = "stop" if stopped else "length"
        reply.prompt_tokens = int(ids["input_ids"].shape[1])
        reply.completion_tokens = len(new)
        return reply

    def predict(self, model_input, params=None):
        from ...scoring import parse_score_request, score_response

        request = parse_score_request(model_input)
        replies = [self._reply(c, request.params) for c in request.conversations]
        return score_response(replies, model=self.folder, batched_input=request.batched_input)


def _load_pyfunc(data_path: str) -> ChatPyfunc:
    return ChatPyfunc(data_path)
