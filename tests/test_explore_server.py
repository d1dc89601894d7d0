"""The explorer's server: 127.0.0.1 only, a request means what the same `generate` flags mean,
bad requests are one-line 400s naming the option, sizes are bounded, runs can be cancelled.

Every answer is compared with `minigpt generate --json --trace FILE` run for the same flags in
this process: the page shows the CLI's own results, so the two must be equal, field for field.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time

import numpy as np
import pytest
from cli_runner import run_in_process
from explore_helpers import call, gated, post, serving

from decoding.greedy import greedy_search
from minigpt.cli.generate import token_ids_in
from minigpt.cli.strategies import STRATEGIES, Strategy, run_greedy
from minigpt.explore.api import MAX_BODY_BYTES, MAX_PROMPT_TOKENS, CancellableLogits, Cancelled
from minigpt.explore.server import static_dir

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def server():
    with serving() as (_, server):
        yield server


def cli_answer(capsys, tmp_path, request: dict) -> tuple[dict, dict]:
    """(--json output, --trace file) of `minigpt generate` with the flags `request` stands for."""
    argv = ["generate", request["prompt"], "--strategy", request["strategy"], "--json",
            "--trace", str(tmp_path / "trace.json")]  # fmt: skip
    if "max_new_tokens" in request:
        argv += ["--max-new-tokens", str(request["max_new_tokens"])]
    for name, value in request.get("options", {}).items():
        option = "--" + name.replace("_", "-")
        if value is True:  # a flag given or not (--renormalize-logits)
            argv.append(option)
        elif isinstance(value, list):  # a flag repeated (--stop-strings S)
            argv += [word for v in value for word in (option, v)]
        else:
            argv += [option, str(value)]
    status, out, err = run_in_process(capsys, *argv)
    assert status == 0, err
    return json.loads(out), json.loads((tmp_path / "trace.json").read_text())


# ----------------------------------------------------------------------------- where it listens


def other_addresses() -> list[str]:
    """This machine's IPv4 addresses that are not loopback (there may be none)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({info[4][0] for info in infos if not info[4][0].startswith("127.")})


def test_the_server_listens_on_127_0_0_1_only(server):
    assert server.server_address[0] == "127.0.0.1"
    port = server.server_address[1]
    for address in other_addresses():
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=2).close()


def test_a_request_for_another_host_name_is_refused(server):
    # A page elsewhere whose DNS name points at 127.0.0.1 sends its own name as the Host.
    status, answer = call(server, "GET", "/api/strategies", headers={"Host": "evil.example:80"})
    assert status == 403 and "127.0.0.1" in answer["error"]


# -------------------------------------------------------------------- answers equal the CLI's

REQUESTS = [
    {"strategy": "greedy", "prompt": PROMPT, "max_new_tokens": 6},
    {"strategy": "beam", "prompt": PROMPT, "max_new_tokens": 5,
     "options": {"num_beams": 3, "num_return_sequences": 2, "early_stopping": "never"}},
    {"strategy": "sample", "prompt": PROMPT, "max_new_tokens": 6,
     "options": {"seed": 7, "top_k": 9, "top_p": 0.8, "temperature": 1.3}},
    {"strategy": "beam-sample", "prompt": PROMPT, "max_new_tokens": 5,
     "options": {"num_beams": 3, "seed": 1, "top_k": 10}},
    {"strategy": "tree", "prompt": PROMPT, "max_new_tokens": 3, "options": {"num_beams": 2}},
    {"strategy": "greedy", "prompt": "a cat and a cat and a", "max_new_tokens": 6,
     "options": {"prompt_lookup_num_tokens": 3}},
    {"strategy": "sample", "prompt": PROMPT, "max_new_tokens": 6,
     "options": {"seed": 3, "assistant_model": "minigpt-tiny-draft", "num_assistant_tokens": 3}},
    {"strategy": "sample", "prompt": PROMPT, "max_new_tokens": 8,
     "options": {"seed": 2, "top_k": 20, "renormalize_logits": True,
                 "stop_strings": [" the", "."], "min_new_tokens": 2}},
    {"strategy": "greedy", "prompt": PROMPT, "max_new_tokens": 12,
     "options": {"stop_strings": "girl"}},  # stops at step 6, in the word it ends
]  # fmt: skip


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r['strategy']}-{r.get('options')}")
def test_an_answer_is_what_generate_json_and_trace_give(server, capsys, tmp_path, request_):
    status, answer = post(server, "/api/run", request_)
    assert status == 200, answer
    printed, trace_file = cli_answer(capsys, tmp_path, request_)
    assert answer["prompt_ids"] == printed["prompt_ids"]
    assert answer["sequences"] == printed["sequences"]
    assert answer.get("assistant") == printed.get("assistant")
    assert answer["trace"] == trace_file["trace"]
    assert answer["strategy"] == trace_file["strategy"]
    assert trace_file["token_text"].items() <= answer["token_text"].items()


