"""The rounds of assisted (speculative) decoding, as a Graph (see dot.py) and as DOT text.

One row per round, read left to right like the text:

    round 3  ->  ␣the  ->  ␣old  ->  ␣man  ->  ␣who    drafted: green, green, red, grey
    "…said"                     \\
                                  ->  ␣woman           the model's own token: blue, bold

- a drafted token the model accepted is green, the one it rejected red, and the ones drafted
  after it (never checked: the round ended at the rejection, or at an accepted EOS) grey and
  dashed;
- the model's own token (the "bonus") is blue with a bold border. It hangs off the last
  accepted token: in the place of the rejected one, or after the whole draft;
- the bold path through a row is what the round added to the text;
- each drafted token shows the model's p and the drafter's q of it; for sampling also the
  uniform u that decided (kept when u < min(1, p/q));
- for a sampling rejection, a table at the row's right end (a dashed edge leads to it from
  the model's token) shows what that token was drawn from: p, q and max(0, p - q) of the
  tokens that matter, and the residual norm(max(0, p - q)).

`tree_dot` draws this picture for any trace with rounds, so `minigpt generate ...
--assistant-model NAME --tree FILE` (or --prompt-lookup-num-tokens N) shows it.
"""

from __future__ import annotations

import math

from decoding.render.colors import GREEN, GREY, GREY_TEXT, RED
from decoding.render.dot import (
    Decode,
    Edge,
    Graph,
    Node,
    html_escape,
    ids_as_text,
    prompt_label,
    quote,
    token_label,
)
from decoding.results import ACCEPTED, REJECTED, Decoded, ResidualProb, Round, Trace

BLUE = (130, 175, 230)  # the model's own token, and the residual it may be drawn from
ORANGE = (245, 170, 90)  # the drafter's q in the bars
BOLD = {"penwidth": "2.5"}
BAR_WIDTH = 60  # points for probability 1.0
BAR_HEIGHT = 9
BAR_ROWS = 6  # tokens in a residual table


def hex_color(rgb: tuple[int, int, int]) -> str:
    """ "#rrggbb" of an (r, g, b) triple.

    >>> hex_color(BLUE)
    '#82afe6'
    """
    return "#" + "".join(f"{c:02x}" for c in rgb)


OUTCOME_STYLE = {
    ACCEPTED: {"fillcolor": hex_color(GREEN)},
    REJECTED: {"fillcolor": hex_color(RED)},
}
UNCHECKED_STYLE = {"fillcolor": GREY, "fontcolor": GREY_TEXT, "color": GREY_TEXT,
                   "style": "filled,rounded,dashed"}  # fmt: skip
BONUS_STYLE = {"fillcolor": hex_color(BLUE), **BOLD}


def rounds_dot(
    result: Trace | Decoded, decode: Decode = ids_as_text, *, max_rounds: int = 12
) -> str:
    """DOT text of the first `max_rounds` rounds of an assisted decoder's trace.

    >>> import numpy as np
    >>> from decoding import assisted_greedy_search
    >>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]]))
    >>> bigram = lambda seqs: table[[s[-1] for s in seqs]]
    >>> out = assisted_greedy_search(bigram, [0, 1, 0], max_new_tokens=6, trace=True,
    ...                              prompt_lookup_num_tokens=3)[0]  # "0 1 0": guess "1 0"
    >>> print(*out.trace.rounds, sep="\\n")
    #0 round 1: drafted [1:ok 0:ok] + model's 1 -> [1, 0, 1]
    #0 round 2: drafted [0:ok 1:ok] + model's 0 -> [0, 1, 0]
    >>> dot = rounds_dot(out)  # 4 green tokens (accepted guesses), 2 blue (the model's own)
    >>> dot.count(hex_color(GREEN)), dot.count(hex_color(BLUE) + '", penwidth')
    (4, 2)
    """
    return rounds_graph(result, decode, max_rounds=max_rounds).to_dot()


def rounds_graph(
    result: Trace | Decoded, decode: Decode = ids_as_text, *, max_rounds: int = 12
) -> Graph:
    """A row of nodes per round (see the module docstring); rows stacked top to bottom."""
    trace = result.trace if isinstance(result, Decoded) else result
    if not isinstance(trace, Trace):
        raise ValueError("no trace to draw: run the decoder with trace=True")
    if not trace.rounds:
        raise ValueError("no rounds to draw: the trace is not an assisted decoder's")
    sampling = "sampling" in trace.decoder
    graph = Graph(
        f"{trace.decoder} rounds",
        attrs={"rankdir": "LR", "fontname": "Helvetica", "nodesep": "0.15", "ranksep": "0.3",
               "newrank": "true"},
    )  # fmt: skip
    graph.node_defaults = {"shape": "box", "style": "filled,rounded", "fontname": "Helvetica"}
    samples = len({r.index for r in trace.rounds})
    shown = trace.rounds[:max_rounds]
    table_column = 2 + max(len(r.drafted) for r in shown)  # right of every row's last token
    for k, round_ in enumerate(shown):
        draw_round(graph, f"r{k}", round_, trace.prompt, decode, sampling, samples > 1,
                   table_column)  # fmt: skip
    # Invisible edges from each round's first node to the next one's keep the rows in order
    # (with constraint=false they do not push a row to the right of the one above it).
    for k in range(len(shown) - 1):
        graph.edges.append(Edge(f"r{k}", f"r{k + 1}", {"style": "invis", "constraint": "false"}))
    graph.attrs["label"] = legend(trace, shown, sampling)
    return graph


