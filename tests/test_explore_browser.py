"""The explorer in a real browser: Debian's headless Chromium, driven by selenium.

The page is checked against the command line, never against itself: the tokens it shows after
five Steps of greedy search are `minigpt generate --json`'s (and its first Step shows while the
server, held at the model's next forward pass, is still decoding), the beam tree it draws has one
node per candidate of `--trace`'s steps, a sample shows the seed that repeats it on the CLI.
Every test ends with no error in the browser's console and a screenshot in its tmp_path.

Needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)
and selenium (the test extra). selenium is pointed at those two files, so it never downloads
a browser or a driver. Without them the tests skip, saying how to install them; with
MINIGPT_REQUIRE_BROWSER=1 (CI sets it) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from cli_runner import run_in_process
from explore_helpers import gated, serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver; pip install -e '.[test]' (selenium)"
WAIT_SECONDS = 60


def require_browser():
    """selenium's webdriver module, or a skip (a failure under MINIGPT_REQUIRE_BROWSER=1)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("the selenium package")
        webdriver = None
    if missing:
        message = f"no headless browser: {', '.join(missing)} missing; install with: {INSTALL}"
        if os.environ.get("MINIGPT_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return webdriver


@pytest.fixture(scope="module")
def served():
    with serving() as (base, server):
        yield base, server


@pytest.fixture(scope="module")
def url(served):
    return served[0]


@pytest.fixture(scope="module")
def browser():
    webdriver = require_browser()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--disable-gpu"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, url, tmp_path):
    """The page freshly loaded; afterwards: a screenshot, and no console errors allowed."""
    browser.get(url + "/")
    wait(browser, lambda d: d.find_element("css selector", "body").get_attribute("data-ready"))
    browser.get_log("browser")  # start from an empty console
    yield browser
    shot = tmp_path / "explore.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"console errors: {errors}"


def wait(driver, condition):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(condition)


# ----------------------------------------------------------------------------- page actions


def panels(driver):
    return driver.find_elements("css selector", ".panel")


def set_prompt(driver, text: str) -> None:
    box = driver.find_element("id", "prompt")
    box.clear()
    box.send_keys(text)


def set_field(panel, name: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    field = panel.find_element("css selector", f'.opt[data-name="{name}"]')
    if field.tag_name == "select":
        Select(field).select_by_value(value)
    else:
        field.clear()
        field.send_keys(value)


def choose_strategy(panel, name: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(panel.find_element("css selector", "select.strategy")).select_by_value(name)


def step(driver, panel, times: int = 1) -> None:
    """Click Step and wait until the panel shows one more step, `times` times."""
    for _ in range(times):
        before = int(panel.get_attribute("data-shown") or 0)
        panel.find_element("css selector", "button.step").click()
        wait(driver, lambda d, n=before + 1: int(panel.get_attribute("data-shown") or 0) == n)


def run_to_end(driver, panel) -> None:
    panel.find_element("css selector", "button.run").click()
    wait(driver, lambda d: panel.get_attribute("data-done") == "true")


def shown_ids(panel, selector: str = '.text .seq[data-index="0"]') -> list[int]:
    line = panel.find_element("css selector", selector)
    return [int(t.get_attribute("data-id")) for t in line.find_elements("css selector", ".tok")]


def generate(capsys, tmp_path, *flags: str) -> tuple[dict, dict]:
    """(--json output, --trace file) of `minigpt generate FLAGS`."""
    trace = tmp_path / "trace.json"
    status, out, err = run_in_process(capsys, "generate", *flags, "--json", "--trace", str(trace))
    assert status == 0, err
    return json.loads(out), json.loads(trace.read_text())


def new_ids(printed: dict) -> list[int]:
    """The generated ids of --json's first sequence."""
    return printed["sequences"][0]["ids"][len(printed["prompt_ids"]) :]


# ------------------------------------------------------------------------------------- tests


def test_five_greedy_steps_show_the_tokens_generate_json_prints(page, capsys, tmp_path):
    set_prompt(page, "The little dog")
    (panel,) = panels(page)
    step(page, panel, 5)
    printed, trace = generate(capsys, tmp_path, "The little dog")
    generated = new_ids(printed)
    assert shown_ids(panel) == generated[:5]
    assert re.search(r"step 5 of \d+", status_of(panel))
    # The bars of step 5 are the trace's: its top candidates, the chosen one marked.
    chart = panel.find_element("css selector", ".bars svg.bar-chart")
    chosen = chart.find_element("css selector", ".bar.chosen").get_attribute("data-token")
    assert int(chosen) == generated[4]
    run_to_end(page, panel)
    steps = len(trace["trace"]["steps"])
    assert f"step {steps} of {steps}" in status_of(panel)
    assert shown_ids(panel, ".final-seq") == generated


def test_the_first_step_shows_while_the_server_is_still_decoding(page, served, capsys, tmp_path):
    # The model may make one forward pass only: step 1 is recorded, the run is held at the
    # next pass, and the page must show step 1 all the same (the run provably not over).
    (panel,) = panels(page)
    with gated(served[1]) as permits:
        permits.release(1)
        step(page, panel)
        assert panel.get_attribute("data-done") == "false"
        assert "still running" in status_of(panel)
        first = shown_ids(panel)
        permits.release(10**6)
        run_to_end(page, panel)
    printed, _ = generate(capsys, tmp_path, "Once upon a time")
    assert first == new_ids(printed)[:1]
    assert shown_ids(panel, ".final-seq") == new_ids(printed)


def test_a_flag_is_a_checkbox_and_a_repeated_flag_one_value_per_line(page, capsys, tmp_path):
    """--renormalize-logits (given or not) and --stop-strings S (repeatable) as the page asks
    for them: the shown text is what generate prints with those flags."""
    set_prompt(page, "The little dog")
    (panel,) = panels(page)
    choose_strategy(panel, "sample")
    set_field(panel, "seed", "5")
    panel.find_element("css selector", '.opt[data-name="renormalize_logits"]').click()
    stops = panel.find_element("css selector", '.opt[data-name="stop_strings"]')
    assert stops.tag_name == "textarea"
    stops.send_keys(" the\n.")
    run_to_end(page, panel)
    printed, _ = generate(capsys, tmp_path, "The little dog", "--strategy", "sample", "--seed",
                          "5", "--renormalize-logits", "--stop-strings", " the",
                          "--stop-strings", ".")  # fmt: skip
    assert printed["sequences"][0]["finish_reason"] == "stop_string"  # the second line's "."
    assert shown_ids(panel, ".final-seq") == new_ids(printed)


def test_a_beam_search_run_draws_one_node_per_candidate_of_the_trace(page, capsys, tmp_path):
    (panel,) = panels(page)
    choose_strategy(panel, "beam")
    set_field(panel, "num_beams", "3")
    set_field(panel, "max_new_tokens", "6")
    run_to_end(page, panel)
    printed, trace = generate(capsys, tmp_path, "Once upon a time", "--strategy", "beam",
                              "--num-beams", "3", "--max-new-tokens", "6")  # fmt: skip
    candidates = [c for s in trace["trace"]["steps"] for c in s["candidates"]]
    nodes = panel.find_elements("css selector", ".tree svg .tree-node")
    assert len(nodes) == len(candidates)
    pruned = [c for c in candidates if c["fate"] not in ("live", "finished")]
    grey = panel.find_elements("css selector", ".tree-node:not(.fate-live):not(.fate-finished)")
    assert len(grey) == len(pruned)
    assert shown_ids(panel, ".final-seq") == new_ids(printed)


def test_a_sample_shows_its_seed_and_redraws_with_a_fresh_one(page, capsys, tmp_path):
    (panel,) = panels(page)
    choose_strategy(panel, "sample")
    set_field(panel, "top_k", "20")
    step(page, panel, 3)
    seeds = []
    for _ in range(2):
        status = panel.find_element("css selector", ".status").text
        seed = re.search(r"seed (\d+)", status)[1]
        seeds.append(seed)
        printed, _ = generate(capsys, tmp_path, "Once upon a time", "--strategy", "sample",
                              "--top-k", "20", "--seed", seed)  # fmt: skip
        assert shown_ids(panel) == new_ids(printed)[:3]
        panel.find_element("css selector", "button.redraw").click()
        wait(page, lambda d, old=seed: re.search(rf"seed (?!{old}\b)\d+", status_of(panel)))
    assert seeds[0] != seeds[1]


def status_of(panel) -> str:
    return panel.find_element("css selector", ".status").text


def test_two_strategies_side_by_side_on_one_prompt(page, capsys, tmp_path):
    page.find_element("id", "compare").click()
    left, right = panels(page)
    choose_strategy(right, "beam")
    step(page, left)
    step(page, right)
    _, trace = generate(capsys, tmp_path, "Once upon a time", "--strategy", "beam")
    first = trace["trace"]["steps"][0]["candidates"]
    assert len(right.find_elements("css selector", ".tree-node")) == len(first)
    assert len(shown_ids(left)) == 1 and "greedy" in status_of(left)


def test_assisted_sampling_shows_each_round(page, capsys, tmp_path):
    (panel,) = panels(page)
    choose_strategy(panel, "sample")
    flags = {"assistant_model": "minigpt-tiny-draft", "num_assistant_tokens": "4",
             "temperature": "2", "seed": "5", "max_new_tokens": "12"}  # fmt: skip
    for name, value in flags.items():
        set_field(panel, name, value)
    run_to_end(page, panel)
    argv = [f"--{name.replace('_', '-')}={value}" for name, value in flags.items()]
    printed, trace = generate(capsys, tmp_path, "Once upon a time", "--strategy", "sample", *argv)
    rounds = trace["trace"]["rounds"]
    assert len(panel.find_elements("css selector", ".round")) == len(rounds)
    accepted = sum(d["outcome"] == "accepted" for r in rounds for d in r["drafted"])
    assert len(panel.find_elements("css selector", ".chip.accepted")) == accepted
    assert shown_ids(panel, ".final-seq") == new_ids(printed)
    # Back to round 1: its checked guesses get a row of p, q and max(0, p - q) bars each.
    panel.find_element("css selector", "button.reset").click()
    step(page, panel)
    checked = [d for d in rounds[0]["drafted"] if d["p"] is not None]
    assert checked, "the first round checks at least one guess"
    chart = panel.find_element("css selector", ".round.latest svg.pq-chart")
    assert len(chart.find_elements("css selector", ".p-bar")) == len(checked)


def test_a_bad_option_is_shown_and_marked(page):
    (panel,) = panels(page)
    choose_strategy(panel, "sample")
    set_field(panel, "top_p", "2")
    panel.find_element("css selector", "button.step").click()
    wait(page, lambda d: "error" in status_of(panel))
    assert "--top-p" in status_of(panel)
    assert "bad" in panel.find_element("css selector", '.opt[data-name="top_p"]').get_attribute(
        "class"
    )
    page.get_log("browser")  # the 400 itself is logged by the browser: expected here


def test_without_chromium_these_tests_skip_saying_how_to_install_it_or_fail_if_required(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("MINIGPT_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        require_browser()
    monkeypatch.setenv("MINIGPT_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="no-chromium missing"):
        require_browser()


def test_each_early_stopping_mode_is_marked_where_its_own_run_stops(page, capsys, tmp_path):
    # With "," as EOS (token 12 of the bundled vocabulary) finished beams come early and the
    # modes part; the "never" run is the longest, so all three marks fall within it.
    (panel,) = panels(page)
    choose_strategy(panel, "beam")
    fields = {"num_beams": "3", "max_new_tokens": "12", "eos_token_id": "12",
              "early_stopping": "never"}  # fmt: skip
    for name, value in fields.items():
        set_field(panel, name, value)
    run_to_end(page, panel)
    # textContent, not .text: selenium's .text is "" for a label the tree's scroll box clips.
    labels = [e.get_attribute("textContent") for e in
              panel.find_elements("css selector", ".tree svg .stop-label")]  # fmt: skip
    marked = {m[1]: int(m[2]) for m in map(re.compile(r"early_stopping=(\w+) .* (\d+)").match,
                                           labels)}  # fmt: skip
    stops = {}
    for mode in ("true", "false", "never"):
        _, trace = generate(capsys, tmp_path, "Once upon a time", "--strategy", "beam",
                            "--num-beams", "3", "--max-new-tokens", "12", "--eos-token-id", "12",
                            "--early-stopping", mode)  # fmt: skip
        stops[mode] = len(trace["trace"]["steps"])
    assert len(set(stops.values())) > 1, "the modes should part here"
    assert marked == stops


def test_cancel_stops_the_run_the_page_waits_for(page, served):
    explorer = served[1].RequestHandlerClass.explorer
    (panel,) = panels(page)
    cancel = panel.find_element("css selector", "button.cancel")
    assert not cancel.is_enabled()
    with explorer.turn:  # the server is busy with another run: this one waits its turn
        panel.find_element("css selector", "button.step").click()
        wait(page, lambda d: cancel.is_enabled() and explorer.running)
        cancel.click()
        wait(page, lambda d: all(event.is_set() for event in explorer.running.values()))
    wait(page, lambda d: status_of(panel) == "cancelled")
    assert not cancel.is_enabled() and panel.get_attribute("data-shown") == "0"
    page.get_log("browser")  # the 409 itself is logged by the browser: expected here
