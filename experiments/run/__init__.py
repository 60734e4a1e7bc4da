"""One run of `harnesslab run`, in-process: the config checked (config_check.py), the parts built (parts.py),
the suite run (runner.py), its load measured (load.py), and the job that ties them and saves the results (job.py)."""