def draw_round(
    graph: Graph, name: str, r: Round, prompt: list[int], decode: Decode, sampling: bool,
    many: bool, table_column: int,
) -> None:  # fmt: skip
    """The nodes and edges of one round, named `name`, `name`d0, d1, ..., `name`b, `name`res.
    Its header is in column 0, drafted token i in column i + 1; a residual table goes in
    `table_column`."""
    where = (prompt_label(prompt, decode) if r.sequence_before == prompt
             else "…" + decode(r.sequence_before[-3:]).replace("\n", " "))  # fmt: skip
    title = (f"sample {r.index + 1}, " if many else "") + f"round {r.number}"
    added = "+" + plural(len(r.emitted), "token")
    kept = f"{r.accepted} of {len(r.drafted)} kept" if r.drafted else "nothing drafted"
    kept += f", {added}"
    if r.bonus is None:  # no token of the model's own: an accepted EOS ended the text
        kept += "\nthe text ended at an accepted EOS"
    graph.nodes.append(
        Node(name, f"{title}\nafter “{where}”\n{kept}", {"fillcolor": "white", "style": "rounded"})
    )
    parent, last_kept = name, name  # the bonus hangs off the last accepted token
    for i, d in enumerate(r.drafted):
        node = f"{name}d{i}"
        lines = [token_label(d.token, decode)]
        if d.p is None:
            attrs = dict(UNCHECKED_STYLE)
            lines.append(f"q {percent(d.q)} · not checked")
        else:
            attrs = dict(OUTCOME_STYLE[d.outcome])
            lines.append(f"p {percent(d.p)} · q {percent(d.q)}")
            if sampling:
                lines.append(sampling_rule(d.ratio, d.uniform))
            else:
                lines.append("the model's top ✓" if d.outcome == ACCEPTED else "not its top ✗")
        accepted = d.outcome == ACCEPTED
        if accepted:
            attrs.update(BOLD)
        graph.nodes.append(Node(node, "\n".join(lines), attrs))
        edge = dict(BOLD) if accepted else {"style": "dashed", "color": GREY_TEXT}
        graph.edges.append(Edge(parent, node, edge))
        parent = node
        if accepted:
            last_kept = node
    if r.bonus is None:
        return
    bonus = f"{name}b"
    graph.nodes.append(
        Node(bonus, f"{token_label(r.bonus.token, decode)}\n{bonus_note(r, sampling)}",
             dict(BONUS_STYLE))
    )  # fmt: skip
    graph.edges.append(Edge(last_kept, bonus, {**BOLD, "color": hex_color(BLUE)}))
    if r.residual_top:
        # The tables go right of every row, in a column of their own (the columns are shared by
        # all rows: a wide table among the tokens would widen its column in every row).
        table = f"{name}res"
        rejected = next(d.token for d in r.drafted if d.outcome == REJECTED)
        label = residual_table(r.residual_top, rejected, r.bonus.token, decode)
        graph.nodes.append(Node(table, label, {"shape": "plaintext", "style": ""}, html=True))
        minlen = table_column - len(r.drafted)  # from the last drafted token's column
        graph.edges.append(Edge(parent, table, {"style": "invis", "minlen": str(minlen)}))
        graph.edges.append(
            Edge(bonus, table, {"style": "dashed", "dir": "back", "color": hex_color(BLUE),
                                "label": quote("drawn from"), "fontname": "Helvetica",
                                "fontsize": "10", "constraint": "false"})
        )  # fmt: skip


def sampling_rule(ratio: float, uniform: float) -> str:
    """The check of one drafted token: kept when u < min(1, p/q)."""
    if ratio >= 1:
        return f"p/q {ratio:.2f} ≥ 1: kept"
    sign = "<" if uniform < ratio else "≥"
    return f"u {two_places(uniform)} {sign} p/q {two_places(ratio)}"


def percent(x: float) -> str:
    """A probability as a label shows it: whole percents from 10%, one decimal below, so that
    a small probability does not read as 0%.

    >>> percent(0.562), percent(0.062), percent(0.0004), percent(0.0)
    ('56%', '6.2%', '<0.1%', '0%')
    """
    if x == 0:
        return "0%"
    if x < 0.001:
        return "<0.1%"
    return f"{x:.1%}" if x < 0.1 else f"{x:.0%}"


