"""Processes of harnesslab's own (the credential proxy and its test services, the model emulator, PostgreSQL, the
Docker reaper, workers): started with their config on stdin, and ended with the process that started them, however
it ends. The bottom layer: stores, sandboxes, harnesses and experiments all use it, and it uses none of them."""
