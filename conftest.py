"""Entry point for `pytest` from the repository root: the legs' wiring and the signals plugin."""

pytest_plugins = ("synthetics.plugin", "runner.signals.plugin")
