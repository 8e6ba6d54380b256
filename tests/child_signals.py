"""Signal dispositions for the children that tests start."""
from __future__ import annotations

import signal


def restore_sigint() -> None:
    """A ``preexec_fn``: a child of a background job (nohup, ``cmd &``, some CI runners)
    starts with SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    A test that sends a Ctrl-C gives the child a terminal's default instead."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
