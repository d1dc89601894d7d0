"""HF's `compute_transition_scores`: each generated token's entry in the scores it was chosen by.

A decoder called with `output_scores=True` keeps, per step, the scores it chose from (one row
per sequence or beam slot, `Decoded.scores`). The transition score of a generated token is its
entry in its own row at its own step:

    greedy search, sampling: row n of step t belongs to sequence n
    beam search:             row beam_indices[n, t] of step t: the beam slot the token extended

What the number means depends on the decoder, because HF keeps different things:
- greedy search: the PROCESSED LOGIT (after repetition penalty, no-repeat-ngram). Not a
  log-prob: it only becomes one with normalize_logits=True (log_softmax of the processed row).
- sampling: the logit after processors and warpers (temperature divides it; a cut token is
  -inf but a chosen token never is).
- beam search: the processed LOG-PROB, the number added to the beam's score. So the sum of a
  hypothesis's transition scores, divided by generated_length ** length_penalty, is its
  `sequences_scores` (see docs/scores.md, which also says why that sum is not `logprob` once a
  processor acted, and why normalize_logits=True breaks the relation).

Every decoder also keeps the same numbers without the big arrays, per token, in
`Hypothesis.transition_scores`; this module rebuilds them from the arrays exactly as HF does,
which is what you need to check one against the other or to read HF-shaped results.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from decoding.probs import log_softmax
from decoding.results import Decoded


def normalized(rows: np.ndarray) -> np.ndarray:
    """log_softmax over the vocabulary of each row; a NaN row (never computed) stays NaN.

    >>> normalized(np.array([[0.0, 0.0], [np.nan, np.nan]], np.float32)) == np.log(np.float32(0.5))
    array([[ True,  True],
           [False, False]])
    """
    out = np.full(rows.shape, np.nan, dtype=np.float32)
    computed = ~np.isnan(rows).any(axis=-1)
    if computed.any():
        out[computed] = log_softmax(rows[computed])
    return out


def compute_transition_scores(
    sequences: np.ndarray,
    scores: Sequence[np.ndarray],
    beam_indices: np.ndarray | None = None,
    normalize_logits: bool = False,
) -> np.ndarray:
    """The [N, steps] float32 transition scores of HF's `compute_transition_scores`.

    sequences:    [N, prompt_length + generated] token ids (padded; see `sequences_array`).
    scores:       one [rows, V] array per step, as Decoded.scores.
    beam_indices: [N, generated] beam slots, -1 after a hypothesis ended (beam search only;
                  see `beam_indices_array`). None: row n is sequence n, at every step.
    normalize_logits: take log_softmax of every score row first.

    The number of columns follows HF: with beam_indices, the longest hypothesis's generated
    length (a search that ran on after a hypothesis finished has more steps than that); a
    position where beam_indices is -1 gets 0.0, not a score. Without beam_indices, one column
    per step, read at the last len(scores) tokens of each sequence.

    >>> step = np.log(np.array([[0.5, 0.25, 0.25]], np.float32))  # one step, one sequence
    >>> compute_transition_scores(np.array([[2, 0]]), [step]) == np.log(np.float32(0.5))
    array([[ True]])
    """
    sequences = np.asarray(sequences)
    stacked = np.stack([np.asarray(s, dtype=np.float32) for s in scores])  # [steps, rows, V]
    if normalize_logits:
        stacked = normalized(stacked)
    if beam_indices is None:
        # Greedy search and sampling: as if there were one beam per sequence, always chosen.
        beam_indices = np.broadcast_to(np.arange(stacked.shape[1])[:, None], (len(sequences),
                                       len(scores)))  # fmt: skip
    beam_indices = np.asarray(beam_indices)
    ended = beam_indices < 0  # HF pads beam_indices with -1 after a hypothesis's last token
    length = int((~ended).sum(axis=1).max())
    slots = np.where(ended, 0, beam_indices)[:, :length]  # any row: masked out below
    ended = ended[:, :length]
    tokens = sequences[:, sequences.shape[1] - length :]  # the last `length` tokens
    steps = np.arange(length)[None, :]
    gathered = stacked[steps, slots, tokens]  # [N, length]
    return np.where(ended, np.float32(0.0), gathered).astype(np.float32)


def sequences_array(decoded: Decoded, pad_token_id: int = 0) -> np.ndarray:
    """The hypotheses as HF's `sequences`: [N, prompt + longest generated], padded at the end.

    >>> from decoding.results import Hypothesis
    >>> sequences_array(Decoded([1], [Hypothesis([1, 2], 1, 0.0), Hypothesis([1, 2, 3], 1, 0.0)]))
    array([[1, 2, 0],
           [1, 2, 3]])
    """
    width = max(len(h.ids) for h in decoded.hypotheses)
    out = np.full((len(decoded.hypotheses), width), pad_token_id, dtype=np.int64)
    for n, h in enumerate(decoded.hypotheses):
        out[n, : len(h.ids)] = h.ids
    return out


def beam_indices_array(decoded: Decoded) -> np.ndarray:
    """The hypotheses' beam slots as HF's `beam_indices`: [N, longest generated], -1 padded.

    HF's slots also carry the prompt's offset in the batch (prompt b's beams are rows b*K to
    b*K + K - 1); a Decoded is one prompt, so its slots start at 0.
    """
    width = max(len(h.beam_indices) for h in decoded.hypotheses)
    out = np.full((len(decoded.hypotheses), width), -1, dtype=np.int64)
    for n, h in enumerate(decoded.hypotheses):
        out[n, : len(h.beam_indices)] = h.beam_indices
    return out


def transition_scores_of(decoded: Decoded, normalize_logits: bool = False) -> np.ndarray:
    """compute_transition_scores on one Decoded (the decoder must have had output_scores=True):
    with beam indices when its hypotheses have them (beam search), without otherwise."""
    if decoded.scores is None:
        raise ValueError("no scores were kept: call the decoder with output_scores=True")
    beams = any(h.beam_indices for h in decoded.hypotheses)
    beam_indices = beam_indices_array(decoded) if beams else None
    return compute_transition_scores(
        sequences_array(decoded), decoded.scores, beam_indices, normalize_logits
    )
