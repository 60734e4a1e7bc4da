"""Secrets in DSNs never reach results or error messages."""
from __future__ import annotations


def test_dsn_passwords_are_redacted():
    from stores.postgres import redact_dsn

    text = '{"dsn": "postgresql://lab:s3cr3t@db:5432/x", "plain": "postgresql://lab@db/x"}'
    assert redact_dsn(text) == '{"dsn": "postgresql://lab:***@db:5432/x", "plain": "postgresql://lab@db/x"}'
