"""Record Hugging Face `generate` once, so `make test` holds minigpt's decoders to it, torch-free.

    .venv/bin/python tests/recordings/record_hf_generate.py      # needs the reference extra

writes hf_generate.json next to this file: for every case below, the ids, `sequences_scores`
and, for every step of every returned sequence, the processed log-prob HF added to its score,
the raw logit of the token and the float64 log-sum-exp of that step's raw logits (enough to
know the exact log-prob under HF's logits without storing them). Recorded with torch
2.13.0+cpu and transformers 5.24.0 (the JSON names the versions that wrote it);
tests/decoding/test_hf_recorded.py replays it, and its reference-marked test re-runs HF live to
check that the recording is still what HF says.

The two checkpoints live next to this file and are built, when missing (or with --rebuild), by
minigpt's own make_random.write_checkpoint with fixed seeds:

- random-tiny/: a 2-layer GPT-2 with a 64-token vocabulary, weights N(0, 0.5) so that its
  next-token distributions are peaky (top token ~0.46 on average) and EOS (63, like GPT-2's
  last id) is in the top 3 about a fifth of the time: beams finish at different lengths.
- unigram-exact/: a GPT-2 whose final LayerNorm has weight 0, so every position's hidden
  state is its bias, e_0, and every step's logits are column 0 of the embedding: integers we
  choose. With the top logit 0 and the others below -30, every float32 softmax sums to exactly
  1 and every log-prob IS its logit, on both sides: scores are exact integers, and hypotheses
  of different lengths can tie exactly (the only way to test keep_best's tie order).

Each case says why it is here; `differs_from` / `equals` name the cases whose HF result must
differ from / equal its own, which this script checks before writing (and the replaying test
checks again), so a case that stops exercising its rule is noticed. A `known_discrepancy` is a
case where minigpt knowingly answers otherwise (the test expects it to fail, strictly).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root: minigpt, decoding
sys.path.insert(0, str(HERE.parent / "decoding"))  # the float64 oracle: its log-sum-exp

from float64_oracle import lse64  # noqa: E402

from minigpt.config import GPT2Config  # noqa: E402
from minigpt.make_random import write_checkpoint  # noqa: E402

OUTPUT = HERE / "hf_generate.json"
PAD = 1  # what HF pads finished sequences with (not 0: its beam search reads 0 as unset)

RANDOM_TINY = GPT2Config(
    n_layer=2, n_head=2, n_embd=32, n_positions=32, vocab_size=64,
    bos_token_id=63, eos_token_id=63,
)  # fmt: skip
UNIGRAM = GPT2Config(
    n_layer=1, n_head=1, n_embd=8, n_positions=16, vocab_size=16,
    bos_token_id=15, eos_token_id=15,
)  # fmt: skip
EOS, UNIGRAM_EOS = 63, 15
# The unigram's logits: token 5 gets 0, EOS -31, every other token a distinct integer <= -32.
UNIGRAM_TOP, UNIGRAM_EOS_LOGIT = 5, -31.0


def build_random_tiny(out: Path) -> None:
    write_checkpoint(out, RANDOM_TINY, seed=11, std=0.5)


def build_unigram(out: Path) -> None:
    """write_checkpoint's random GPT-2, then: ln_f weight 0 and bias e_0, so the head sees
    e_0 at every position, and wte[:, 0] (the logits, by the tied head) set to our integers."""
    from safetensors.numpy import load_file, save_file

    write_checkpoint(out, UNIGRAM, seed=12, std=0.02)
    path = out / "model.safetensors"
    tensors = {name: t.copy() for name, t in load_file(path).items()}
    tensors["ln_f.weight"][:] = 0.0
    tensors["ln_f.bias"][:] = 0.0
    tensors["ln_f.bias"][0] = 1.0
    logits = -32.0 - np.arange(UNIGRAM.vocab_size, dtype=np.float32)
    logits[UNIGRAM_TOP], logits[UNIGRAM_EOS] = 0.0, UNIGRAM_EOS_LOGIT
    tensors["wte.weight"][:, 0] = logits
    save_file(tensors, str(path), metadata={"format": "pt"})


CHECKPOINTS = {"random-tiny": build_random_tiny, "unigram-exact": build_unigram}

# Prompts (all of length 3: HF runs a batch without padding). Chosen on random-tiny so that
# the rule each case is about changes HF's answer (checked below).
A = [[35, 25, 8], [50, 29, 32], [46, 12, 42]]
NEVER = [[35, 25, 8], [48, 0, 19], [46, 12, 42]]
LP = [[53, 53, 28], [6, 10, 43], [23, 20, 50]]
U = [[1, 2, 3]]


def case(name, why, checkpoint, decoder, prompts, max_new_tokens, differs_from=(), equals=(),
         known_discrepancy=None, **params) -> dict:  # fmt: skip
    """One recorded question to generate(); `params` are generate()'s keyword arguments.

    known_discrepancy: why minigpt does not (and will not) give HF's answer here; the
    replaying test expects it to fail, and notices when it starts to pass.
    """
    return {
        "name": name, "why": why, "checkpoint": checkpoint, "decoder": decoder,
        "prompts": prompts, "max_new_tokens": max_new_tokens, "params": params,
        "differs_from": list(differs_from), "equals": list(equals),
        "known_discrepancy": known_discrepancy,
    }  # fmt: skip


BEAM3 = {"num_beams": 3, "num_return_sequences": 3}
CASES = [
    case(
        "greedy",
        "greedy search, EOS reached early by some prompts",
        "random-tiny",
        "greedy",
        A,
        10,
        eos_token_id=EOS,
    ),
    case(
        "greedy-no-eos",
        "greedy without EOS: every sequence runs to max_new_tokens",
        "random-tiny",
        "greedy",
        A,
        10,
        differs_from=["greedy"],
        eos_token_id=None,
    ),
    case(
        "greedy-processors",
        "repetition penalty and no-repeat-ngram on greedy's logits",
        "random-tiny",
        "greedy",
        A,
        10,
        differs_from=["greedy"],
        eos_token_id=EOS,
        repetition_penalty=1.3,
        no_repeat_ngram_size=2,
    ),
    case(
        "num-beams-1",
        "generate(num_beams=1) is greedy search: length_penalty and early_stopping do nothing",
        "random-tiny",
        "greedy",
        A,
        10,
        equals=["greedy"],
        eos_token_id=EOS,
        num_beams=1,
        length_penalty=2.0,
        early_stopping=True,
    ),
    case(
        "num-beams-1-never",
        "num_beams=1 is greedy even where a one-beam search would go on past EOS "
        '(length_penalty 2, early_stopping="never")',
        "random-tiny",
        "greedy",
        A,
        10,
        equals=["greedy"],
        eos_token_id=EOS,
        num_beams=1,
        length_penalty=2.0,
        early_stopping="never",
    ),
    case(
        "early-true",
        "early_stopping=True stops once num_beams hypotheses are finished",
        "random-tiny",
        "beam",
        A,
        8,
        eos_token_id=EOS,
        early_stopping=True,
        **BEAM3,
    ),
    case(
        "early-false",
        "early_stopping=False goes on while the best live beam, at its "
        "current length, could beat the worst finished one",
        "random-tiny",
        "beam",
        A,
        8,
        differs_from=["early-true"],
        eos_token_id=EOS,
        early_stopping=False,
        **BEAM3,
    ),
    case(
        "never-lp1",
        'early_stopping="never" with length_penalty > 0 judges the best live '
        "beam at max_new_tokens: it searches on where False stops",
        "random-tiny",
        "beam",
        NEVER,
        10,
        eos_token_id=EOS,
        num_beams=2,
        num_return_sequences=2,
        early_stopping="never",
        length_penalty=1.0,
    ),
    case(
        "false-lp1",
        "the same search with early_stopping=False",
        "random-tiny",
        "beam",
        NEVER,
        10,
        differs_from=["never-lp1"],
        eos_token_id=EOS,
        num_beams=2,
        num_return_sequences=2,
        early_stopping=False,
        length_penalty=1.0,
    ),
    case(
        "never-lp2",
        'early_stopping="never", length_penalty 2',
        "random-tiny",
        "beam",
        NEVER,
        10,
        eos_token_id=EOS,
        num_beams=2,
        num_return_sequences=2,
        early_stopping="never",
        length_penalty=2.0,
    ),
    case(
        "false-lp2",
        "early_stopping=False, length_penalty 2",
        "random-tiny",
        "beam",
        NEVER,
        10,
        differs_from=["never-lp2"],
        eos_token_id=EOS,
        num_beams=2,
        num_return_sequences=2,
        early_stopping=False,
        length_penalty=2.0,
    ),
    case(
        "lp-minus1",
        "length_penalty -1 favours short hypotheses",
        "random-tiny",
        "beam",
        LP,
        8,
        eos_token_id=EOS,
        num_beams=2,
        num_return_sequences=2,
        length_penalty=-1.0,
    ),
    case(
        "never-lp-minus1",
        'early_stopping="never" with length_penalty <= 0 judges at the '
        "current length, as False does",
        "random-tiny",
        "beam",
        LP,
        8,
        equals=["lp-minus1"],
        eos_token_id=EOS,
        num_beams=2,
        num_return_sequences=2,
        length_penalty=-1.0,
        early_stopping="never",
    ),
    case(
        "lp0",
        "length_penalty 0: the raw sum of log-probs",
        "random-tiny",
        "beam",
        LP,
        8,
        differs_from=["lp-minus1"],
        eos_token_id=EOS,
        num_beams=2,
        num_return_sequences=2,
        length_penalty=0.0,
    ),
    case(
        "lp1",
        "length_penalty 1: the mean log-prob per token",
        "random-tiny",
        "beam",
        LP,
        8,
        differs_from=["lp-minus1", "lp0"],
        eos_token_id=EOS,
        num_beams=2,
        num_return_sequences=2,
        length_penalty=1.0,
    ),
    case(
        "lp2",
        "length_penalty 2 favours long hypotheses",
        "random-tiny",
        "beam",
        LP,
        8,
        differs_from=["lp-minus1", "lp0", "lp1"],
        eos_token_id=EOS,
        num_beams=2,
        num_return_sequences=2,
        length_penalty=2.0,
    ),
    case(
        "repetition-penalty",
        "the penalty acts on beam search's log-probs",
        "random-tiny",
        "beam",
        A,
        8,
        differs_from=["early-false"],
        eos_token_id=EOS,
        repetition_penalty=1.5,
        **BEAM3,
    ),
    case(
        "no-repeat-ngram",
        "no-repeat-ngram bans on beam search's log-probs",
        "random-tiny",
        "beam",
        A,
        8,
        differs_from=["early-false"],
        eos_token_id=EOS,
        no_repeat_ngram_size=2,
        **BEAM3,
    ),
    case(
        "both-processors",
        "both processors, with early stopping and a length penalty",
        "random-tiny",
        "beam",
        A,
        8,
        eos_token_id=EOS,
        repetition_penalty=0.7,
        no_repeat_ngram_size=3,
        early_stopping=True,
        length_penalty=0.5,
        **BEAM3,
    ),
    case(
        "no-eos",
        "no EOS: every hypothesis finishes at max_new_tokens",
        "random-tiny",
        "beam",
        A,
        6,
        eos_token_id=None,
        num_beams=4,
        num_return_sequences=4,
    ),
    case(
        "one-of-five",
        "5 beams, the best one returned",
        "random-tiny",
        "beam",
        A,
        8,
        eos_token_id=EOS,
        num_beams=5,
    ),
    case(
        "tie-keeps-older",
        "[EOS] (step 1) and [5, EOS] (step 2) tie exactly at -31 with "
        "length_penalty 0; HF keeps the older one first, as keep_best does",
        "unigram-exact",
        "beam",
        U,
        4,
        eos_token_id=UNIGRAM_EOS,
        num_beams=2,
        num_return_sequences=2,
        length_penalty=0.0,
        early_stopping=True,
    ),
    case(
        "tie-lp-half",
        "exact scores (-31 / 2**0.5): the length penalty's float32 division shows bit for bit",
        "unigram-exact",
        "beam",
        U,
        4,
        eos_token_id=UNIGRAM_EOS,
        num_beams=2,
        num_return_sequences=2,
        length_penalty=0.5,
        early_stopping=True,
    ),
    case(
        "exact-no-early-stop",
        "without early stopping the live beam (score 0) runs to max_new_tokens and wins",
        "unigram-exact",
        "beam",
        U,
        4,
        differs_from=["tie-lp-half"],
        eos_token_id=UNIGRAM_EOS,
        num_beams=2,
        num_return_sequences=2,
        length_penalty=0.5,
        early_stopping=False,
    ),
    case(
        "tie-full-pool",
        "a full pool [[EOS], [5, EOS]] meets [5, 5, EOS], all at -31: which tie HF keeps is "
        "up to torch.topk, which is not stable",
        "unigram-exact",
        "beam",
        U,
        3,
        eos_token_id=UNIGRAM_EOS,
        num_beams=2,
        num_return_sequences=2,
        length_penalty=0.0,
        early_stopping=False,
        known_discrepancy="HF breaks exact ties among finished hypotheses by torch.topk's "
        "selection order (here it keeps the newer [5, EOS] and drops [EOS]); minigpt's "
        "keep_best always keeps the older one",
    ),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cut_at_eos(new: list[int], eos: int | None) -> list[int]:
    if eos is not None and eos in new:
        return new[: new.index(eos) + 1]
    return new


def run_case(torch, model, c: dict, keep_logits: bool = False) -> list[list[dict]]:
    """HF's answer to one case: per prompt, the returned sequences with their steps (and, if
    asked, each step's raw logits, which the JSON does not keep)."""
    from transformers import GenerationConfig

    params = dict(c["params"])
    eos = params.pop("eos_token_id")
    beam = c["decoder"] == "beam"
    config = GenerationConfig(
        do_sample=False, max_new_tokens=c["max_new_tokens"], eos_token_id=eos,
        pad_token_id=PAD, bos_token_id=None, return_dict_in_generate=True,
        output_scores=True, output_logits=True, **params,
    )  # fmt: skip
    # generate() fills unset fields from the model's own generation config, whose EOS is the
    # checkpoint's: set it to the case's, so eos_token_id=None really means no EOS.
    model.generation_config.eos_token_id = eos
    model.generation_config.bos_token_id = None
    model.generation_config.pad_token_id = PAD
    ids = torch.tensor(c["prompts"])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
    n = params.get("num_return_sequences", 1)
    length = ids.shape[1]
    results = []
    for p in range(len(c["prompts"])):
        hypotheses = []
        for j in range(n):
            row = p * n + j
            new = cut_at_eos(out.sequences[row, length:].tolist(), eos)
            steps, rows = [], []
            for t, token in enumerate(new):
                b = int(out.beam_indices[row, t]) if beam else row
                logits = out.logits[t][b].numpy()
                score = float(out.scores[t][b, token])
                steps.append([score, float(logits[token]), lse64(logits)])
                rows.append(logits)
            score = float(out.sequences_scores[row]) if beam else None
            hypothesis = {"ids": c["prompts"][p] + new, "score": score, "steps": steps}
            if keep_logits:
                hypothesis["logits"] = rows
            hypotheses.append(hypothesis)
        results.append(hypotheses)
    return results


