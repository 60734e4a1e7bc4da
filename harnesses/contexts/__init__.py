"""Context strategies: what part of a session's log the model is shown on each call (full, window, clearing,
compaction, memory, recall). How a strategy shows what it hid is harnesses/contexts/vocabulary.py."""
