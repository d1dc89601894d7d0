"""Produce every table of docs/scores.md by running minigpt's decoders on the bundled model.

    python docs/build_scores.py           # rewrite the generated blocks of docs/scores.md
    python docs/build_scores.py --check   # exit 1 if the page differs from a fresh run

The prose is written by hand. Each block between `<!-- begin NAME -->` and `<!-- end NAME -->`
is the output of `block_NAME` here (dashes in the page are underscores in the function name).
Every relation the page states is also asserted here while the tables are built, so the page
cannot show numbers that contradict it.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import minigpt
from decoding import beam_sample, beam_search, greedy_search
from decoding.render.dot import show_token
from decoding.results import Decoded, Hypothesis
from decoding.transition_scores import beam_indices_array, transition_scores_of
from minigpt.defaults import default_model_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))  # docs/, for page_numbers
from page_numbers import same_up_to_last_digit  # noqa: E402

DOC = Path(__file__).resolve().parent / "scores.md"
PROMPT = "I have a dream"
NEW_TOKENS = 6
BLOCK = re.compile(
    r"(<!-- begin (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end (?P=name) -->)", re.S
)


@dataclass
class Context:
    model_dir: Path
    model: minigpt.GPT2
    tokenizer: object
    prompt: list[int]

    def logits(self):
        return minigpt.NextTokenLogits(self.model)

    def text(self, ids: list[int]) -> str:
        return "`" + show_token(self.tokenizer.decode(ids)) + "`"

    @property
    def eos(self) -> int:
        return self.model.config.eos_token_id


def load_context() -> Context:
    model_dir = default_model_dir()
    tokenizer = minigpt.load_tokenizer(model_dir)
    return Context(model_dir, minigpt.load(model_dir), tokenizer, tokenizer.encode(PROMPT))


# ---------------------------------------------------------------------------- small helpers


def float32_sum(values: list[float]) -> float:
    """Left to right in float32: how HF's running beam score adds them up."""
    total = np.float32(0.0)
    for v in values:
        total = np.float32(total + np.float32(v))
    return float(total)


def penalised(total: float, n: int, length_penalty: float) -> float:
    return float(np.float32(total) / np.float32(n**length_penalty))


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def f4(x: float) -> str:
    return f"{x:.4f}"


def check_beam_relation(h: Hypothesis, length_penalty: float) -> None:
    """The page's claim: score = float32 sum of transition scores / n ** length_penalty."""
    n = len(h.new_ids)
    assert penalised(float32_sum(h.transition_scores), n, length_penalty) == h.score, h


def beam(ctx: Context, **kwargs) -> Decoded:
    options = {"num_beams": 4, "num_return_sequences": 3, "max_new_tokens": NEW_TOKENS,
               "eos_token_id": ctx.eos, "output_scores": True, **kwargs}  # fmt: skip
    (decoded,) = beam_search(ctx.logits(), ctx.prompt, **options)
    return decoded


# ----------------------------------------------------------------------------------- blocks


def block_setup(ctx: Context) -> str:
    c = ctx.model.config
    return (
        f"```text\nmodel:  {ctx.model_dir.name}: {c.n_layer} layers, {c.n_embd} wide, "
        f"vocabulary {c.vocab_size}, EOS {ctx.eos}\n"
        f"prompt: {PROMPT!r} -> {ctx.prompt}\n```\n"
    )


def block_beam_sum(ctx: Context) -> str:
    """Plain beam search: the transition scores add up to sequences_scores * n."""
    decoded = beam(ctx, length_penalty=1.0)
    rows = []
    for h in decoded.hypotheses:
        check_beam_relation(h, 1.0)
        total = float32_sum(h.transition_scores)
        full = len(h.ids)
        rows.append([ctx.text(h.new_ids), " ".join(f"{x:.3f}" for x in h.transition_scores),
                     f4(total), len(h.new_ids), f4(total / len(h.new_ids)), f4(h.score),
                     f4(total / full)])  # fmt: skip
    header = ["new text", "transition scores", "sum", "n", "sum / n", "score",
              "sum / (prompt + n)"]  # fmt: skip
    return table(header, rows)


def block_beam_penalties(ctx: Context) -> str:
    """length_penalty 2 and repetition_penalty 1.5: processed vs raw sums."""
    decoded = beam(ctx, length_penalty=2.0, repetition_penalty=1.5)
    rows = []
    for h in decoded.hypotheses:
        check_beam_relation(h, 2.0)
        n = len(h.new_ids)
        total = float32_sum(h.transition_scores)
        assert sum(h.token_logprobs) == h.logprob  # added in the same order as the decoder
        rows.append([ctx.text(h.new_ids), n, f4(total), f4(h.logprob), f4(total / n**2),
                     f4(h.score), f4(h.logprob / n**2)])  # fmt: skip
    header = ["new text", "n", "sum of transition scores", "logprob (sum of token_logprobs)",
              "transition sum / n²", "score", "logprob / n²"]  # fmt: skip
    return table(header, rows)