def test_values_may_be_typed_as_text_as_the_page_sends_them(server):
    typed = {"num_beams": "3", "length_penalty": "0.5", "early_stopping": "true"}
    numbers = {"num_beams": 3, "length_penalty": 0.5, "early_stopping": True}
    base = {"strategy": "beam", "prompt": PROMPT, "max_new_tokens": 4}
    status_a, a = post(server, "/api/run", {**base, "options": typed})
    status_b, b = post(server, "/api/run", {**base, "options": numbers})
    assert status_a == status_b == 200
    assert a["request"] == b["request"] and a["trace"] == b["trace"]
    assert a["request"]["options"]["early_stopping"] is True


def test_a_sample_without_seed_says_which_seed_repeats_it(server):
    request = {"strategy": "sample", "prompt": PROMPT, "max_new_tokens": 5}
    _, first = post(server, "/api/run", request)
    seed = first["request"]["options"]["seed"]
    assert any(f"--seed {seed}" in note for note in first["notes"])
    _, again = post(server, "/api/run", {**request, "options": {"seed": seed}})
    assert again["sequences"] == first["sequences"] and again["trace"] == first["trace"]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_the_early_stopping_marks_are_where_each_mode_stops(server, length_penalty):
    # With "," as EOS (token 12 of the bundled vocabulary) beams finish early, and the three
    # modes stop at different steps. The marks of one run must say where each mode's own run
    # stopped: the longest run's marks predict the other two.
    def run(mode: str) -> dict:
        options = {"num_beams": 3, "early_stopping": mode, "length_penalty": length_penalty}
        status, answer = post(server, "/api/run", {"strategy": "beam", "prompt": PROMPT,
                                                   "max_new_tokens": 12, "eos_token_id": 12,
                                                   "options": options})  # fmt: skip
        assert status == 200, answer
        return answer

    answers = {mode: run(mode) for mode in ("true", "false", "never")}
    stopped = {mode: len(a["trace"]["steps"]) for mode, a in answers.items()}
    assert len(set(stopped.values())) > 1, "the modes should part here"
    assert answers["never"]["early_stopping_steps"] == stopped
    for mode, answer in answers.items():  # every run marks its own stop where it stopped
        assert answer["early_stopping_steps"][mode] == stopped[mode]


def test_greedy_has_no_early_stopping_marks(server):
    _, answer = post(server, "/api/run", {"prompt": PROMPT, "max_new_tokens": 3})
    assert answer["early_stopping_steps"] is None


# --------------------------------------------------------------------------- bad requests

