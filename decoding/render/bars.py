"""Per-step probability bars: what the decoder saw before each choice, as Graphviz DOT.

One table per decoded row and step (a sample, or a live beam): the most probable tokens, each
with a bar as long as the model's probability, the chosen token(s) marked ◀, and a dashed line
where the warpers (top-k, top-p, min-p, typical) cut the distribution, with how many tokens
they kept. When warpers or processors changed the distribution, a row also shows the
probability the token was actually drawn with (model % → used %).
"""

from __future__ import annotations

from decoding.render.colors import scale_color
from decoding.render.dot import Decode, Edge, Graph, Node, html_escape, ids_as_text, token_label
from decoding.results import Decoded, RowStep, Trace

BAR_WIDTH = 160  # points for probability 1.0
BAR_HEIGHT = 11


def bars_dot(
    result: Trace | Decoded,
    decode: Decode = ids_as_text,
    *,
    top: int = 10,
    max_steps: int = 8,
) -> str:
    """DOT text of the bars of the first `max_steps` steps, `top` tokens each."""
    return bars_graph(result, decode, top=top, max_steps=max_steps).to_dot()


def bars_graph(
    result: Trace | Decoded, decode: Decode = ids_as_text, *, top: int = 10, max_steps: int = 8
) -> Graph:
    """One table node per (step, row); invisible edges stack each row's steps top to bottom."""
    trace = result.trace if isinstance(result, Decoded) else result
    if not isinstance(trace, Trace):
        raise ValueError("no trace to draw: run the decoder with trace=True")
    graph = Graph(f"{trace.decoder} probabilities", attrs={"rankdir": "TB", "ranksep": "0.2"})
    graph.node_defaults = {"shape": "plaintext", "fontname": "Helvetica"}
    chains: dict[int, list[Node]] = {}  # row index -> its tables, step by step
    for step in trace.steps[:max_steps]:
        for row in step.rows:
            label = row_table(step.number, row, decode, top, many=len(step.rows) > 1)
            chains.setdefault(row.index, []).append(
                Node(f"s{step.number}r{row.index}", label, html=True)
            )
    for index in sorted(chains):  # row 0 first, so it is drawn leftmost
        nodes = chains[index]
        graph.nodes += nodes
        graph.edges += [Edge(a.id, b.id, {"style": "invis"}) for a, b in zip(nodes, nodes[1:])]
    return graph


def row_table(step: int, row: RowStep, decode: Decode, top: int, many: bool = False) -> str:
    """The HTML-like label of one row: header, kept tokens, the cutoff line, a footer."""
    ranked = sorted(row.candidates, key=lambda c: (-c.prob, -c.model_prob, c.token))
    kept = [c for c in ranked if c.prob > 0]
    changed = any(abs(c.prob - c.model_prob) > 5e-4 for c in ranked)
    where = html_escape(decode(row.sequence[-3:]).replace("\n", " "))
    header = f"<B>step {step}</B>" + (f" #{row.index}" if many else "")
    lines = [f'<TR><TD COLSPAN="3">{header}: after “…{where}”</TD></TR>']
    for c in kept[:top]:
        lines.append(bar_row(decode, c.token, c.model_prob, c.prob, c.token in row.chosen, changed))
    if len(kept) > top:
        lines.append(f'<TR><TD COLSPAN="3"><I>… {len(kept) - top} more kept</I></TD></TR>')
    for cut in row.cuts:
        lines.append(
            f'<TR><TD COLSPAN="3" BORDER="1" SIDES="T" STYLE="dashed" COLOR="red">'
            f'<FONT COLOR="red">{cut.name}={cut.param}: {cut.kept} kept</FONT></TD></TR>'
        )
    return '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1">' + "".join(lines) + "</TABLE>"


def bar_row(
    decode: Decode, token: int, model_prob: float, prob: float, chosen: bool, changed: bool
) -> str:
    """One token: its text, a bar of its model probability, the numbers, ◀ if chosen."""
    text = html_escape(token_label(token, decode))
    text = f"<B>{text}</B>" if chosen else text
    width = max(1, round(model_prob * BAR_WIDTH))
    bar = (
        f'<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>'
        f'<TD WIDTH="{width}" HEIGHT="{BAR_HEIGHT}" FIXEDSIZE="TRUE" '
        f'BGCOLOR="{scale_color(model_prob, 0.0, 1.0)}"></TD>'
        f'<TD WIDTH="{BAR_WIDTH + 1 - width}" HEIGHT="{BAR_HEIGHT}" FIXEDSIZE="TRUE"></TD>'
        f"</TR></TABLE>"
    )
    numbers = f"{model_prob:.1%}" + (f" → {prob:.1%}" if changed else "")
    mark = " ◀" if chosen else ""
    return (
        f'<TR><TD ALIGN="RIGHT">{text}</TD><TD>{bar}</TD><TD ALIGN="LEFT">{numbers}{mark}</TD></TR>'
    )
