"""`minigpt score`: a table of every token's log-prob, then the text's perplexity."""

from __future__ import annotations

import argparse
import json
import math
from typing import TextIO

import minigpt
from decoding.render.dot import show_token
from minigpt.cli.session import Session, jsonable, open_session, print_notes


def score(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = open_session(args.model)
    result = score_json(session, args.text)
    print_notes(session, err)
    if args.json:
        print(json.dumps(jsonable(result), ensure_ascii=False), file=out)
        return 0
    print(f"{'pos':>4} {'id':>6}  {'token':<16} {'logprob':>8} {'prob':>7}", file=out)
    for pos, token in enumerate(result["tokens"]):
        lp = token["logprob"]
        numbers = "       -       -" if lp is None else f"{lp:8.3f} {math.exp(lp):7.2%}"
        print(f"{pos:>4} {token['id']:>6}  {show_token(token['text']):<16} {numbers}", file=out)
    print(
        f"perplexity {result['perplexity']:.2f} over {len(result['ids']) - 1} predicted tokens "
        f"(mean log-prob {result['mean_logprob']:.3f})",
        file=out,
    )
    return 0


def score_json(session: Session, text: str) -> dict:
    """minigpt.score of the text, with each token's text; the first token has no log-prob."""
    result = minigpt.score(session.model, session.tokenizer.encode(text))
    decode = session.tokenizer.decode
    tokens = [{"id": i, "text": decode([i]), "logprob": lp}
              for i, lp in zip(result.ids, [None, *result.logprobs])]  # fmt: skip
    return {
        "ids": result.ids,
        "tokens": tokens,
        "sum_logprob": result.sum_logprob,
        "mean_logprob": result.mean_logprob,
        "perplexity": result.perplexity,
    }
