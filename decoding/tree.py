"""The seed post's "beam search", named for what it is: an exhaustive top-b tree search.

The post expands every node into its b most likely children, all the way down to the given
depth, and only then picks the best leaf. Nothing is ever pruned: b**depth leaves and
1 + b + ... + b**(depth-1) expansions (32 leaves and 31 expansions for b = 2, depth = 5),
so the work grows exponentially with the depth.

Real beam search (beam.py) prunes at every step: of all the extensions of the live beams it
keeps only the K best, so it does K expansions per step, depth * K in all, and it can follow a
token that is not in any node's top b. The two agree only by luck; compare them on the same
prompt to see where they part.

Its leaf score is also the post's, not HF's: the sum of the generated tokens' log-probs
divided by the FULL length, prompt included (beam search divides by the generated length, to
the power length_penalty).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from decoding.common import (
    NextTokenLogits,
    as_prompt,
    ask_model,
    check_context,
    check_eos,
    check_positive_int,
    check_vocab,
)
from decoding.probs import largest, log_softmax
from decoding.results import Hypothesis, json_safe, number


@dataclass
class TreeNode:
    """One node of the tree: a sequence and how it was reached.

    token:   the token that made this node from its parent (None for the root, the prompt).
    prob:    the model's probability of `token` after the parent (1.0 for the root).
    logprob: the sum of the generated tokens' log-probs from the root down to here.
    score:   the post's sequence score, logprob / len(ids) (0.0 for the root).
    """

    ids: list[int]
    token: int | None
    prob: float
    logprob: float
    score: float
    depth: int
    parent: int | None  # index into TreeSearchResult.nodes
    children: list[int] = field(default_factory=list)


@dataclass
class TreeSearchResult:
    """The whole tree (it doubles as the trace), breadth-first: nodes[0] is the prompt."""

    prompt: list[int]
    nodes: list[TreeNode]
    expansions: int  # how many nodes were sent to the model

    @property
    def leaves(self) -> list[TreeNode]:
        """The nodes that were not expanded, in breadth-first order."""
        return [n for n in self.nodes if not n.children and n.depth > 0]

    @property
    def best(self) -> Hypothesis:
        """The leaf with the highest post score (the first one on a tie); score = that score."""
        return self.best_leaves(1)[0]

    def best_leaves(self, n: int) -> list[Hypothesis]:
        """The n leaves with the highest post score, best first (ties: breadth-first order).

        >>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]]))
        >>> tree = exhaustive_tree_search(lambda s: table[[q[-1] for q in s]], [1], depth=2)
        >>> [h.ids for h in tree.best_leaves(2)]
        [[1, 0, 1], [1, 2, 2]]
        """
        leaves = self.leaves
        if not (isinstance(n, int) and 1 <= n <= len(leaves)):
            raise ValueError(
                f"num_return_sequences must be between 1 and the tree's {len(leaves)} leaves, "
                f"got {n!r}"
            )
        ranked = sorted(leaves, key=lambda leaf: -leaf.score)[:n]  # sorted() is stable
        return [Hypothesis(leaf.ids, len(self.prompt), leaf.logprob, leaf.score) for leaf in ranked]

    def to_json(self) -> dict:
        """The tree as JSON-ready dicts and lists: the tree search's trace (see Trace.to_json)."""
        return json_safe(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> TreeSearchResult:
        """The tree that `to_json` wrote."""
        nodes = [TreeNode(n["ids"], n["token"], n["prob"], number(n["logprob"]),
                          number(n["score"]), n["depth"], n["parent"], n["children"])
                 for n in data["nodes"]]  # fmt: skip
        return cls(data["prompt"], nodes, data["expansions"])

    def __str__(self) -> str:
        lines = [f"top-b tree from {self.prompt}: {self.expansions} expansions"]
        for node in self.nodes[1:]:
            indent = "  " * node.depth
            lines.append(f"{indent}{node.token}  p={node.prob:.3f}  score={node.score:.3f}")
        return "\n".join(lines)


def exhaustive_tree_search(
    next_token_logits: NextTokenLogits,
    prompt: list[int],
    *,
    branching: int = 2,
    depth: int = 5,
    eos_token_id: int | None = None,
) -> TreeSearchResult:
    """Expand every node into its `branching` most likely children down to `depth`.

    One model call per level, with every node of that level. A node that ends with
    `eos_token_id` (when given) is a leaf and is not expanded; otherwise the tree has
    branching**depth leaves. Children are ordered by probability (ties: lower token id).

    >>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]]))
    >>> bigram = lambda seqs: table[[s[-1] for s in seqs]]
    >>> tree = exhaustive_tree_search(bigram, [1], branching=2, depth=3)
    >>> len(tree.leaves), tree.expansions, tree.best.ids
    (8, 7, [1, 0, 1, 0])
    """
    prompt = as_prompt(prompt)
    branching = check_positive_int("branching", branching)
    depth = check_positive_int("depth", depth)
    check_context(next_token_logits, [prompt], depth)
    eos = check_eos(eos_token_id)
    nodes = [TreeNode(list(prompt), None, 1.0, 0.0, 0.0, 0, None)]
    frontier = [0]  # indices of the nodes to expand at this level
    expansions = 0

    for level in range(1, depth + 1):
        if not frontier:
            break
        logits = ask_model(next_token_logits, [nodes[i].ids for i in frontier])
        if level == 1:
            check_vocab(logits.shape[1], [prompt], eos)
            if branching > logits.shape[1]:
                raise ValueError(
                    f"branching {branching} exceeds the vocabulary ({logits.shape[1]})"
                )
        expansions += len(frontier)
        logp = log_softmax(logits)
        next_frontier = []
        for row, parent_index in enumerate(frontier):
            parent = nodes[parent_index]
            for token in largest(logp[row], branching).tolist():
                ids = parent.ids + [token]
                logprob = parent.logprob + float(logp[row, token])
                child = TreeNode(
                    ids, token, float(np.exp(logp[row, token])), logprob, logprob / len(ids), level,
                    parent_index,
                )  # fmt: skip
                parent.children.append(len(nodes))
                nodes.append(child)
                if token != eos:
                    next_frontier.append(len(nodes) - 1)
        frontier = next_frontier
    return TreeSearchResult(prompt, nodes, expansions)