def two_places(x: float) -> str:
    """x in [0, 1) to two decimals, never rounded up to 1.00 (0.9996 < 1 is why it was kept
    or refused), and three where two would not tell u and p/q apart.

    >>> two_places(0.256), two_places(0.9996)
    ('0.26', '0.999')
    """
    text = f"{x:.2f}"
    return f"{math.floor(x * 1000) / 1000:.3f}" if text == "1.00" else text


def bonus_note(r: Round, sampling: bool) -> str:
    """Where the model's own token came from, and its probability there."""
    prob = percent(r.bonus.prob)
    if not sampling:
        return f"model's top · p {prob}"
    if r.residual_top:
        return f"drawn from the residual · {prob}"
    return f"drawn from p · {prob}"


def residual_table(rows: list[ResidualProb], rejected: int, bonus: int, decode: Decode) -> str:
    """The HTML-like label: per token, bars of p, q and max(0, p - q) on one scale (the
    largest p or q in the table is a full bar), and the residual, max(0, p - q) / Z."""
    shown = rows[:BAR_ROWS] + [t for t in rows[BAR_ROWS:] if t.token in (rejected, bonus)]
    shown.sort(key=lambda t: rows.index(t))
    scale = max(max(t.p, t.q) for t in shown)
    head = "".join(f"<TD><B>{h}</B></TD>" for h in
                   ("p (model)", "q (drafter)", "max(0, p − q)", "residual"))  # fmt: skip
    lines = [f"<TR><TD></TD>{head}</TR>"]
    for t in shown:
        text = html_escape(token_label(t.token, decode))
        if t.token == bonus:
            text = f"<B>{text}</B> ◀"
        elif t.token == rejected:
            text = f'<FONT COLOR="{hex_color(RED)}"><B>{text}</B></FONT> ✗'
        cells = [bar(v, scale, rgb) for v, rgb in
                 [(t.p, GREEN), (t.q, ORANGE), (max(0.0, t.p - t.q), BLUE)]]  # fmt: skip
        lines.append(
            f'<TR><TD ALIGN="RIGHT">{text}</TD>{"".join(cells)}'
            f'<TD ALIGN="RIGHT">{html_escape(percent(t.prob))}</TD></TR>'
        )
    if len(rows) > len(shown):
        lines.append(f'<TR><TD COLSPAN="5"><I>… {len(rows) - len(shown)} more</I></TD></TR>')
    z = next((max(0.0, t.p - t.q) / t.prob for t in rows if t.prob > 0), 0.0)
    lines.append(
        f'<TR><TD COLSPAN="5" ALIGN="LEFT"><FONT POINT-SIZE="10">residual = max(0, p − q) / '
        f'{z:.3f}, the sum of max(0, p − q) over every token<BR ALIGN="LEFT"/>'
        f"✗ the rejected token · ◀ the model's token, drawn from the residual"
        f'<BR ALIGN="LEFT"/></FONT></TD></TR>'
    )
    return '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1">' + "".join(lines) + "</TABLE>"


def bar(prob: float, scale: float, rgb: tuple[int, int, int]) -> str:
    """One cell: a bar as long as prob / scale, with the number after it."""
    width = max(1, round(prob / scale * BAR_WIDTH)) if scale > 0 else 1
    return (
        f'<TD ALIGN="LEFT"><TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>'
        f'<TD WIDTH="{width}" HEIGHT="{BAR_HEIGHT}" FIXEDSIZE="TRUE" '
        f'BGCOLOR="{hex_color(rgb) if prob > 0 else "white"}"></TD>'
        f'<TD WIDTH="{BAR_WIDTH + 1 - width}" HEIGHT="{BAR_HEIGHT}" FIXEDSIZE="TRUE"></TD>'
        f'<TD><FONT POINT-SIZE="9"> {html_escape(percent(prob))}</FONT></TD></TR></TABLE></TD>'
    )


def plural(n: int, noun: str) -> str:
    """ "1 token", "2 tokens"."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def legend(trace: Trace, shown: list[Round], sampling: bool) -> str:
    rounds = trace.rounds
    drafted = sum(len(r.drafted) for r in rounds)
    accepted = sum(r.accepted for r in rounds)
    emitted = sum(len(r.emitted) for r in rounds)
    which = f" (the first {len(shown)} drawn)" if len(shown) < len(rounds) else ""
    rule = ("a guess is kept when u < min(1, p/q), u uniform in [0, 1)" if sampling
            else "a guess is kept when it is the model's most likely token")  # fmt: skip
    return (
        f"{trace.decoder}: {plural(len(rounds), 'round')}{which}, {accepted} of "
        f"{plural(drafted, 'drafted token')} accepted, {plural(emitted, 'token')} generated, "
        f"one model call per round\n"
        f"green = accepted · red = rejected · grey dashed = drafted after it, never checked · "
        f"blue = the model's own token · bold = what the round added to the text\n"
        f"p = the model's probability, q = the drafter's (100% for a certain guess); "
        f"{rule}"
    )
