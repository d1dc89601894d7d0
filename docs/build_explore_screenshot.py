"""Remake docs/explore.png, the README's screenshot of `minigpt explore`.

    .venv/bin/python docs/build_explore_screenshot.py [OUT.png]

Starts the explorer on a free port of 127.0.0.1 with the bundled model, drives Debian's
headless Chromium (/usr/bin/chromium and /usr/bin/chromedriver, through selenium; nothing is
downloaded) through a few steps of beam search beside sampling with top-k and top-p, and saves
the window. The same page and server as tests/test_explore_browser.py.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from minigpt.cli.session import open_session  # noqa: E402
from minigpt.explore.server import make_server  # noqa: E402

OUT = ROOT / "docs" / "explore.png"
WINDOW = (1400, 1050)
PROMPT = "Once upon a time, there was a"  # the bundled model hesitates here: wide bars


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def fill(panel, name: str, value: str) -> None:
    field = panel.find_element("css selector", f'.opt[data-name="{name}"]')
    if field.tag_name == "select":
        Select(field).select_by_value(value)
    else:
        field.clear()
        field.send_keys(value)


def step(driver, panel, times: int) -> None:
    for n in range(1, times + 1):
        panel.find_element("css selector", "button.step").click()
        WebDriverWait(driver, 60).until(lambda d, n=n: panel.get_attribute("data-shown") == str(n))


def main(out: Path = OUT) -> None:
    server = make_server(open_session(None), 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = browser()
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element("css selector", "body").get_attribute("data-ready")
        )
        prompt = driver.find_element("id", "prompt")
        prompt.clear()
        prompt.send_keys(PROMPT)
        driver.find_element("id", "compare").click()
        left, right = driver.find_elements("css selector", ".panel")
        Select(left.find_element("css selector", "select.strategy")).select_by_value("beam")
        for name, value in {"num_beams": "3", "max_new_tokens": "6",
                            "early_stopping": "true"}.items():  # fmt: skip
            fill(left, name, value)
        Select(right.find_element("css selector", "select.strategy")).select_by_value("sample")
        for name, value in {"top_k": "10", "top_p": "0.6", "seed": "4"}.items():
            fill(right, name, value)
        step(driver, left, 3)
        step(driver, right, 1)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
        server.shutdown()
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
