"""A local HTTP server speaking the Anthropic Messages API, answering with task solver policies."""
