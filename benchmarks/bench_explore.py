"""How long does the explorer's page wait for a step? Timed over HTTP, as the page asks.

The page (minigpt/explore/) asks the server for a whole traced run once, at the first Step or
Run; every later Step only reveals the next recorded step, in the browser, without asking the
server anything. So two numbers say how fast a step answers:

- per step: the run's answer time divided by its steps, what one step of decoding, tracing
  and JSON costs the server;
- first Step: the whole run's answer time, what the first click waits for;
plus a one-step run (max_new_tokens 1: the prompt's forward pass, one step, the JSON).

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


def answer_time(port: int, body: bytes) -> tuple[float, dict]:
    """Seconds from sending POST /api/run to having read and parsed its whole answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("POST", "/api/run", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise SystemExit(f"bench_explore: the server refused {body!r}: {answer['error']}")
    return elapsed, answer


def best_time(port: int, request: dict, repeats: int) -> tuple[float, dict]:
    body = json.dumps(request).encode()
    answer_time(port, body)  # warm-up: first-call costs (the head's copy, page faults)
    runs = [answer_time(port, body) for _ in range(repeats)]
    return min(runs, key=lambda run: run[0])


def steps_of(answer: dict) -> int:
    trace = answer["trace"]
    if "nodes" in trace:
        return max(node["depth"] for node in trace["nodes"])
    return len(trace["steps"])


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
            seconds, answer = best_time(port, full, args.repeats)
            one, _ = best_time(port, {**full, "max_new_tokens": 1}, args.repeats)
            steps = steps_of(answer)
            figures[name] = {
                "steps": steps,
                "run_ms": 1000 * seconds,
                "per_step_ms": 1000 * seconds / steps,
                "one_step_run_ms": 1000 * one,
                "answer_kb": len(json.dumps(answer)) / 1024,
            }
    finally:
        server.shutdown()
        server.server_close()
    return figures


def print_table(results: dict) -> None:
    print(f"minigpt explore: a step's answer time on {results['cpu']}, "
          f"{results['threads']} threads, {results['new_tokens']} new tokens a run")  # fmt: skip
    print(f"{'model':<16}{'request':<20}{'steps':>6}{'per step':>11}{'first Step':>12}"
          f"{'1-step run':>12}{'answer':>10}")  # fmt: skip
    for model, figures in results["models"].items():
        for name, f in figures.items():
            print(f"{model:<16}{name:<20}{f['steps']:>6}{f['per_step_ms']:>8.1f} ms"
                  f"{f['run_ms']:>9.0f} ms{f['one_step_run_ms']:>9.1f} ms"
                  f"{f['answer_kb']:>7.0f} KB")  # fmt: skip
    print("per step = the run's answer time / its steps; first Step = the whole run's answer,")
    print("which the first click waits for (later Steps are read from it in the browser)")


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
