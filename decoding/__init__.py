"""decoding: GPT-2's text decoders in NumPy, exact to Hugging Face generate()."""

# Probabilities, warpers and processors. (Decoders add their own lines and `__all__ += [...]`.)
from decoding.biasing import bad_words_ids, sequence_bias
from decoding.length_processors import exponential_decay_length_penalty, min_length, min_new_tokens
from decoding.pipeline import Pipeline
from decoding.probs import log_softmax, softmax
from decoding.processors import (
    Processors,
    banned_ngram_tokens,
    begin_suppress_tokens,
    no_repeat_ngram,
    renormalize_logits,
    repetition_penalty,
    suppress_tokens,
)
from decoding.stopping import MaxTime, max_time_reached, stop_strings
from decoding.warpers import (
    ScoreStep,
    Warpers,
    WarpStep,
    apply_temperature,
    count_kept,
    epsilon_cutoff,
    eta_cutoff,
    min_p_filter,
    top_h,
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
    "top_h",
    "epsilon_cutoff",
    "eta_cutoff",
    "count_kept",
    "Warpers",
    "WarpStep",
    "ScoreStep",
    "repetition_penalty",
    "no_repeat_ngram",
    "banned_ngram_tokens",
    "sequence_bias",
    "bad_words_ids",
    "min_length",
    "min_new_tokens",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
    "renormalize_logits",
    "Processors",
    "Pipeline",
    "stop_strings",
    "MaxTime",
    "max_time_reached",
]

# Decoders, their results and traces. Assisted decoding: greedy search and sampling with a
# drafter (a small model, or prompt lookup).
from decoding.assisted import assisted_greedy_search, assisted_sample
from decoding.beam import beam_search
from decoding.beam_sampling import beam_sample
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
