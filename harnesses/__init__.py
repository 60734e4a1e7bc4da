"""The brain: harnesses (the stateless loop that wakes on a session), models, and context strategies.

Their contracts are in harnesses/base.py (Model, ContextStrategy, Harness); the loop is harnesses/decoupled.py."""
