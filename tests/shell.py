"""A person's shell for tests: one bash, fed one command at a time, as it is typed.

State carries from one command to the next as it does at a keyboard (``source``, ``cd``,
a job started with ``&``), and a command that asks "[y/N]" is answered the way the
person would answer it. Shell code from a document (tests/cli/test_readme.py) runs here
as written.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

#: click's confirmation prompt, which a person answers "y".
CONFIRMATION = "[y/N]: "


def shell_commands(block: str) -> list[str]:
    """The commands of a ``sh`` block: a line each, with its ``\\`` continuations and
    here-documents; comment-only lines (shown output, notes) are not commands."""
    commands: list[str] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command = [line]
        while command[-1].rstrip().endswith("\\") and i < len(lines):
            command.append(lines[i])
            i += 1
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", command[0])
        if heredoc:
            while i < len(lines):
                command.append(lines[i])
                i += 1
                if command[-1].strip() == heredoc.group(1):
                    break
        commands.append("\n".join(command))
    return commands


class Shell:
    """``bash`` in its own session, fed commands on its standard input."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self._lock:
                self._output += chunk

    def transcript(self, start: int = 0) -> str:
        with self._lock:
            return self._output[start:].decode("utf-8", "replace")

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode("utf-8"))
        self.process.stdin.flush()

    def run(self, command: str, timeout: float = 300) -> tuple[int, str]:
        """Run ``command`` as typed; its exit status and what it printed.

        The command is wrapped in ``{ ...; }`` so that bash reads all of it (and the
        status line after it) before it runs: whatever the command then reads from its
        standard input is what is typed next, the answers to its questions.
        """
        marker = f"__shell_status_{secrets.token_hex(6)}"
        with self._lock:
            start = len(self._output)
        self._send(f'{{ {command}\n}}; echo "{marker}=$?"\n')
        answered = 0
        deadline = time.monotonic() + timeout
        while True:
            text = self.transcript(start)
            done = re.search(rf"{marker}=(\d+)", text)
            if done:
                return int(done.group(1)), text[: done.start()]
            if text.count(CONFIRMATION) > answered:
                self._send("y\n")
                answered += 1
            if self.process.poll() is not None:
                raise RuntimeError(f"the shell exited during {command!r}:\n{text}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command!r} did not finish in {timeout} s:\n{text}")
            time.sleep(0.05)

    def close(self) -> None:
        """End the shell and everything it started (a server left running by ``&``)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._reader.join(timeout=15)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