def block_beam_tokens(ctx: Context) -> str:
    """The best hypothesis of the block above, token by token."""
    decoded = beam(ctx, length_penalty=2.0, repetition_penalty=1.5)
    h = decoded.best
    normalized = transition_scores_of(decoded, normalize_logits=True)[0]
    rows = []
    for t, token in enumerate(h.new_ids):
        rows.append([t + 1, ctx.text([token]), h.beam_indices[t], f4(h.token_logprobs[t]),
                     f4(h.transition_scores[t]), f4(float(normalized[t]))])  # fmt: skip
    total = float32_sum([float(x) for x in normalized[: len(h.new_ids)]])
    rows.append(["sum", "", "", f4(h.logprob), f4(float32_sum(h.transition_scores)), f4(total)])
    header = ["step", "token", "beam index", "token_logprob (raw)", "transition score",
              "normalize_logits=True"]  # fmt: skip
    return table(header, rows)


def block_greedy_tokens(ctx: Context) -> str:
    """Greedy search with repetition_penalty 1.5: its scores are processed logits."""
    (decoded,) = greedy_search(ctx.logits(), ctx.prompt, max_new_tokens=NEW_TOKENS,
                               eos_token_id=ctx.eos, repetition_penalty=1.5,
                               output_scores=True, output_logits=True)  # fmt: skip
    h = decoded.best
    normalized = transition_scores_of(decoded, normalize_logits=True)[0]
    rows = []
    for t, token in enumerate(h.new_ids):
        raw = float(decoded.logits[t][0, token])
        assert h.transition_scores[t] == float(decoded.scores[t][0, token])
        rows.append([t + 1, ctx.text([token]), f4(raw), f4(h.transition_scores[t]),
                     f4(float(normalized[t])), f4(h.token_logprobs[t])])  # fmt: skip
    header = ["step", "token", "raw logit", "transition score (processed logit)",
              "normalize_logits=True", "token_logprob (raw)"]  # fmt: skip
    return table(header, rows)


def padding_run(ctx: Context) -> Decoded:
    """ "." as the EOS, length_penalty 0.5: one hypothesis ends after 1 token, two run on."""
    period = ctx.tokenizer.encode(".")[0]
    return beam(ctx, num_beams=3, max_new_tokens=8, eos_token_id=period, length_penalty=0.5)


def block_padding(ctx: Context) -> str:
    decoded = padding_run(ctx)
    full = transition_scores_of(decoded)
    slots = beam_indices_array(decoded)
    rows = []
    for n_, h in enumerate(decoded.hypotheses):
        check_beam_relation(h, 0.5)
        n = int((slots[n_] >= 0).sum())
        assert n == len(h.new_ids)
        width = full.shape[1]
        rows.append([ctx.text(h.new_ids), " ".join(f"{x:.3f}" for x in full[n_]),
                     " ".join(str(int(b)) for b in slots[n_]), n,
                     f4(penalised(float32_sum(full[n_].tolist()), n, 0.5)), f4(h.score),
                     f4(float32_sum(full[n_].tolist()) / width**0.5)])  # fmt: skip
    header = ["new text", "compute_transition_scores row", "beam_indices row",
              "n (beam_indices >= 0)", "sum / n^0.5", "score", "sum / width^0.5"]  # fmt: skip
    return table(header, rows)


def block_beam_sample(ctx: Context) -> str:
    temperature = 0.5
    (decoded,) = beam_sample(ctx.logits(), ctx.prompt, rng=np.random.default_rng(1),
                             num_beams=4, num_return_sequences=3, max_new_tokens=NEW_TOKENS,
                             eos_token_id=ctx.eos, temperature=temperature)  # fmt: skip
    rows = []
    for h in decoded.hypotheses:
        check_beam_relation(h, 1.0)
        total = float32_sum(h.transition_scores)
        n = len(h.new_ids)
        rows.append([ctx.text(h.new_ids), n, f4(total), f4(total * temperature), f4(h.logprob),
                     f4(h.score), f4(h.logprob / n)])  # fmt: skip
    header = ["new text", "n", "sum of transition scores", "T × that sum", "logprob", "score",
              "logprob / n"]  # fmt: skip
    return table(header, rows)


# ------------------------------------------------------------------------------- the page


def fresh_page(ctx: Context, doc: str) -> str:
    def fill(match: re.Match) -> str:
        block = globals()["block_" + match["name"].replace("-", "_")]
        return match[1] + block(ctx) + match[4]

    return BLOCK.sub(fill, doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args(argv)
    ctx = load_context()
    doc = DOC.read_text(encoding="utf-8")
    fresh = fresh_page(ctx, doc)
    if args.check:
        if not same_up_to_last_digit(doc, fresh):  # another CPU may round a last digit apart
            print(f"stale: {DOC} (run python docs/build_scores.py)", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
