"""`harnesslab replay` and `fork`: a logged session's origin, its fork point and the divergences of a replay
(fork.py), and the job that runs a fork and saves its results (job.py)."""
