"""Runnable examples of a user's own parts, one per guide in docs/guides/. Run from the project root with
PYTHONPATH=. (the harnesslab command does not put the current folder on the import path)."""
