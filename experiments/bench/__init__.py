"""`make bench` (`python -m experiments.bench`): benchmarks that compare alternatives side by side and report
medians, p95 and ratios against their targets (targets.py): the harness's overhead per turn (harness.py), the
sandboxes, the emulator, the stores and scale; calibrate.py fits the emulator's latency to a real API's."""