BAD = [
    (b"{not json", None, "not JSON"),
    (b"[1, 2]", None, "JSON object"),
    ({"strategy": "nope", "prompt": PROMPT}, "strategy", "nope"),
    ({"strategy": "sample", "prompt": PROMPT, "options": {"top_p": 2}}, "top_p", "(0, 1]"),
    ({"strategy": "sample", "prompt": PROMPT, "options": {"seed": -1}}, "seed", "-1"),
    ({"strategy": "beam", "prompt": PROMPT, "options": {"num_beams": "x"}}, "num_beams", "'x'"),
    ({"strategy": "beam", "prompt": PROMPT, "options": {"num_beams": 2.5}}, "num_beams", "2.5"),
    ({"strategy": "beam", "prompt": PROMPT, "options": {"num_beams": 100}}, "num_beams", "limit"),
    ({"strategy": "beam", "prompt": PROMPT, "options": {"early_stopping": "maybe"}},
     "early_stopping", "maybe"),
    ({"prompt": PROMPT, "options": {"num_beams": 3}}, "num_beams", "does not apply"),
    ({"prompt": PROMPT, "max_new_tokens": 10_000}, "max_new_tokens", "limit"),
    ({"prompt": PROMPT, "max_new_tokens": 0}, "max_new_tokens", "0"),
    ({"prompt": PROMPT, "max_new_tokens": "5"}, "max_new_tokens", "integer"),
    ({"strategy": "tree", "prompt": PROMPT, "max_new_tokens": 12}, "num_beams", "nodes"),
    ({"prompt": PROMPT, "options": {"bogus": 1}}, None, "bogus"),
    ({"prompt": PROMPT, "colour": "red"}, None, "colour"),
    ({"prompt": ""}, None, "empty"),
    ({"prompt_ids": [1, -2]}, "prompt_ids", "token ids"),
    ({"prompt": PROMPT, "options": {"renormalize_logits": "true"}}, "renormalize_logits",
     "true or false"),
    ({"prompt": PROMPT, "options": {"stop_strings": [1]}}, "stop_strings", "list of strings"),
    ({"prompt": PROMPT, "options": {"stop_strings": []}}, "stop_strings", "list of strings"),
]  # fmt: skip


@pytest.mark.parametrize("body, option, word", BAD, ids=[w for _, _, w in BAD])
def test_a_bad_request_is_a_400_with_one_line_naming_the_option(server, body, option, word):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer = call(server, "POST", "/api/run", raw, {"Content-Type": "application/json"})
    assert status == 400, answer
    assert "\n" not in answer["error"] and word in answer["error"], answer
    assert answer["option"] == option, answer
    if option is not None:
        assert "--" + option.replace("_", "-") in answer["error"]


def test_an_oversized_body_is_refused_without_being_read(server):
    body = json.dumps({"prompt": "x" * MAX_BODY_BYTES}).encode()
    status, answer = call(server, "POST", "/api/run", body, {"Content-Type": "application/json"})
    assert status == 413 and str(MAX_BODY_BYTES) in answer["error"]
    status, _ = call(server, "GET", "/api/strategies")  # the server still answers
    assert status == 200


def test_a_prompt_over_the_token_limit_is_refused(server):
    status, answer = post(server, "/api/run", {"prompt_ids": [5] * (MAX_PROMPT_TOKENS + 1)})
    assert status == 400 and str(MAX_PROMPT_TOKENS) in answer["error"]


def test_an_unknown_path_is_a_json_404(server):
    assert call(server, "GET", "/nowhere")[0] == 404
    assert call(server, "POST", "/api/nowhere", b"{}", {"Content-Length": "2"})[0] == 404


# --------------------------------------------------------------------------------- cancel


def test_a_cancelled_run_answers_409(server):
    explorer = server.RequestHandlerClass.explorer
    answers = []
    with explorer.turn:  # another run is going: this one waits its turn, cancellable
        waiting = threading.Thread(target=lambda: answers.append(post(server, "/api/run", {
            "prompt": PROMPT, "max_new_tokens": 5, "run_id": "wait-1"})))  # fmt: skip
        waiting.start()
        deadline = time.monotonic() + 30
        while "wait-1" not in explorer.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert post(server, "/api/cancel", {"run_id": "wait-1"}) == (
            200, {"run_id": "wait-1", "cancelled": True})  # fmt: skip
    waiting.join(timeout=30)
    ((status, answer),) = answers
    assert status == 409 and "cancelled" in answer["error"]
    assert post(server, "/api/cancel", {"run_id": "wait-1"})[1]["cancelled"] is False


