"""Running a step that touches secrets in a child process, so the caller never holds them.

Python cannot wipe memory it has freed: a master key read once stays in the process's
heap until that memory happens to be reused. The process that becomes gunicorn's master
(``serve``, ``demo``) lives as long as the server does, so whatever reads the keys before
serving starts (the readiness check, the demo set-up) runs in a forked child instead,
and only its outcome (an error message, or the lines it printed) comes back.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from typing import TypeVar

from anonsign.errors import AnonsignError

T = TypeVar("T")


class IsolatedStepFailed(AnonsignError):
    """A set-up step failed unexpectedly; run the command again to see whether it persists."""


def run_isolated(step: Callable[..., T], *args: object) -> T:
    """Run ``step(*args)`` in a forked child and return its (picklable) result.

    An :class:`AnonsignError` raised by the step is raised again here with its message;
    any other failure becomes :class:`IsolatedStepFailed`.
    """
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: run, report, and leave without running the parent's cleanup
        os.close(read_end)
        try:
            try:
                outcome: tuple[str, object] = ("ok", step(*args))
            except AnonsignError as exc:
                outcome = ("error", exc)
            except BaseException as exc:  # report, never fall back into the parent's code
                outcome = ("crash", type(exc).__name__)
            with os.fdopen(write_end, "wb") as out:
                try:
                    pickle.dump(outcome, out)
                except Exception:  # an error class that does not pickle: keep its message
                    message = outcome[1].message if outcome[0] == "error" else "?"  # type: ignore[attr-defined]
                    pickle.dump(("error", AnonsignError(message)), out)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as incoming:
        data = incoming.read()
    os.waitpid(pid, 0)
    if not data:
        raise IsolatedStepFailed()
    kind, value = pickle.loads(data)  # noqa: S301 - from our own child, through a private pipe
    if kind == "ok":
        return value  # type: ignore[no-any-return]
    if kind == "error":
        assert isinstance(value, AnonsignError)
        raise value
    raise IsolatedStepFailed(f"A set-up step failed unexpectedly ({value}); run it again.")
