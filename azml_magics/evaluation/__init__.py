"""Evaluate and compare: does the fine-tuned model beat its base on held-out rows?

:func:`evaluate` (behind ``Session.evaluate`` and ``%azml_eval``) resolves the candidates
(:mod:`.candidates`), generates their replies to the same prompts (:mod:`.generation`), scores them
with maintained libraries (:mod:`.metrics`), optionally asks a pairwise judge (:mod:`.judge`), and
returns an :class:`EvaluationResult` that is displayed and logged to MLflow (:mod:`.results`). It
gets the session as an argument and uses only its public methods.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from .. import defaults
from ..backends.base import TRACKING
from ..errors import AzmlError, NotFound, SpecError
from ..files import iter_jsonl
from ..scoring import GenerationParams, check_messages
from ..waits import wait
from .judge import DEFAULT_PROMPT as DEFAULT_JUDGE_PROMPT
from .judge import Judge, JudgeUnreachable
from .results import SORTS, EvalRow, EvaluationResult

__all__ = ["evaluate", "EvaluationResult", "Judge", "DEFAULT_JUDGE_PROMPT", "SORTS"]
GEN_SPLIT, LOSS_SPLIT = "test_gen", "test_sft"


def data_files(data: str | Path | None, loss_data: str | Path | None = None) -> tuple[Path, Path | None]:
    """(rows to generate for, rows for the loss): a folder gives its test_gen / test_sft files."""
    target = Path(data or defaults.DATA_FOLDER).expanduser()
    if target.is_dir():
        gen, loss = target / f"{GEN_SPLIT}.jsonl", target / f"{LOSS_SPLIT}.jsonl"
    else:
        gen, loss = target, target.with_name(f"{LOSS_SPLIT}.jsonl")
    if not gen.is_file():
        raise NotFound(f"no evaluation data at {gen.resolve()}; prepare it (%azml_data prepare) or pass --data FILE.")
    if loss_data is not None:
        loss = Path(loss_data).expanduser()
        if not loss.is_file():
            raise NotFound(f"no loss data at {loss.resolve()}; pass a test_sft JSON-lines file.")
    return gen, (loss if loss.is_file() else None)


def read_rows(path: Path, n: int | None, seed: int) -> tuple[list[EvalRow], int]:
    """``n`` rows picked with ``seed`` (all when n is None): the conversation up to its first
    assistant reply is the prompt, that reply the reference. Returns the rows and how many were unusable."""
    rows, skipped = [], 0
    for i, raw in enumerate(iter_jsonl(path)):
        try:
            messages = check_messages(raw.get("messages") if isinstance(raw, dict) else None)
        except AzmlError:
            skipped += 1
            continue
        first = next((k for k, m in enumerate(messages) if m["role"] == "assistant"), None)
        if not first or not any(m["role"] == "user" for m in messages[:first]) or not messages[first]["content"].strip():
            skipped += 1
            continue
        rows.append(EvalRow(i, messages[:first], messages[first]["content"], conversation=messages))
    if not rows:
        raise SpecError(f"no row of {path} has a user turn followed by an assistant reply; check the file's 'messages'.")
    if n is not None and n < len(rows):
        rows = [rows[k] for k in sorted(random.Random(seed).sample(range(len(rows)), n))]
    return rows, skipped


def make_judge(session, judge, prompt: str | None, model: str | None) -> Judge | None:
    """A Judge from an endpoint of this workspace (``endpoint:NAME`` or its name) or an OpenAI-style base URL
    (key from AZML_JUDGE_KEY or OPENAI_API_KEY); the prompt is checked before anything is generated."""
    import os

    from .judge import check_prompt

    if judge is None or isinstance(judge, Judge):
        if judge is not None and prompt:
            judge.prompt = prompt
        return judge if judge is None else _checked(judge)
    text = str(judge)
    if text.startswith(("http://", "https://")):
        key = os.environ.get("AZML_JUDGE_KEY") or os.environ.get("OPENAI_API_KEY")
        found = Judge(text, key=key)
    else:
        name = text.partition(":")[2] if text.startswith("endpoint:") else text
        ep = session.require().get_endpoint(name)
        if not ep.openai_base_url:
            raise SpecError(f"endpoint {name} has no OpenAI chat route to judge with; pass the judge's base URL.")
        backend = session.require()
        from ..backends.base import ENDPOINT_KEY

        found = Judge(ep.openai_base_url, key=backend.endpoint_key(name) if ENDPOINT_KEY in backend.capabilities else None)
    found.prompt = check_prompt(prompt or DEFAULT_JUDGE_PROMPT)
    found.model = model or found.model
    return found


def _checked(judge: Judge) -> Judge:
    from .judge import check_prompt

    check_prompt(judge.prompt)
    return judge


def evaluate(session, candidates: list[str] | None = None, *, data=None, loss_data=None, n: int | None = 20,
             seed: int = 0, params: GenerationParams | None = None, batch_size: int = 8, loss: bool = True,
             judge=None, judge_prompt: str | None = None, judge_model: str | None = None, log: bool = True,
             progress: bool = True, examples: int = 5, sort: str = "diff") -> EvaluationResult:
    """Compare ``candidates`` (see :mod:`.candidates`; default base, then the last registered model).

    ``data``: a folder (its test_gen.jsonl; the loss on its test_sft.jsonl) or a file; ``n`` rows picked
    with ``seed``; ``params`` the generation settings (default greedy, 128 new tokens); ``judge`` an
    endpoint name or an OpenAI-compatible base URL. Everything is checked before anything is generated.
    Ctrl-C stops generating and keeps what is done.
    """
    from . import candidates as candidate_refs
    from . import generation, metrics
    from .judge import compare

    metrics.require_libraries()
    if n is not None and n < 1:
        raise SpecError(f"-n must be at least 1 row (got {n}).")
    if batch_size < 1:
        raise SpecError(f"--batch-size must be at least 1 (got {batch_size}).")
    if sort not in SORTS:
        raise SpecError(f"--sort must be one of {', '.join(SORTS)} (got {sort}).")
    params = params or GenerationParams(max_new_tokens=128, temperature=0.0, do_sample=False)
    chosen = candidate_refs.resolve(session, candidates)
    gen_file, loss_file = data_files(data, loss_data)
    rows, skipped = read_rows(gen_file, n, seed)
    the_judge = make_judge(session, judge, judge_prompt, judge_model)
    notes = cost_notes(session, chosen)
    if skipped:
        notes.append(f"{skipped} rows of {gen_file.name} skipped: no user turn followed by an assistant reply.")

    prompts = [r.prompt for r in rows]
    done: dict[str, generation.Generation] = {}
    for c in chosen:
        if c.folder:
            g = generation.in_process(c.folder, prompts, params, batch_size=batch_size, seed=seed, label=c.label,
                                      progress=progress)
        else:
            g = generation.through_endpoint(lambda req, name=c.endpoint: session.invoke(name, req), prompts, params,
                                            batch_size=batch_size, label=c.label, progress=progress)
        done[c.label] = g
        if g.interrupted:
            break
    kept = min((len(g.replies) for g in done.values()), default=0) if len(done) == len(chosen) else 0
    if any(g.interrupted for g in done.values()):
        reached = ", ".join(done)
        notes.append(f"interrupted (Ctrl-C): compared on the {kept} rows every candidate answered "
                     f"(generated for: {reached}).")
    rows = rows[:kept]
    table: dict[str, dict[str, float]] = {}
    references = [r.reference for r in rows]
    for label, g in done.items():
        replies = g.replies[:kept]
        if not replies:
            continue
        for r, reply, score, sb in zip(rows, replies, metrics.rouge_l([x.text for x in replies], references),
                                       metrics.sentence_bleu([x.text for x in replies], references)):
            r.replies[label], r.finish[label], r.rougeL[label], r.bleu[label] = reply.text, reply.finish_reason, score, sb
        share = g.wall_s * len(replies) / max(len(g.replies), 1)
        for metric, value in metrics.summary(replies, references, wall_s=share).items():
            table.setdefault(metric, {})[label] = value

    if loss and loss_file is not None and rows:
        loss_rows = [r.conversation for r in read_rows(loss_file, n, seed)[0]]
        for c in chosen:
            if c.folder:
                try:
                    for metric, value in metrics.conversation_loss(c.folder, loss_rows).items():
                        table.setdefault(metric, {})[c.label] = value
                except KeyboardInterrupt:
                    notes.append("interrupted (Ctrl-C) while computing the loss: loss left out.")
                    break
        notes.append(f"loss and perplexity: per reply token on {len(loss_rows)} rows of {loss_file.name}.")

    labels = [c.label for c in chosen]
    result = EvaluationResult(labels, str(gen_file), rows, table, notes=notes, examples_shown=examples, sort=sort,
                              settings={"data": str(gen_file), "rows": len(rows), "seed": seed,
                                        "max_new_tokens": params.max_new_tokens, "temperature": params.temperature,
                                        "top_p": params.top_p, "do_sample": params.do_sample,
                                        "candidates": ", ".join(labels)})
    if the_judge is not None and rows:
        first, last = labels[0], labels[-1]
        try:
            with wait(f"Judging {first} against {last} (both orders)", total=len(rows), unit="rows",
                      show_after=None if progress else float("inf")) as judging:
                result.judge = compare(the_judge, [r.question for r in rows], [r.replies[first] for r in rows],
                                       [r.replies[last] for r in rows], names=(first, last), progress=judging.advance)
        except JudgeUnreachable as exc:
            notes.append(f"{exc}: no judge verdicts; the other metrics are kept.")
        except KeyboardInterrupt:
            notes.append("interrupted (Ctrl-C) while judging: no judge verdicts; the other metrics are kept.")
    if log and rows:
        backend = session.require()
        if TRACKING in backend.capabilities:
            result.run_id = _log(result, backend.tracking(), chosen, session)
        else:
            notes.append(f"not logged to MLflow: the {backend.name} backend has no MLflow store. "
                         "The table and examples are in this output.")
    return result


def cost_notes(session, chosen) -> list[str]:
    """What the endpoints compared through bill (cloud VMs only: instance type x count while they exist)."""
    notes = []
    for c in chosen:
        if c.endpoint:
            ep = session.require().get_endpoint(c.endpoint)
            if (ep.instance_type or "").startswith("Standard_"):
                notes.append(f"endpoint {ep.name} bills {ep.instance_count} x {ep.instance_type} for every hour it "
                             f"exists, used or not; delete it with %azml_delete {ep.name} (or --all) when done.")
    return notes


def _log(result: EvaluationResult, tracking, chosen, session) -> str:
    from .results import log_to_mlflow

    table_file = None
    if not tracking.artifacts:  # the per-row table stays on this machine, and the output says where
        table_file = Path(session.home) / "evaluations" / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    run_id = log_to_mlflow(result, tracking, models={c.label: c.model for c in chosen if c.model is not None},
                           jobs={c.label: c.job for c in chosen if c.job}, table_file=table_file)
    result.notes.append(f"logged to {tracking.where}.")
    if table_file is not None:
        result.notes.append(f"the per-row table is not in that run ({tracking.no_artifacts}); it is saved at "
                            f"{table_file}.")
    return run_id