def outcome(results: list[list[dict]]) -> list:
    """What must differ (or agree) between related cases: ids and scores."""
    return [[(h["ids"], h["score"]) for h in prompt] for prompt in results]


def check_relations(recorded: list[dict]) -> list[str]:
    """The promised differences and equalities between cases (used by the test too)."""
    by_name = {c["name"]: c for c in recorded}
    problems = []
    for c in recorded:
        for other in c["differs_from"]:
            if outcome(c["results"]) == outcome(by_name[other]["results"]):
                problems.append(f"{c['name']} gives HF's answer to {other}: it tests nothing")
        for other in c["equals"]:
            if outcome(c["results"]) != outcome(by_name[other]["results"]):
                problems.append(f"{c['name']} should give HF's answer to {other}")
    return problems


def record(rebuild: bool) -> dict:
    import torch
    import transformers

    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny models: one thread, and no thread-count-dependent sums
    checkpoints = {}
    for name, build in CHECKPOINTS.items():
        out = HERE / name
        if rebuild or not (out / "model.safetensors").exists():
            build(out)
        checkpoints[name] = {
            "config.json": sha256(out / "config.json"),
            "model.safetensors": sha256(out / "model.safetensors"),
        }
    models = {
        name: transformers.GPT2LMHeadModel.from_pretrained(HERE / name, dtype=torch.float32).eval()
        for name in CHECKPOINTS
    }
    recorded = [{**c, "results": run_case(torch, models[c["checkpoint"]], c)} for c in CASES]
    problems = check_relations(recorded)
    if problems:
        raise SystemExit("cases that do not exercise their rule:\n" + "\n".join(problems))
    return {
        "recorded_with": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "script": "tests/recordings/record_hf_generate.py",
        },
        "checkpoints": checkpoints,
        "cases": recorded,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the checkpoints too")
    parser.add_argument("--check", action="store_true", help="print, do not write the JSON")
    args = parser.parse_args(argv)
    data = record(args.rebuild)
    text = json.dumps(data, indent=1) + "\n"
    if args.check:
        print(text)
    else:
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT.relative_to(HERE.parents[1])} ({len(text):,} bytes)")


if __name__ == "__main__":
    main()
