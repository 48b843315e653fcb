"""The pairwise judge: a real local endpoint as the judge, a real HTTP judge with a known preference
(so position swapping is seen to work), and an unreachable judge that leaves the other metrics."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from azml_magics.scoring import GenerationParams
from tests.paths import SAMPLE

pytestmark = pytest.mark.slow
SHORT = GenerationParams(max_new_tokens=24, temperature=0.0, do_sample=False)


class _Judge(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions judge: 'first' always answers A; 'longer' picks the longer answer."""

    mode = "longer"
    seen: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        type(self).seen.append(prompt)
        a = prompt.split("Answer A:\n", 1)[1].split("\n\nAnswer B:\n", 1)[0]
        b = prompt.split("Answer B:\n", 1)[1].split("\n\nWhich answer", 1)[0]
        word = "A" if self.mode == "first" else ("A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie")
        reply = {"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
                                                           "message": {"role": "assistant", "content": word}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Judge.seen = []
    yield server, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_position_swapping_defeats_a_first_position_bias_and_keeps_a_real_preference(tuned, judge_server):
    s, _ = tuned
    _, url = judge_server
    _Judge.mode = "first"
    biased = s.evaluate(data=SAMPLE, n=4, params=SHORT, loss=False, log=False, progress=False, judge=url)
    assert biased.judge.ties == 4 and biased.judge.win_rate is None and len(_Judge.seen) == 8
    first_row = _Judge.seen[:2]  # the same pair in both orders
    assert first_row[0] != first_row[1]

    _Judge.mode, _Judge.seen = "longer", []
    result = s.evaluate(data=SAMPLE, n=6, params=SHORT, loss=False, log=False, progress=False, judge=url)
    base, tuned_label = result.candidates
    longer = sum(len(r.replies[tuned_label]) > len(r.replies[base]) for r in result.rows)
    shorter = sum(len(r.replies[tuned_label]) < len(r.replies[base]) for r in result.rows)
    assert (result.judge.wins, result.judge.losses) == (longer, shorter) and longer > 0
    low, high = result.judge.interval
    assert low <= result.judge.win_rate <= high and 0 <= low < high <= 1
    assert "win rate" in str(result) and "judge prompt" in result.html()


def test_a_changed_prompt_is_used_and_a_prompt_without_its_fields_is_refused(tuned, judge_server):
    s, _ = tuned
    _, url = judge_server
    _Judge.mode, _Judge.seen = "longer", []
    prompt = "Q: {question}\n\nAnswer A:\n{answer_a}\n\nAnswer B:\n{answer_b}\n\nWhich answer wins? A, B or tie."
    result = s.evaluate(data=SAMPLE, n=2, params=SHORT, loss=False, log=False, progress=False, judge=url,
                        judge_prompt=prompt)
    assert all(p.startswith("Q: ") for p in _Judge.seen) and result.judge.prompt == prompt
    from azml_magics.errors import SpecError

    with pytest.raises(SpecError, match=r"lacks \{answer_b\}"):
        s.evaluate(data=SAMPLE, n=2, judge=url, judge_prompt="{question} {answer_a}", progress=False)


def test_a_local_endpoint_as_judge_and_the_base_deployed_like_the_fine_tuned(tuned):
    s, _ = tuned
    base_ep = s.deploy({"model": "base", "endpoint": "eval-judge"})
    assert base_ep.model == "azml-tiny-phi3:base"
    result = s.evaluate(data=SAMPLE, n=3, params=SHORT, loss=False, log=False, progress=False, judge="endpoint:eval-judge")
    j = result.judge
    assert j.wins + j.losses + j.ties + j.unreadable == 3 and len(j.verdicts) == 3
    # and it is a candidate too: the base through its endpoint against the fine-tuned in-process
    both = s.evaluate(["endpoint:eval-judge", "last"], data=SAMPLE, n=3, params=SHORT, loss=False, log=False,
                      progress=False)
    assert both.candidates[0] == "endpoint eval-judge" and all(r.replies for r in both.rows)
    s.delete("eval-judge")


def test_an_unreachable_judge_is_one_line_and_the_other_metrics_stay(tuned):
    from azml_magics.backends.local.endpoints import free_port

    s, _ = tuned
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = s.evaluate(data=SAMPLE, n=3, params=SHORT, loss=False, log=False, progress=False, judge=url)
    assert result.judge is None
    line = [n for n in result.notes if "unreachable" in n]
    assert len(line) == 1 and "\n" not in line[0] and "other metrics are kept" in line[0]
    assert set(result.metrics["rougeL"]) == set(result.candidates)