def test_cancelling_stops_a_decoder_at_its_next_model_call():
    table = np.random.default_rng(0).standard_normal((7, 7)).astype(np.float32)
    cancelled, calls = threading.Event(), []

    def model(sequences):
        calls.append(len(sequences))
        if len(calls) == 3:
            cancelled.set()  # the page's Cancel, arriving during the third forward pass
        return table[[s[-1] for s in sequences]]

    with pytest.raises(Cancelled):
        greedy_search(CancellableLogits(model, cancelled), [1], max_new_tokens=50)
    assert len(calls) == 3


# --------------------------------------------------------------- steps while the run goes on


def units(answer: dict) -> int:
    trace = answer["trace"]
    return len(trace["rounds"]) if trace.get("rounds") else len(trace.get("steps", []))


def steps_as_the_page_asks(server, request: dict, live: bool) -> list[dict]:
    """Start a run, then ask for one more step at a time, letting the model make one more
    forward pass only after each answer. As the page does, each request says how many steps
    (and rounds) are held already, and each answer's new ones are put after them. Returns
    every answer so joined (the last one done), then the whole answer asked for afresh."""
    with gated(server) as permits:
        status, started = post(server, "/api/start", request)
        assert status == 200, started
        permits.release(1 if live else 10**6)  # a run served only at its end must not wait
        answers, held, texts = [], {"steps": [], "rounds": []}, {}
        while not answers or not answers[-1]["done"]:
            since = {key: len(held[key]) for key in held}
            ask = {"run_id": started["run_id"], "upto": (units(answers[-1]) if answers else 0) + 1,
                   "since": since}  # fmt: skip
            status, answer = post(server, "/api/steps", ask)
            assert status == 200, answer
            if "steps" in answer["trace"]:  # (a tree search's trace comes whole)
                assert answer["since"] == since
                for key in held:
                    held[key] = held[key] + answer["trace"][key]
                answer["trace"] = {**answer["trace"], **held}
            texts |= answer["token_text"]  # the text of the tokens the new steps mention
            answers.append({**answer, "token_text": dict(texts)})
            permits.release()
        status, whole = post(server, "/api/steps", {"run_id": started["run_id"]})
        assert status == 200 and whole["since"] == {"steps": 0, "rounds": 0}
    return answers + [whole]


# The run's trace is the one the decoder fills (served step by step), or one made at the end:
# the tree search has none while it runs, assisted sampling of 2 samples merges two traces.
PROGRESSIVE = [(r, True) for r in REQUESTS if r["strategy"] != "tree"] + [
    (next(r for r in REQUESTS if r["strategy"] == "tree"), False),
    ({"strategy": "sample", "prompt": PROMPT, "max_new_tokens": 5, "options": {
        "seed": 4, "num_return_sequences": 2, "prompt_lookup_num_tokens": 2}}, False),
]  # fmt: skip


@pytest.mark.parametrize("request_, live", PROGRESSIVE,
                         ids=lambda r: f"{r['strategy']}-{r.get('options')}" if isinstance(r, dict)
                         else str(r))  # fmt: skip
def test_steps_served_while_the_run_goes_on_are_its_final_traces_steps(
    server, capsys, tmp_path, request_, live
):
    *answers, whole = steps_as_the_page_asks(server, request_, live)
    final = answers[-1]
    printed, trace_file = cli_answer(capsys, tmp_path, request_)
    assert whole["trace"] == final["trace"] == trace_file["trace"]
    assert whole["sequences"] == final["sequences"] == printed["sequences"]
    if not live:  # answered once, at the end
        assert len(answers) == 1
        return
    # The first step answered while the model was held at its next forward pass: the run was
    # provably not over. Each answer then brought at least one more step.
    assert not answers[0]["done"] and units(answers[0]) >= 1
    assert [units(a) for a in answers] == sorted(set(units(a) for a in answers))
    for answer in answers:
        trace = answer["trace"]
        for key in ("steps", "rounds"):
            assert trace[key] == final["trace"][key][: len(trace[key])]
        assert answer["request"] == final["request"] and answer["prompt_ids"] == final["prompt_ids"]
        assert token_ids_in(trace) <= {int(t) for t in answer["token_text"]}
        marks = answer["early_stopping_steps"] or {}
        assert all(at is None or final["early_stopping_steps"][m] == at for m, at in marks.items())


