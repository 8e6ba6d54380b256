"""Alerts: the rules (unhandled exception, feed lag, queue backpressure), the engine
that applies them off the hot path, and the webhooks (Slack, PagerDuty) it posts to.

    model.py      an Alert: what every rule produces
    payloads.py   Slack incoming-webhook and PagerDuty Events API v2 bodies
    delivery.py   one sender worker per webhook (httpx): timeouts, retries, a bounded queue
    engine.py     the rules: a worker of the instrumented process; exceptions alerted by
                  error-group event (per call when the store cannot be written), storms
                  grouped, feeds judged with their hours
    suppress.py   maintenance windows and silences: alerts held, recorded ``suppressed``
    resolution.py ``send_resolved``: a resolved error group's PagerDuty resolve and Slack
                  follow-up (called by ``otel-monitor serve``)
    persist.py    the worker that writes feeds, edges, flags and alert outcomes to the store

Which webhook URLs are Slack and which PagerDuty is ``otel_monitor.webhooks`` (the
settings check URLs with it, so it sits beside them). httpx is imported only when a
webhook is configured.
"""
