"""Lifecycle rules: their configuration (rules.py), what is due when (evaluate.py), and the
background runner that applies them once per deployment (runner.py).

``rules`` and ``evaluate`` are pure: no I/O, no clock of their own. The S3 layer parses and
renders configurations with ``rules``; the runner and the ``x-amz-expiration`` header ask
``evaluate``.
"""
