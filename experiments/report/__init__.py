"""`harnesslab report` (main.py): one module per section (context, hands, load, recovery, security, ttft), the
runs' cells they group by (sweeps.py), figures (figures.py), and the helpers the notebooks use (notebook.py)."""
