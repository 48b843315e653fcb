"""Write the bundled sample chat dataset (ultrachat_200k schema) from hand-written templates.

Why: tests and the local quickstart need a dataset that ships with the package, needs no network,
and that a tiny model learns within minutes on CPU. So the vocabulary is small and every answer
follows a fixed pattern (capitals, colours, arithmetic, unit conversions, greetings, counting).
Nothing here is copied from any dataset. Deterministic: running it again writes identical bytes.

Run: ``python -m azml_magics.sample_data.make_sample [out_dir]``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

SPLIT_SIZES = {"train_sft": 260, "test_sft": 52, "train_gen": 120, "test_gen": 48}
SEED = 20240601

CAPITALS = {
    "France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Greece": "Athens",
    "Portugal": "Lisbon", "Austria": "Vienna", "Poland": "Warsaw", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen", "Ireland": "Dublin",
    "Egypt": "Cairo", "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Kenya": "Nairobi",
    "Peru": "Lima", "Chile": "Santiago", "Canada": "Ottawa", "Mexico": "Mexico City",
    "Brazil": "Brasilia", "Argentina": "Buenos Aires", "Australia": "Canberra", "Turkey": "Ankara",
    "Hungary": "Budapest", "Belgium": "Brussels", "Cuba": "Havana", "Thailand": "Bangkok",
}
COLOURS = {
    "a banana": "yellow", "grass": "green", "the sky on a clear day": "blue", "snow": "white",
    "coal": "black", "a ripe tomato": "red", "an orange": "orange", "a lemon": "yellow",
    "a carrot": "orange", "milk": "white", "a lime": "green", "a strawberry": "red",
    "a plum": "purple", "chocolate": "brown", "a cherry": "red", "an eggplant": "purple",
    "a frog": "green", "the sea": "blue", "a crow": "black", "a pumpkin": "orange",
}
UNITS = [  # (from, to, factor)
    ("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("kilograms", "grams", 1000),
    ("hours", "minutes", 60), ("minutes", "seconds", 60), ("litres", "millilitres", 1000),
    ("days", "hours", 24), ("weeks", "days", 7),
]
GREETINGS = [
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi there.", "Hi! How can I help you today?"),
    ("Good morning!", "Good morning! How can I help you today?"),
    ("Good evening.", "Good evening! How can I help you today?"),
    ("Hey, are you there?", "Yes, I am here. How can I help you today?"),
    ("Thank you!", "You are welcome! Is there anything else I can help with?"),
    ("Thanks a lot.", "You are welcome! Is there anything else I can help with?"),
    ("Goodbye!", "Goodbye! Have a nice day."),
    ("Bye for now.", "Goodbye! Have a nice day."),
]
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def _lookup(rng: random.Random, table: dict[str, str], asks: list[str], answer: str, follow: str,
            p_follow: float) -> list[tuple[str, str]]:
    """A question about one key of ``table``, sometimes followed by "and this one?"."""
    key = rng.choice(sorted(table))
    turns = [(rng.choice(asks).format(k=key), answer.format(k=key, K=key[0].upper() + key[1:], v=table[key]))]
    if rng.random() < p_follow:
        other = rng.choice(sorted(table))
        turns.append((follow.format(k=other),
                      answer.format(k=other, K=other[0].upper() + other[1:], v=table[other])))
    return turns


def _capital(rng: random.Random) -> list[tuple[str, str]]:
    asks = ["What is the capital of {k}?", "Which city is the capital of {k}?", "Tell me the capital of {k}."]
    return _lookup(rng, CAPITALS, asks, "The capital of {k} is {v}.", "And {k}?", 0.3)


def _colour(rng: random.Random) -> list[tuple[str, str]]:
    asks = ["What colour is {k}?", "Which colour is {k}?"]
    return _lookup(rng, COLOURS, asks, "{K} is {v}.", "What about {k}?", 0.25)


def _arithmetic(rng: random.Random) -> list[tuple[str, str]]:
    a, b = rng.randint(1, 20), rng.randint(1, 20)
    if rng.random() < 0.5:
        turns = [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.")]
        if rng.random() < 0.3:
            c = rng.randint(1, 10)
            turns.append((f"And if I add {c} more?", f"{a + b} plus {c} is {a + b + c}."))
        return turns
    a, b = max(a, b), min(a, b)
    return [(f"What is {a} minus {b}?", f"{a} minus {b} is {a - b}.")]


def _units(rng: random.Random) -> list[tuple[str, str]]:
    src, dst, factor = rng.choice(UNITS)
    n = rng.randint(1, 12)
    ask = rng.choice(["How many {d} are in {n} {s}?", "Convert {n} {s} to {d}."]).format(d=dst, n=n, s=src)
    return [(ask, f"{n} {src} is {n * factor} {dst}.")]


def _greeting(rng: random.Random) -> list[tuple[str, str]]:
    turns = [rng.choice(GREETINGS[:5])]
    if rng.random() < 0.5:
        turns.append(rng.choice(_capital(rng) + _colour(rng)))
        turns.append(rng.choice(GREETINGS[5:]))
    return turns


def _counting(rng: random.Random) -> list[tuple[str, str]]:
    n = rng.randint(3, 10)
    if rng.random() < 0.5:
        return [(f"Count from one to {WORDS[n - 1]}.", ", ".join(WORDS[:n]) + ".")]
    n = rng.randint(1, 9)
    return [(f"What number comes after {WORDS[n - 1]}?", f"The number after {WORDS[n - 1]} is {WORDS[n]}.")]


TOPICS = [_capital, _colour, _arithmetic, _units, _greeting, _counting]


def conversations(seed: int = SEED):
    """Yield distinct conversations (first user prompt unique) forever, deterministically."""
    rng = random.Random(seed)
    seen: set[str] = set()
    while True:
        turns = rng.choice(TOPICS)(rng)
        # a unique first prompt keeps prompt_ids unique across all splits (no train/test leakage)
        key = json.dumps(turns)
        if key in seen:
            continue
        seen.add(key)
        yield turns


def make_row(turns: list[tuple[str, str]]) -> dict:
    messages = []
    for user, assistant in turns:
        messages.append({"content": user, "role": "user"})
        messages.append({"content": assistant, "role": "assistant"})
    prompt = turns[0][0]
    # ultrachat's prompt_id is the sha256 of the prompt; ours adds the whole conversation so that
    # two conversations that open alike keep distinct ids
    pid = hashlib.sha256(json.dumps(turns).encode()).hexdigest()
    return {"prompt": prompt, "prompt_id": pid, "messages": messages}


def write_sample(out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    source = conversations()
    files = {}
    for split, n in SPLIT_SIZES.items():
        path = out_dir / f"{split}.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for _ in range(n):
                fh.write(json.dumps(make_row(next(source)), ensure_ascii=False) + "\n")
        files[split] = path
    return files


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for split, path in write_sample(target).items():
        print(split, path)
