"""`make run` end to end: the demo answers, and a signature posted through its form counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from anonsign.cli import main
from anonsign.cli.demo import DEMO_PASSPHRASE
from tests.live import Browser, free_port, running

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_starts_the_demo_on_port_5000() -> None:
    makefile = (ROOT / "Makefile").read_text()
    run_target = re.search(r"^run: .*\n\t(.+)$", makefile, re.MULTILINE)
    assert run_target, "Makefile has no run target"
    assert run_target.group(1) == "$(BIN)/anonsign demo --host $(HOST) --port $(PORT)"
    assert re.search(r"^HOST\s+\?= 127\.0\.0\.1$", makefile, re.MULTILINE)
    assert re.search(r"^PORT\s+\?= 5000$", makefile, re.MULTILINE)


@pytest.mark.slow
def test_demo_serves_a_petition_that_accepts_signatures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = tmp_path / "instance"
    env = {"ANONSIGN_INSTANCE": str(instance), "ANONSIGN_WORKERS": "1"}
    port = free_port()
    log = tmp_path / "demo.log"
    with running(["demo", "--port", str(port)], env, port, log):
        browser = Browser(f"http://127.0.0.1:{port}")
        status, index = browser.request("/")
        assert status == 200
        assert 'href="/p/demo"' in index
        status, thanks = browser.sign("demo", "+993 65 123456", "demo contact, Ashgabat")
        assert status == 200, thanks
        assert "Thank you" in thanks
        status, repeat = browser.sign("demo", "00993 65 12 34 56", "")
        assert (status, repeat) == (200, thanks)
    output = log.read_text()
    assert "DEMO INSTANCE" in output
    assert "http://127.0.0.1:" in output

    # The organizer's side of the demo works with what it printed.
    monkeypatch.setenv("ANONSIGN_INSTANCE", str(instance))
    runner = CliRunner()
    export = tmp_path / "contacts.txt"
    assert runner.invoke(main, ["contacts", "export", "demo", "--out", str(export)]).exit_code == 0
    opened = runner.invoke(
        main,
        [
            "contacts",
            "decrypt",
            str(export),
            "--key",
            str(instance / "demo" / "demo-organizer.key"),
        ],
        env={"ANONSIGN_PASSPHRASE": DEMO_PASSPHRASE},
    )
    assert opened.exit_code == 0, opened.output
    assert "demo contact, Ashgabat" in opened.stdout
