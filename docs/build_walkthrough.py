"""Produce every output and picture shown in docs/walkthrough.md, on the bundled default model.

    python docs/build_walkthrough.py           # rewrite the generated blocks and docs/img/
    python docs/build_walkthrough.py --check   # exit 1 if the doc differs from a fresh run

The prose of walkthrough.md is written by hand. Each block between
`<!-- begin NAME -->` and `<!-- end NAME -->` is generated here by `block_NAME` (dashes in the
doc are underscores in the function name), by running the same CLI and decoders a reader runs.
Pictures: docs/img/NAME.dot is always written (and compared by --check); NAME.svg is rendered
from it when Graphviz's `dot` is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import minigpt
from decoding import (
    apply_temperature,
    beam_search,
    exhaustive_tree_search,
    greedy_search,
    sample,
    softmax,
    top_p_filter,
)
from decoding.render import bars_dot, dot_available, save_picture, tree_dot
from decoding.render.dot import show_token
from minigpt import cli
from minigpt.cli.generate import CountingLogits
from minigpt.defaults import default_model_dir, is_random_demo

sys.path.insert(0, str(Path(__file__).resolve().parent))  # docs/, for page_numbers
from page_numbers import same_up_to_last_digit  # noqa: E402

DOCS = Path(__file__).resolve().parent
DOC = DOCS / "walkthrough.md"
IMG = DOCS / "img"
# The seed post's prompt. On the bundled model it happens to show greedy search and beam
# search parting ways within 5 tokens, which is the point of section 2.
PROMPT = "I have a dream"
# A context after which the bundled model hesitates between many words (names, adjectives), so
# that a nucleus holds enough tokens to show the post's sampler scrambling their weights.
HESITANT_PROMPT = "Once upon a time, there was a"
NEW_TOKENS = 5  # the seed post generates 5 tokens with every strategy
SEEDS = (0, 1, 2)
BLOCK = re.compile(
    r"(<!-- begin (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end (?P=name) -->)", re.S
)
# The seed post's temperature figure: these logits at T = 1, 0.5 and 0.1.
POST_LOGITS = np.array([1.5, -1.8, 0.9, -3.2], dtype=np.float32)


@dataclass
class Context:
    """The model every block runs on."""

    model_dir: Path
    model: minigpt.GPT2
    tokenizer: object
    prompt: list[int]

    def logits(self):
        """A fresh adapter, so counts of model calls start at zero."""
        return minigpt.NextTokenLogits(self.model)

    def text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def token(self, token: int) -> str:
        return f"`{show_token(self.tokenizer.decode([token]))}`"


def load_context(model: str | None) -> Context:
    model_dir = default_model_dir() if model is None else Path(model)
    tokenizer = minigpt.load_tokenizer(model_dir)
    return Context(model_dir, minigpt.load(model_dir), tokenizer, tokenizer.encode(PROMPT))


# ---------------------------------------------------------------------------- small helpers


def run_cli(ctx: Context, *argv: str) -> str:
    """The exact stdout of `python -m minigpt ARGV` (on the walkthrough's model)."""
    out, err = io.StringIO(), io.StringIO()
    args = [*argv, "--model", str(ctx.model_dir)]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(args)
    if status != 0:
        raise RuntimeError(f"minigpt {' '.join(args)} failed: {err.getvalue()}")
    return out.getvalue()


def shell(*argv: str) -> str:
    """The command a reader types (the default model needs no --model)."""
    return "$ python -m minigpt " + " ".join(shlex.quote(a) for a in argv)


def console(ctx: Context, *argv: str) -> str:
    """A fenced block: the command, then what it prints."""
    return f"```console\n{shell(*argv)}\n{run_cli(ctx, *argv).rstrip()}\n```\n"


def post_score(ids: list[int], logprob: float) -> float:
    """The seed post's sequence score: generated log-probs summed, over the FULL length."""
    return logprob / len(ids)


def percent(p: float) -> str:
    return f"{100 * p:.2f}%"


# ----------------------------------------------------------------------------------- blocks


def block_setup(ctx: Context, pictures) -> str:
    c = ctx.model.config
    random = "  (RANDOM weights: the text is noise)" if is_random_demo(ctx.model_dir) else ""
    name = ctx.model_dir.name
    return (
        f"```text\nmodel:  {name}: {c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, "
        f"context {c.n_positions}, vocabulary {c.vocab_size}{random}\n"
        f"prompt: {PROMPT!r} -> {ctx.prompt}\n```\n"
    )


def block_greedy(ctx: Context, pictures) -> str:
    shown = console(ctx, "generate", PROMPT, "--max-new-tokens", str(NEW_TOKENS))
    result = greedy_search(
        ctx.logits(), ctx.prompt, max_new_tokens=NEW_TOKENS,
        eos_token_id=ctx.model.config.eos_token_id, trace=True,
    )[0]  # fmt: skip
    pictures["greedy-tree"] = tree_dot(result, ctx.text)
    rows = ["| step | chosen token | its probability | runner-up |", "|---|---|---|---|"]
    for step in result.trace.steps:
        row = step.rows[0]
        chosen = next(c for c in row.candidates if c.token == row.chosen[0])
        runner_up = next(c for c in row.candidates if c.token != row.chosen[0])
        rows.append(
            f"| {step.number} | {ctx.token(chosen.token)} | {percent(chosen.prob)} | "
            f"{ctx.token(runner_up.token)} {percent(runner_up.prob)} |"
        )
    best = result.best
    score = post_score(best.ids, best.logprob)
    return (
        f"{shown}\n" + "\n".join(rows) + "\n\n"
        f"Sum of the generated tokens' log-probs: {best.logprob:.2f}; the post's sequence score "
        f"(that sum over all {len(best.ids)} tokens, prompt included): **{score:.2f}**.\n"
    )


def block_beam_vs_tree(ctx: Context, pictures) -> str:
    eos = ctx.model.config.eos_token_id
    beam_calls, tree_calls = CountingLogits(ctx.logits()), CountingLogits(ctx.logits())
    beam = beam_search(
        beam_calls, ctx.prompt, num_beams=2, max_new_tokens=NEW_TOKENS, eos_token_id=eos,
        trace=True,
    )[0]  # fmt: skip
    tree = exhaustive_tree_search(tree_calls, ctx.prompt, branching=2, depth=NEW_TOKENS,
                                  eos_token_id=eos)  # fmt: skip
    pictures["beam-tree"] = tree_dot(beam, ctx.text)
    pictures["exhaustive-tree"] = tree_dot(tree, ctx.text)
    beam_argv = ("generate", PROMPT, "--strategy", "beam", "--num-beams", "2",
                 "--max-new-tokens", str(NEW_TOKENS))  # fmt: skip
    tree_argv = ("generate", PROMPT, "--strategy", "tree", "--num-beams", "2",
                 "--max-new-tokens", str(NEW_TOKENS))  # fmt: skip
    b, t = beam.best, tree.best
    g = greedy_search(ctx.logits(), ctx.prompt, max_new_tokens=NEW_TOKENS, eos_token_id=eos)
    greedy = g[0].best
    generated_mean = t.logprob / len(t.new_ids)
    table = [
        "| | real beam search, 2 beams | the post's exhaustive tree, 2 children |",
        "|---|---|---|",
        f"| sequences sent to the model | {beam_calls.expansions} | {tree_calls.expansions} |",
        f"| finished sequences compared at the end | at most 2 (its pool) "
        f"| all {len(tree.leaves)} leaves |",
        f"| result | {ctx.text(b.new_ids)!r} | {ctx.text(t.new_ids)!r} |",
        f"| mean log-prob per generated token | {b.score:.3f} | {generated_mean:.3f} |",
        f"| the post's score | {post_score(b.ids, b.logprob):.3f} | {t.score:.3f} |",
    ]
    versus = (
        f"Greedy search, for comparison, chose {ctx.text(greedy.new_ids)!r}: summed log-prob "
        f"{greedy.logprob:.2f}, against {b.logprob:.2f} for beam search's {ctx.text(b.new_ids)!r}."
    )
    shown = console(ctx, *beam_argv) + "\n" + console(ctx, *tree_argv)
    return shown + "\n" + "\n".join(table) + "\n\n" + versus + "\n"


def sampling_block(ctx: Context, flag: str, value: str, picture_name: str, pictures) -> str:
    """Three seeds of one sampler, and the bar chart of the first seed's steps."""
    shown = "".join(
        console(
            ctx,
            "generate",
            PROMPT,
            "--strategy",
            "sample",
            flag,
            value,
            "--seed",
            str(seed),
            "--max-new-tokens",
            str(NEW_TOKENS),
        )  # fmt: skip
        for seed in SEEDS
    ).replace("```\n```console\n", "")
    name = flag.lstrip("-").replace("-", "_")
    number = float(value) if "." in value else int(value)
    result = sample(
        ctx.logits(), ctx.prompt, rng=np.random.default_rng(SEEDS[0]), max_new_tokens=NEW_TOKENS,
        eos_token_id=ctx.model.config.eos_token_id, trace=True, **{name: number},
    )[0]  # fmt: skip
    pictures[picture_name] = bars_dot(result, ctx.text, top=8)
    kept = [str(step.rows[0].cuts[0].kept) for step in result.trace.steps]
    return (
        f"{shown}\nTokens left to draw from at each step of seed {SEEDS[0]}: {', '.join(kept)}.\n"
    )


def block_top_k(ctx: Context, pictures) -> str:
    return sampling_block(ctx, "--top-k", "20", "top-k-bars", pictures)


def block_nucleus(ctx: Context, pictures) -> str:
    return sampling_block(ctx, "--top-p", "0.5", "nucleus-bars", pictures)


def block_temperature_post(ctx: Context, pictures) -> str:
    rows = ["| T | " + " | ".join(f"logit {x:g}" for x in POST_LOGITS) + " |", "|---" * 5 + "|"]
    for t in (1.0, 0.5, 0.1):
        probs = softmax(apply_temperature(POST_LOGITS, t))
        rows.append(f"| {t:g} | " + " | ".join(f"{p:.2f}" for p in probs) + " |")
    return "\n".join(rows) + "\n"


def block_temperature_model(ctx: Context, pictures) -> str:
    logits = ctx.logits()([ctx.prompt])[0]
    top = np.argsort(-logits, kind="stable")[:5]
    header = "| T | " + " | ".join(ctx.token(int(t)) for t in top) + " | entropy (nats) |"
    rows = [header, "|---" * 7 + "|"]
    for t in (0.5, 1.0, 1.5):
        probs = softmax(apply_temperature(logits, t))
        entropy = float(-np.sum(probs * np.where(probs > 0, np.log(probs), 0)))
        cells = " | ".join(percent(float(probs[i])) for i in top)
        rows.append(f"| {t:g} | {cells} | {entropy:.2f} |")
    return "\n".join(rows) + "\n"


def post_nucleus_weights(logits: np.ndarray, p: float) -> np.ndarray:
    """The distribution the post's nucleus sampler really draws from (see its bugs 2 and 3).

    Kept: the sorted positions before the last one whose cumulative mass is < p. Dropped: the
    token ids of the rest, used as positions in the SORTED logits. Drawn: a sorted position,
    returned as a token id. So token j gets the weight of the j-th largest probability.
    """
    order = np.argsort(-logits, kind="stable")
    sorted_logits = logits[order].copy()
    below = np.cumsum(softmax(sorted_logits)) < p
    n_keep = max(int(np.sum(below)) - 1, 1)
    sorted_logits[order[n_keep:]] = -np.inf  # token ids used as positions: the indexing bug
    return softmax(sorted_logits)  # index = sorted position, read as a token id


def block_bug_nucleus(ctx: Context, pictures) -> str:
    p = 0.9
    context = ctx.tokenizer.encode(HESITANT_PROMPT)
    logits = ctx.logits()([context])[0]
    ours = softmax(top_p_filter(logits, p))
    theirs = post_nucleus_weights(logits, p)
    shown = sorted(set(np.flatnonzero(ours)) | set(np.flatnonzero(theirs)),
                   key=lambda t: -ours[t])[:8]  # fmt: skip
    rows = ["| token id | token | model probability | ours (top-p 0.9) | the post's sampler |",
            "|---|---|---|---|---|"]  # fmt: skip
    model_probs = softmax(logits)
    for t in shown:
        rows.append(
            f"| {t} | {ctx.token(int(t))} | {percent(model_probs[t])} | {percent(ours[t])} "
            f"| {percent(theirs[t])} |"
        )
    tv = 0.5 * float(np.sum(np.abs(ours - theirs)))
    mass_ours, mass_theirs = (float(np.sum(model_probs[w > 0])) for w in (ours, theirs))
    return (
        f"The next token after {HESITANT_PROMPT!r}, p = {p}:\n\n" + "\n".join(rows) + "\n\n"
        f"Tokens kept: ours {int(np.sum(ours > 0))} (mass {mass_ours:.3f} ≥ {p}), the post's "
        f"{int(np.sum(theirs > 0))} (mass {mass_theirs:.3f}). The two distributions differ by a "
        f"total variation distance of {tv:.2f} (0 = identical, 1 = disjoint).\n"
    )


BLOCKS = {
    "setup": block_setup,
    "greedy": block_greedy,
    "beam-vs-tree": block_beam_vs_tree,
    "top-k": block_top_k,
    "nucleus": block_nucleus,
    "temperature-post": block_temperature_post,
    "temperature-model": block_temperature_model,
    "bug-nucleus": block_bug_nucleus,
}


# ------------------------------------------------------------------------------ doc plumbing


def build(ctx: Context) -> tuple[str, dict[str, str]]:
    """The walkthrough with fresh blocks, and the DOT text of every picture."""
    doc = DOC.read_text(encoding="utf-8")
    found = [m["name"] for m in BLOCK.finditer(doc)]
    if sorted(found) != sorted(BLOCKS):
        raise SystemExit(f"walkthrough.md has blocks {found}; this script makes {list(BLOCKS)}")
    pictures: dict[str, str] = {}
    fresh = {name: make(ctx, pictures) for name, make in BLOCKS.items()}
    doc = BLOCK.sub(lambda m: m[1] + fresh[m["name"]] + m[4], doc)
    return doc, pictures


def stale_files(ctx: Context) -> list[str]:
    """The files a fresh build would change ([] when the doc is up to date)."""
    doc, pictures = build(ctx)
    # Another CPU may round a printed number's last digit apart (docs/page_numbers.py).
    stale = [] if same_up_to_last_digit(DOC.read_text(encoding="utf-8"), doc) else [str(DOC)]
    for name, text in pictures.items():
        path = IMG / f"{name}.dot"
        if not path.exists() or not same_up_to_last_digit(path.read_text(encoding="utf-8"), text):
            stale.append(str(path))
    return stale


def write(ctx: Context) -> None:
    doc, pictures = build(ctx)
    DOC.write_text(doc, encoding="utf-8")
    IMG.mkdir(exist_ok=True)
    for name, text in pictures.items():
        written, note = save_picture(
            text, IMG / f"{name}.svg" if dot_available() else IMG / f"{name}.dot"
        )
        print("wrote", ", ".join(str(p.relative_to(DOCS.parent)) for p in written))
    if not dot_available():
        print("note: Graphviz's dot is not installed, so no .svg was rendered", file=sys.stderr)
    print("wrote", DOC.relative_to(DOCS.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    parser.add_argument("--model", help="build on another model (for trying things out only)")
    args = parser.parse_args(argv)
    ctx = load_context(args.model)
    if args.check:
        stale = stale_files(ctx)
        for path in stale:
            print(f"stale: {path} (run python docs/build_walkthrough.py)", file=sys.stderr)
        return 1 if stale else 0
    write(ctx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
