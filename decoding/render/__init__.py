"""Pictures of what a decoder did, drawn from its trace as Graphviz DOT text.

- `tree_dot`: the search tree. Nodes are tokens, labelled with their probability or sequence
  score and coloured red (worst) -> yellow -> green (best); the chosen path is drawn bold; for
  beam search, the candidates it pruned are greyed.
- `rounds_dot`: the rounds of assisted (speculative) decoding, one row each: the drafted
  tokens green (accepted), red (rejected) or grey (never checked), each with the model's p and
  the drafter's q, and the model's own token in blue; `tree_dot` draws this for such a trace.
- `bars_dot`: per-step probability bars of the top tokens, the chosen token marked and the
  top-k / top-p / min-p / typical cutoff drawn as a dashed line.
- `save_picture`: write the DOT text, and render .svg/.png/.pdf with Graphviz's `dot` program
  when it is installed (DOT itself needs nothing: it is plain text).

Pictures never come from inside a decoder: run it with `trace=True`, then draw the trace.

>>> from decoding.tree import exhaustive_tree_search
>>> import numpy as np
>>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]]))
>>> tree = exhaustive_tree_search(lambda seqs: table[[s[-1] for s in seqs]], [1], depth=2)
>>> tree_dot(tree).count(" -> ")  # one edge into every node but the root (the prompt)
6
"""

from decoding.render.bars import bars_dot
from decoding.render.output import dot_available, save_picture
from decoding.render.rounds import rounds_dot
from decoding.render.tree import tree_dot

__all__ = ["tree_dot", "bars_dot", "rounds_dot", "save_picture", "dot_available"]