def test_a_beam_searchs_early_stopping_marks_show_up_as_the_steps_come(server):
    request = {"strategy": "beam", "prompt": PROMPT, "max_new_tokens": 12, "eos_token_id": 12,
               "options": {"num_beams": 3, "early_stopping": "never"}}  # fmt: skip
    answers = steps_as_the_page_asks(server, request, True)[:-1]
    final = answers[-1]["early_stopping_steps"]
    assert any(at is not None for at in final.values())
    for answer in answers:  # a mode's mark appears once the step it stops after is served
        shown = units(answer)
        expected = {m: at if at is not None and at <= shown else None for m, at in final.items()}
        assert answer["early_stopping_steps"] == expected


def test_a_run_cancelled_mid_way_answers_409_once_its_first_step_was_served(server):
    explorer = server.RequestHandlerClass.explorer
    request = {"prompt": PROMPT, "max_new_tokens": 8, "run_id": "mid-1"}
    with gated(server) as permits:
        assert post(server, "/api/start", request) == (200, {"run_id": "mid-1"})
        permits.release()
        status, first = post(server, "/api/steps", {"run_id": "mid-1", "upto": 1})
        assert status == 200 and not first["done"] and units(first) == 1
        assert post(server, "/api/cancel", {"run_id": "mid-1"}) == (
            200, {"run_id": "mid-1", "cancelled": True})  # fmt: skip
        permits.release()  # the forward pass it is held in ends; the next model call stops it
        status, answer = post(server, "/api/steps", {"run_id": "mid-1", "upto": None})
    assert status == 409 and "cancelled" in answer["error"]
    assert "mid-1" not in explorer.running


def test_a_step_count_of_zero_answers_at_once_with_no_step(server):
    with gated(server):  # the model never runs: the answer cannot have waited for it
        _, started = post(server, "/api/start", {"prompt": PROMPT, "max_new_tokens": 3})
        status, answer = post(server, "/api/steps", {"run_id": started["run_id"], "upto": 0})
        assert status == 200 and not answer["done"] and units(answer) == 0
        assert answer["prompt_ids"] and str(answer["prompt_ids"][0]) in answer["token_text"]
        post(server, "/api/cancel", started)


@pytest.mark.parametrize("body, word", [
    ({"run_id": "never-started", "upto": 1}, "start it again"),
    ({"run_id": "x", "upto": -1}, "upto"),
    ({"run_id": "x", "upto": "2"}, "upto"),
    ({"upto": 1}, "run_id"),
    ({"run_id": "x", "prompt": PROMPT}, "prompt"),
    ({"run_id": "x", "since": {"steps": -1}}, "since"),
    ({"run_id": "x", "since": {"beams": 2}}, "since"),
    ({"run_id": "x", "since": 3}, "since"),
])  # fmt: skip
def test_a_bad_steps_request_is_a_400_in_one_line(server, body, word):
    status, answer = post(server, "/api/steps", body)
    assert status == 400 and word in answer["error"] and "\n" not in answer["error"], answer


def test_a_bad_option_the_decoder_refuses_is_a_400_from_steps_before_any_model_call(server):
    # The CLI's own checks answer /api/start; the decoder checks the rest at its door. The
    # model has no permit here: had the run reached a forward pass, no answer would come.
    with gated(server):
        assert post(server, "/api/start", {"prompt_ids": [5, -1]})[0] == 400
        status, started = post(server, "/api/start", {"strategy": "sample", "prompt": PROMPT,
                                                      "options": {"top_p": 2}})  # fmt: skip
        assert status == 200
        status, answer = post(server, "/api/steps", {"run_id": started["run_id"], "upto": 1})
    assert status == 400 and answer["option"] == "top_p" and "(0, 1]" in answer["error"]


