"""`make run` end to end: the demo answers, and a signature posted through its form counts."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from anonsign.cli.demo import DEMO_CODE_WIDTH, DEMO_PASSPHRASE, DEMO_TEXT, set_up_demo
from anonsign.cli.isolated import run_isolated
from anonsign.config import load_settings
from anonsign.service import Service
from tests.live import Browser, free_port, running
from tests.shell import Shell, shell_commands

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
    tmp_path: Path,
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

    # The organizer's side of the demo: the commands its page shows, typed as shown in the
    # folder of `make run` (whose .venv is this test's), with no anonsign on PATH before.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "anonsign").exists()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANONSIGN_")}
    shell = Shell(tmp_path, env | {"PATH": path, "ANONSIGN_PASSPHRASE": DEMO_PASSPHRASE})
    try:
        said = []
        for command in shell_commands(demo_code()):
            status, output = shell.run(command)
            said.append(f"$ {command}\n{output}")
            assert status == 0, "\n".join(said)
    finally:
        shell.close()
    assert "demo contact, Ashgabat" in said[-1]


def demo_code() -> str:
    """The code block of the demo petition's text, as its page shows it."""
    blocks = [t.content for t in MarkdownIt().parse(DEMO_TEXT) if t.type == "code_block"]
    assert len(blocks) == 1
    return str(blocks[0])


def test_the_demo_page_says_how_to_reach_the_command_as_the_readme_does() -> None:
    first = demo_code().splitlines()[0]
    assert first == "source .venv/bin/activate"
    assert f"\n{first}    #" in (ROOT / "README.md").read_text()


def test_the_demo_code_fits_a_phone_screen() -> None:
    too_wide = [line for line in demo_code().splitlines() if len(line) > DEMO_CODE_WIDTH]
    assert too_wide == []


def test_the_demo_petition_starts_empty_as_the_readme_says(tmp_path: Path) -> None:
    settings = load_settings({"ANONSIGN_INSTANCE": str(tmp_path / "instance")})
    run_isolated(set_up_demo, settings)
    service = Service.open(settings)
    try:
        (summary,) = service.summaries()
    finally:
        service.close_connections()
    assert (summary.petition.slug, summary.signatures) == ("demo", 0)
    assert "an empty demo petition" in (ROOT / "README.md").read_text()
