"""Helpers the test modules share (processes, tools), so no test module imports another."""