def test_a_run_that_fails_by_a_bug_answers_500_instead_of_leaving_the_page_waiting(server):
    explorer = server.RequestHandlerClass.explorer

    def broken():
        raise RuntimeError("no model here")

    explorer.model_logits = broken
    try:
        status, answer = post(server, "/api/run", {"prompt": PROMPT, "max_new_tokens": 2})
    finally:
        del explorer.model_logits  # the class's own again
    assert status == 500 and "no model here" in answer["error"]


def test_the_server_keeps_a_bounded_number_of_runs(server):
    explorer = server.RequestHandlerClass.explorer
    ids = [f"bound-{i}" for i in range(explorer.MAX_RUNS + 3)]
    with gated(server):  # none of them can end: the oldest are dropped, cancelled
        for run_id in ids:
            post(server, "/api/start", {"prompt": PROMPT, "max_new_tokens": 2, "run_id": run_id})
        assert len(explorer.runs) == explorer.MAX_RUNS
        assert list(explorer.runs)[-explorer.MAX_RUNS :] == ids[-explorer.MAX_RUNS :]
        status, answer = post(server, "/api/steps", {"run_id": ids[0], "upto": 1})
        assert status == 400 and "start it again" in answer["error"]
        for run_id in ids:
            post(server, "/api/cancel", {"run_id": run_id})


# ------------------------------------------------------------------ the table and the page


def test_the_strategies_come_from_the_table_at_request_time(server, monkeypatch):
    entry = Strategy("plain", "greedy under another name", run_greedy, {"repetition_penalty": 1.5})
    monkeypatch.setitem(STRATEGIES, "plain", entry)
    status, table = call(server, "GET", "/api/strategies")
    assert status == 200
    listed = {s["name"]: s for s in table["strategies"]}
    assert list(listed) == list(STRATEGIES)
    (option,) = listed["plain"]["options"]
    assert option == {**option, "name": "repetition_penalty", "default": 1.5, "kind": "float"}
    status, answer = post(server, "/api/run", {"strategy": "plain", "prompt": PROMPT,
                                               "max_new_tokens": 2})  # fmt: skip
    assert status == 200 and answer["strategy"] == "plain"


def test_the_page_and_every_file_it_loads_are_served(server):
    status, page = call(server, "GET", "/")
    assert status == 200
    linked = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.decode())
    assert sorted(linked) == ["/static/explore.css", "/static/explore.js"]
    for path in linked:
        assert call(server, "GET", path)[0] == 200
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.decode()), "nothing from elsewhere"


@pytest.mark.parametrize("path", ["/static/../api.py", "/static/api.py", "/static/%2e%2e/api.py"])
def test_nothing_outside_static_is_served(server, path):
    assert call(server, "GET", path)[0] == 404


def test_the_static_files_are_the_packages(server):
    names = sorted(p.name for p in static_dir().iterdir())
    assert names == ["explore.css", "explore.js", "index.html"]


# ------------------------------------------------------------------------------- the command


def test_explore_refuses_a_bad_port_in_one_line(capsys):
    status, out, err = run_in_process(capsys, "explore", "--port", "70000", "--no-browser")
    assert status == 1 and not out
    assert err.count("\n") == 1 and "--port" in err


def test_explore_says_when_the_port_is_taken(capsys, server):
    port = str(server.server_address[1])
    status, out, err = run_in_process(capsys, "explore", "--port", port, "--no-browser")
    assert status == 1 and not out
    assert err.count("\n") == 1 and f"port {port} is in use" in err


def test_the_benchmark_runs_and_reports_every_request(capsys, monkeypatch):
    from benchmarks import bench_explore

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, ""))  # restored after main() sets them
    bench_explore.main(["--no-gpt2", "--repeats", "1", "--new-tokens", "3", "--json"])
    results = json.loads(capsys.readouterr().out)
    (figures,) = results["models"].values()
    assert set(figures) == set(bench_explore.REQUESTS)
    assert all(f["steps"] == 3 and f["per_step_ms"] > 0 for f in figures.values())
    assert all(0 < f["first_step_ms"] and f["later_step_median_ms"] <= f["later_step_max_ms"]
               for f in figures.values())  # fmt: skip
