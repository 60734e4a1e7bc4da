"""Models a harness calls: the Messages API (anthropic), the emulator behind it, replay of a logged session, a
scripted offline model, and the offline brain (offline_brain.py) the emulator and scripted model answer with."""
