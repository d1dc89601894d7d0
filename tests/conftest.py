import os

# Reference runs compare against torch on the same 2 cores: keep torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "2")


_skipped_reference: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and "reference" in report.keywords:
        _skipped_reference.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """Under MINIGPT_REQUIRE_REFERENCE=1 (CI) a skipped parity test fails the run."""
    if os.environ.get("MINIGPT_REQUIRE_REFERENCE") == "1" and _skipped_reference:
        print(f"\n{len(_skipped_reference)} reference test(s) skipped; CI requires them to run:")
        for nodeid in _skipped_reference:
            print("  ", nodeid)
        session.exitstatus = 1
