"""decoding: GPT-2's text decoders in NumPy, exact to Hugging Face generate()."""

# Probabilities, warpers and processors. (Decoders add their own lines and `__all__ += [...]`.)
from decoding.probs import log_softmax, softmax
from decoding.processors import (
    Processors,
    banned_ngram_tokens,
    no_repeat_ngram,
    repetition_penalty,
)
from decoding.warpers import (
    Warpers,
    WarpStep,
    apply_temperature,
    count_kept,
    min_p_filter,
    top_k_filter,
    top_p_filter,
    typical_filter,
)

__all__ = [
    "softmax",
    "log_softmax",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "min_p_filter",
    "typical_filter",
    "count_kept",
    "Warpers",
    "WarpStep",
    "repetition_penalty",
    "no_repeat_ngram",
    "banned_ngram_tokens",
    "Processors",
]

# Decoders, their results and traces. Assisted decoding: greedy search and sampling with a
# drafter (a small model, or prompt lookup).
from decoding.assisted import assisted_greedy_search, assisted_sample
from decoding.beam import beam_search
from decoding.beam_sample import beam_sample
from decoding.drafters import DraftModel, PromptLookup
from decoding.greedy import greedy_search
from decoding.results import AssistStats, Beam, Decoded, Hypothesis, Trace
from decoding.sampling import sample
from decoding.transition_scores import compute_transition_scores
from decoding.tree import TreeSearchResult, exhaustive_tree_search

__all__ += [
    "greedy_search",
    "sample",
    "beam_search",
    "beam_sample",
    "exhaustive_tree_search",
    "compute_transition_scores",
    "assisted_greedy_search",
    "assisted_sample",
    "DraftModel",
    "PromptLookup",
    "AssistStats",
    "TreeSearchResult",
    "Decoded",
    "Hypothesis",
    "Beam",
    "Trace",
]
