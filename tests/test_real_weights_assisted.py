"""distilgpt2 drafting for gpt2, on the published weights: the seed post's prompt, with the
acceptance rate printed. Runs only where both checkpoints are on disk (`minigpt download gpt2`
and `minigpt download distilgpt2`) and is reported as skipped otherwise.
"""

from __future__ import annotations

import pytest

import minigpt
from decoding import greedy_search
from decoding.assisted import assisted_greedy_search
from minigpt.errors import MiniGPTError
from minigpt.hub import resolve_model_dir


def published(name: str):
    try:
        return resolve_model_dir(name)
    except MiniGPTError:
        return None


GPT2, DISTILGPT2 = published("gpt2"), published("distilgpt2")
pytestmark = [
    pytest.mark.real_weights,
    pytest.mark.skipif(
        GPT2 is None or DISTILGPT2 is None,
        reason="needs the published gpt2 and distilgpt2 weights: "
        "minigpt download gpt2 && minigpt download distilgpt2",
    ),
]


@pytest.mark.parametrize("num_assistant_tokens", [3, 5, 20])
def test_distilgpt2_drafts_for_gpt2_without_changing_a_token(num_assistant_tokens):
    target = minigpt.NextTokenLogits(minigpt.load(GPT2))
    draft = minigpt.NextTokenLogits(minigpt.load(DISTILGPT2))
    prompt = minigpt.load_tokenizer(GPT2).encode("I have a dream")
    plain = greedy_search(target, prompt, max_new_tokens=40, eos_token_id=None)[0]
    (assisted,) = assisted_greedy_search(
        target, prompt, max_new_tokens=40, eos_token_id=None, assistant_model=draft,
        num_assistant_tokens=num_assistant_tokens, num_assistant_tokens_schedule="constant",
    )  # fmt: skip
    stats = assisted.assistant
    print(
        f"gamma {num_assistant_tokens}: alpha {stats.acceptance_rate:.2f} "
        f"({stats.accepted}/{stats.drafted}), {40 / stats.rounds:.2f} tokens per target call"
    )
    assert assisted.best.ids == plain.best.ids
    assert plain.best.ids[4:9] == [286, 852, 257, 6253, 13]  # " of being a doctor."
