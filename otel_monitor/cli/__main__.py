"""``python -m otel_monitor.cli``: the ``otel-monitor`` command (``demo --serve`` starts
its UI process this way)."""
import sys

from . import main

sys.exit(main())
