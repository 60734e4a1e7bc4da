"""Reading logged sessions wherever they are (a store, a results file, a DSN), and showing them: transcripts for
`harnesslab sessions`, OpenTelemetry-style traces for `harnesslab traces`."""
