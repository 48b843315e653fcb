"""The endpoint contract: what /score and /v1/chat/completions accept, refuse and answer."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from azml_magics import scoring
from azml_magics.errors import AzmlError
from azml_magics.scoring import BadRequest, GenerationParams, Reply

USER = {"role": "user", "content": "How many hours are in 5 days?"}
ASSISTANT = {"role": "assistant", "content": "5 days is 120 hours."}


def score_body(input_string, **parameters):
    return {"input_data": {"input_string": input_string, "parameters": parameters}, "params": {}}


def test_flat_message_list_is_one_conversation():
    parsed = scoring.parse_score_request(score_body([USER], max_new_tokens=50, temperature=0.2))
    assert parsed.conversations == [[USER]]
    assert not parsed.batched_input
    assert (parsed.params.max_new_tokens, parsed.params.temperature) == (50, 0.2)


def test_notebook_shape_list_of_conversations():
    """The notebook sends ``[test_df["messages"][0]]``: a list holding one conversation."""
    parsed = scoring.parse_score_request(score_body([[USER, ASSISTANT]], temperature=0.6, top_p=0.9,
                                                    do_sample=True, max_new_tokens=200))
    assert parsed.conversations == [[USER, ASSISTANT]]
    assert parsed.batched_input
    assert parsed.params == scoring.GenerationParams(max_new_tokens=200, temperature=0.6, top_p=0.9, do_sample=True)


def test_defaults_when_parameters_are_missing():
    parsed = scoring.parse_score_request({"input_data": {"input_string": [USER]}})
    assert parsed.params == scoring.GenerationParams()
    assert not parsed.params.greedy
    assert scoring.GenerationParams(do_sample=False).greedy and scoring.GenerationParams(temperature=0).greedy


@pytest.mark.parametrize(
    "body, words",
    [
        ([USER], "must be a JSON object, not a list"),
        ({}, "'input_data' is missing"),
        ({"input-data": {}}, "unknown top-level key 'input-data'"),
        ({"input_data": {"input_string": []}}, "non-empty list"),
        ({"input_data": {"input_string": "hello"}}, "non-empty list"),
        ({"input_data": {"inputs": [USER]}}, "unknown key input_data.inputs"),
        (score_body([{"role": "robot", "content": "x"}]), "role must be one of system, user, assistant"),
        (score_body([{"role": "user"}]), "has no 'content'"),
        (score_body([{"role": "user", "content": 5}]), "content must be a string, not a number"),
        (score_body(["hello"]), "must be an object with 'role' and 'content'"),
        (score_body([[USER], USER]), "must be an object with 'role' and 'content'"),
        (score_body([[]]), "input_string[0] must be a non-empty list"),
        (score_body([USER], max_new_tokens=0), "max_new_tokens must be between 1"),
        (score_body([USER], max_new_tokens=5000), "over this endpoint's limit of 1024"),
        (score_body([USER], max_new_tokens=1.5), "max_new_tokens must be an integer"),
        (score_body([USER], max_new_tokens=True), "max_new_tokens must be an integer, not a boolean"),
        (score_body([USER], temperature="hot"), "temperature must be a number, not a string"),
        (score_body([USER], temperature=-1), "temperature must be between 0"),
        (score_body([USER], top_p=1.5), "top_p must be between 0 and 1"),
        (score_body([USER], top_p=0.0), "top_p must be above 0 when sampling"),
        (score_body([USER], do_sample="yes"), "do_sample must be true or false"),
        (score_body([USER], max_length=10), "unknown parameter 'max_length'"),
        (score_body([USER], return_full_text=True), "only false is supported"),
        ({"input_data": {"input_string": [USER], "parameters": []}}, "parameters must be an object"),
        ({"input_data": {"input_string": [USER]}, "params": []}, "'params' must be an object"),
    ],
)
def test_malformed_score_requests_say_what_is_wrong_and_show_the_format(body, words):
    with pytest.raises(BadRequest) as info:
        scoring.parse_score_request(body)
    message = str(info.value)
    assert words in message
    assert "\n" not in message
    assert message.endswith(scoring.EXPECTED_SCORE_FORMAT)
    assert isinstance(info.value, AzmlError)


def test_the_cap_is_the_servers_choice():
    with pytest.raises(BadRequest, match="limit of 64"):
        scoring.parse_score_request(score_body([USER], max_new_tokens=65), max_new_tokens_cap=64)
    assert scoring.parse_score_request(score_body([USER], max_new_tokens=64), max_new_tokens_cap=64)


def test_content_parts_of_text_are_joined():
    parts = {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    assert scoring.check_messages([parts]) == [{"role": "user", "content": "ab"}]
    with pytest.raises(BadRequest, match="content parts must be"):
        scoring.check_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])


def test_score_response_single_and_batched():
    reply = Reply("120 hours.", "stop", prompt_tokens=12, completion_tokens=4)
    body = scoring.score_response([reply], model="m:1", batched_input=True)
    assert body["output"] == "120 hours."
    assert body["message"] == {"role": "assistant", "content": "120 hours."}
    assert body["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    assert body["model"] == "m:1" and body["id"].startswith("score-")
    two = scoring.score_response([reply, Reply("x", "length", 3, 7)], model="m", batched_input=True)
    assert two["output"] == ["120 hours.", "x"]
    assert two["finish_reason"] == ["stop", "length"]
    assert two["usage"]["total_tokens"] == 26
    assert scoring.score_output(two) == "120 hours.\nx"


@pytest.mark.parametrize(
    "response, text",
    [({"output": "hi"}, "hi"), ([{"0": "hi"}], "hi"), ({"0": "hi"}, "hi"), ("hi", "hi")],
)
def test_score_output_reads_current_and_older_shapes(response, text):
    assert scoring.score_output(response) == text


def test_score_output_refuses_unknown_shapes():
    with pytest.raises(ValueError, match="unrecognised"):
        scoring.score_output({"answer": "hi"})


def test_chat_request_defaults_follow_openai():
    parsed = scoring.parse_chat_request({"model": "x", "messages": [USER]})
    assert parsed.params == scoring.GenerationParams(max_new_tokens=200, temperature=1.0, top_p=1.0, do_sample=True)
    assert not parsed.stream
    parsed = scoring.parse_chat_request(
        {"messages": [USER], "max_completion_tokens": 7, "temperature": 0, "stream": True,
         "stream_options": {"include_usage": True}, "user": "u1", "seed": 3, "frequency_penalty": 0}
    )
    assert parsed.params.max_new_tokens == 7 and parsed.params.greedy
    assert parsed.stream and parsed.include_usage


@pytest.mark.parametrize(
    "body, words",
    [
        ({"messages": []}, "messages must be a non-empty list"),
        ({"prompt": "hi"}, "messages must be a non-empty list"),
        ({"messages": [USER], "n": 2}, "n must be 1"),
        ({"messages": [USER], "stop": ["\n"]}, "'stop' is not supported"),
        ({"messages": [USER], "tools": [{"type": "function"}]}, "'tools' is not supported"),
        ({"messages": [USER], "presence_penalty": 1.0}, "'presence_penalty' is not supported"),
        ({"messages": [USER], "temperature": 3}, "temperature must be between 0 and 2"),
        ({"messages": [USER], "max_tokens": "many"}, "max_tokens must be an integer"),
        ({"messages": [USER], "stream": "yes"}, "stream must be true or false"),
        ({"messages": [USER], "stream_options": 1}, "stream_options must be an object"),
    ],
)
def test_malformed_chat_requests(body, words):
    with pytest.raises(BadRequest) as info:
        scoring.parse_chat_request(body)
    assert words in str(info.value)
    assert str(info.value).endswith(scoring.EXPECTED_CHAT_FORMAT)


def test_chat_response_and_chunks_have_openai_shapes():
    openai_types = pytest.importorskip("openai.types.chat")
    reply = Reply("hello", "length", 5, 3)
    full = openai_types.ChatCompletion.model_validate(scoring.chat_response(reply, model="m"))
    assert full.choices[0].message.content == "hello" and full.usage.total_tokens == 8
    first = scoring.chat_chunk("c1", "m", role="assistant", content="")
    piece = scoring.chat_chunk("c1", "m", content="hel")
    last = scoring.chat_chunk("c1", "m", finish_reason="stop")
    usage = scoring.chat_chunk("c1", "m", usage=scoring.usage_of(reply))
    chunks = [openai_types.ChatCompletionChunk.model_validate(c) for c in (first, piece, last, usage)]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[1].choices[0].delta.content == "hel"
    assert chunks[2].choices[0].finish_reason == "stop" and chunks[2].choices[0].delta.content is None
    assert chunks[3].choices == [] and chunks[3].usage.completion_tokens == 3


def test_client_builders_round_trip_through_the_parsers():
    params = scoring.GenerationParams(temperature=0.3, top_p=0.8, do_sample=False, max_new_tokens=9)
    score = scoring.build_score_request([USER], params)
    parsed = scoring.parse_score_request(score)
    assert parsed.params == scoring.GenerationParams(9, 0.3, 0.8, False)
    chat = scoring.parse_chat_request(scoring.build_chat_request([USER], params, stream=True))
    assert chat.params.greedy and chat.params.max_new_tokens == 9 and chat.stream
    with pytest.raises(BadRequest):
        scoring.build_score_request([{"role": "user"}], params)


def test_schemas_accept_the_examples_and_the_notebook_file():
    jsonschema.validate(scoring.EXAMPLE_SCORE_REQUEST, scoring.SCORE_REQUEST_SCHEMA)
    jsonschema.validate(score_body([[USER, ASSISTANT]], max_new_tokens=200), scoring.SCORE_REQUEST_SCHEMA)
    jsonschema.validate(scoring.EXAMPLE_CHAT_REQUEST, scoring.CHAT_REQUEST_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"input_data": {"input_string": [USER]}, "extra": 1}, scoring.SCORE_REQUEST_SCHEMA)
    # the examples the error messages show are themselves accepted
    assert scoring.parse_score_request(json.loads(scoring.EXPECTED_SCORE_FORMAT))
    assert scoring.parse_chat_request(json.loads(scoring.EXPECTED_CHAT_FORMAT))


def test_error_message_reads_ours_azures_and_fastapis():
    assert scoring.error_message(scoring.error_body("bad")) == "bad"
    assert scoring.error_message({"message": "azure says"}) == "azure says"
    assert scoring.error_message({"detail": "Not Found"}) == "Not Found"
    assert scoring.error_message({"error": "plain"}) == "plain"
    assert scoring.error_message([1]) is None


def test_importing_the_contract_and_the_client_stays_light():
    code = (
        "import sys, azml_magics.scoring, azml_magics.backends.local.client, azml_magics.backends.local.endpoints;"
        "heavy = [m for m in ('torch', 'transformers', 'fastapi', 'uvicorn', 'mlflow', 'azure.ai.ml') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_score_reply_reads_usage_and_finish_reason_where_the_server_reports_them():
    """Current /score servers add finish_reason and usage; older ones answer the text alone, and then the
    Reply says None (a footer says "not reported"), never a made-up count."""
    reply = Reply("120 hours.", "length", prompt_tokens=12, completion_tokens=4)
    assert scoring.score_reply(scoring.score_response([reply], model="m")) == reply
    assert scoring.score_reply({"output": "hi"}) == Reply("hi", None, None, None)
    assert scoring.score_reply([{"0": "old"}]) == Reply("old", None, None, None)
    bad = {"output": "x", "finish_reason": 3, "usage": {"prompt_tokens": "7", "completion_tokens": True}}
    assert scoring.score_reply(bad) == Reply("x", None, None, None)
    assert scoring.build_chat_request([USER], GenerationParams(), stream=True)["stream_options"] == {"include_usage": True}
    assert "stream_options" not in scoring.build_chat_request([USER], GenerationParams())
