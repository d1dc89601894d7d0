"""`python -m decoding`: a one-minute tour of the decoders on a 5-word toy language.

The decoders never see a model, only a function from token sequences to next-token logits.
Here that function is a bigram table small enough to read, so you can check every number by
hand; `python -m minigpt generate` runs the same decoders on GPT-2.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from decoding import beam_sample, beam_search, exhaustive_tree_search, greedy_search, sample
from decoding.assisted import assisted_greedy_search

WORDS = ["<end>", "the", "dog", "cat", "sat"]
# P(next word | last word), one row per last word. From "the", "dog" is likelier than "cat",
# but nothing likely follows "dog", while "cat" is almost always followed by "sat".
BIGRAM = np.array(
    [
        [1.00, 0.00, 0.00, 0.00, 0.00],  # <end>
        [0.00, 0.00, 0.55, 0.45, 0.00],  # the -> dog | cat
        [0.34, 0.33, 0.00, 0.00, 0.33],  # dog -> <end> | the | sat, no clear favourite
        [0.05, 0.00, 0.00, 0.00, 0.95],  # cat -> sat
        [0.90, 0.10, 0.00, 0.00, 0.00],  # sat -> <end>
    ]
)


def next_token_logits(sequences: list[list[int]]) -> np.ndarray:
    """The seam every decoder calls: [len(sequences), vocab] logits, one row per sequence."""
    with np.errstate(divide="ignore"):  # log(0) = -inf: an impossible word
        return np.log(BIGRAM[[seq[-1] for seq in sequences]]).astype(np.float32)


def draft_logits(sequences: list[list[int]]) -> np.ndarray:
    """A cheaper, vaguer model for assisted decoding: the table blurred toward uniform, so its
    guesses are usually, not always, the model's own."""
    blurred = 0.6 * BIGRAM + 0.4 / len(WORDS)
    return np.log(blurred[[seq[-1] for seq in sequences]]).astype(np.float32)


def words(ids: list[int]) -> str:
    return " ".join(WORDS[i] for i in ids)


def main() -> None:
    prompt, eos = [1], 0  # "the"; stop at "<end>"
    print("decoding: every decoder on a 5-word toy language (a bigram table, no model)\n")
    print("words:", ", ".join(f"{i}={w}" for i, w in enumerate(WORDS)), f"; prompt {prompt}\n")
    runs = [
        ("greedy_search", greedy_search(next_token_logits, prompt, max_new_tokens=3,
                                        eos_token_id=eos)[0].best),
        ("beam_search, 2 beams", beam_search(next_token_logits, prompt, num_beams=2,
                                             max_new_tokens=3, eos_token_id=eos)[0].best),
        ("sample, seed 0", sample(next_token_logits, prompt, rng=np.random.default_rng(0),
                                  max_new_tokens=3, eos_token_id=eos)[0].best),
        ("beam_sample, seed 0", beam_sample(next_token_logits, prompt, num_beams=2,
                                            rng=np.random.default_rng(0), max_new_tokens=3,
                                            eos_token_id=eos)[0].best),
    ]  # fmt: skip
    for title, best in runs:
        print(f"{title:<22} {words(best.ids):<22} log-prob {best.logprob:.3f}")
    tree = exhaustive_tree_search(next_token_logits, prompt, branching=2, depth=3, eos_token_id=eos)
    print(f"{'exhaustive tree, b=2':<22} {words(tree.best.ids):<22} ({tree.expansions} expansions)")
    assisted = assisted_greedy_search(
        next_token_logits, prompt, max_new_tokens=3, eos_token_id=eos, assistant_model=draft_logits
    )[0]
    calls, kept = assisted.assistant.rounds, f"{assisted.assistant.accepted} of "
    kept += f"{assisted.assistant.drafted} guesses kept"
    print(f"{'assisted greedy':<22} {words(assisted.best.ids):<22} (model calls: {calls}, {kept})")
    print(
        "\nGreedy takes 'dog' (0.55) and is stuck; beam search keeps 'cat' (0.45) alive and wins."
        "\nAssisted greedy is greedy search, in fewer model calls: a cheap draft guesses ahead."
        "\nRead decoding/greedy.py, beam.py and sampling.py; python -m minigpt demo runs GPT-2."
    )


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # `python -m decoding | head`: the reader left early, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
