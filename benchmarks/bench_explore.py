"""How long does the explorer's page wait for a step? Timed over HTTP, as the page asks.

The page (minigpt/explore/) starts a traced run at the first Step or Run (POST /api/start);
the run goes on in the background, and each Step asks for the next step (POST /api/steps with
upto = the steps shown + 1), answered as soon as the decoder has recorded it. So:

- first Step: from sending /api/start to having read /api/steps' answer for step 1 (the
  prompt's forward pass, step 1, its JSON), what the first click waits for;
- later Steps: each /api/steps answer for one more step, asked the moment the previous one
  arrived (the worst case: a page clicking faster than the model decodes); the median and the
  slowest of a run's later steps;
- whole run: POST /api/run's answer time, and that divided by the steps (what one step of
  decoding, tracing and JSON costs the server).

Each request runs on the bundled model and on a random checkpoint of the full gpt2 (124M)
shape (built once into weights/random-gpt2/ by weights/scripts/make_random.py, as
bench_generate.py does). Best of --repeats, after one warm-up, through a real server on
127.0.0.1 in this process, with http.client.

    .venv/bin/python benchmarks/bench_explore.py            # the table (about a minute)
    .venv/bin/python benchmarks/bench_explore.py --json     # a dict for machines
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "weights" / "random-gpt2"
PROMPT = "Once upon a time"
# The page's requests: each strategy with its table defaults but the length.
REQUESTS = {
    "greedy": {"strategy": "greedy"},
    "beam (4 beams)": {"strategy": "beam", "options": {"num_beams": 4}},
    "sample (top-k 50)": {"strategy": "sample", "options": {"top_k": 50, "seed": 0}},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    built = "the gpt2-shaped model; the default is built with --preset gpt2 if missing"
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help=built)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="BLAS threads")
    p.add_argument("--repeats", type=int, default=5, help="timed answers per figure; best kept")
    p.add_argument("--new-tokens", type=int, default=20, help="max_new_tokens of each run")
    p.add_argument("--json", action="store_true", help="print a JSON dict instead of the table")
    p.add_argument("--no-gpt2", action="store_true", help="only the bundled model")
    return p.parse_args(argv)


def cpu_name() -> str:
    """`lscpu`'s model name (what the figures were measured on), or the platform's."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        import platform

        return platform.processor() or "unknown"
    names = [line.split(":", 1)[1].strip() for line in out.splitlines()
             if line.startswith("Model name")]  # fmt: skip
    return names[0] if names else "unknown"


def ask(port: int, path: str, value: dict) -> dict:
    """POST a JSON value and read and parse the whole answer."""
    body = json.dumps(value).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    if response.status != 200:
        raise SystemExit(f"bench_explore: the server refused {body!r}: {answer['error']}")
    return answer


def answer_time(port: int, request: dict) -> tuple[float, dict]:
    """Seconds from sending POST /api/run to having its whole answer."""
    started = time.perf_counter()
    answer = ask(port, "/api/run", request)
    return time.perf_counter() - started, answer


def stepped_times(port: int, request: dict) -> list[float]:
    """Seconds of each step's answer as the page asks for them one at a time: the first from
    sending /api/start, each later one from sending its /api/steps (right after the last)."""
    times, shown, done = [], 0, False
    started = time.perf_counter()
    run_id = ask(port, "/api/start", request)["run_id"]
    while not done:
        answer = ask(port, "/api/steps", {"run_id": run_id, "upto": shown + 1})
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        shown, done = steps_of(answer), answer["done"]
    return times


def first_and_all(times: list[float]) -> tuple[float, list[float]]:
    return times[0], times


def best(measure, repeats: int):
    """The quickest of `repeats` measurements, after one warm-up (first-call costs: the
    head's copy, page faults). `measure()` returns (seconds, detail)."""
    measure()
    return min((measure() for _ in range(repeats)), key=lambda m: m[0])


def steps_of(answer: dict) -> int:
    trace = answer["trace"]
    if "nodes" in trace:
        return max(node["depth"] for node in trace["nodes"])
    return len(trace["steps"])


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def measure_model(model: str | None, args) -> dict:
    """Every request's figures on one model, through a server of its own."""
    from minigpt.cli.session import open_session
    from minigpt.explore.server import make_server

    server = make_server(open_session(model), 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    figures = {}
    try:
        for name, request in REQUESTS.items():
            full = {**request, "prompt": PROMPT, "max_new_tokens": args.new_tokens}
            seconds, answer = best(lambda full=full: answer_time(port, full), args.repeats)
            # The run whose first step came quickest; its later steps as they came.
            first, times = best(lambda full=full: first_and_all(stepped_times(port, full)),
                                args.repeats)  # fmt: skip
            later = times[1:] or [0.0]
            steps = steps_of(answer)
            figures[name] = {
                "steps": steps,
                "run_ms": 1000 * seconds,
                "per_step_ms": 1000 * seconds / steps,
                "first_step_ms": 1000 * first,
                "later_step_median_ms": 1000 * median(later),
                "later_step_max_ms": 1000 * max(later),
                "answer_kb": len(json.dumps(answer)) / 1024,
            }
    finally:
        server.shutdown()
        server.server_close()
    return figures


def print_table(results: dict) -> None:
    print(f"minigpt explore: a step's answer time on {results['cpu']}, "
          f"{results['threads']} threads, {results['new_tokens']} new tokens a run")  # fmt: skip
    print(f"{'model':<16}{'request':<20}{'steps':>6}{'first Step':>12}{'later, median':>15}"
          f"{'slowest':>11}{'whole run':>11}{'per step':>10}{'answer':>9}")  # fmt: skip
    for model, figures in results["models"].items():
        for name, f in figures.items():
            print(f"{model:<16}{name:<20}{f['steps']:>6}{f['first_step_ms']:>9.1f} ms"
                  f"{f['later_step_median_ms']:>12.1f} ms{f['later_step_max_ms']:>8.1f} ms"
                  f"{f['run_ms']:>8.0f} ms{f['per_step_ms']:>7.1f} ms"
                  f"{f['answer_kb']:>6.0f} KB")  # fmt: skip
    print("first Step = /api/start until step 1's answer; later = each next step's answer, asked")
    print("at once; whole run = /api/run's answer; per step = that / its steps")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy is imported
    sys.path.insert(0, str(ROOT))
    models = {"minigpt-tiny": None}
    if not args.no_gpt2:
        from benchmarks.measure import ensure_checkpoint

        models["gpt2 (124M)"] = str(ensure_checkpoint(args.checkpoint))
    results = {
        "cpu": cpu_name(),
        "threads": args.threads,
        "new_tokens": args.new_tokens,
        "models": {label: measure_model(model, args) for label, model in models.items()},
    }
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
