"""The vault: secrets are added and used, never read back, and redacted wherever text leaves."""
from __future__ import annotations

import base64
import pickle

import pytest

from sandboxes.credentials.vault import Vault, VaultError

SECRET = "s3cr3t-token-0042"


def test_a_secret_is_used_through_a_function_and_never_read_back():
    vault = Vault({"api_token": SECRET})
    assert vault.use("api_token", lambda value: f"Bearer {value}") == f"Bearer {SECRET}"
    assert vault.names() == ["api_token"] and SECRET not in repr(vault)
    assert not [name for name in dir(vault) if not name.startswith("_") and name not in ("add", "names", "use", "redact", "from_env", "from_file", "load")]
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(vault)


def test_redaction_covers_the_encodings_a_secret_travels_in():
    vault = Vault({"api_token": SECRET})
    b64 = base64.b64encode(SECRET.encode()).decode()
    text = f"header {SECRET}; b64 {b64}; quoted s3cr3t-token-0042"
    assert vault.redact(text) == "header [secret:api_token]; b64 [secret:api_token]; quoted [secret:api_token]"


def test_secrets_load_from_the_environment_which_then_forgets_them(tmp_path):
    environ = {"HARNESSLAB_SECRET_GIT_TOKEN": SECRET, "PATH": "/bin"}
    vault = Vault.from_env(environ)
    assert vault.names() == ["git_token"] and environ == {"PATH": "/bin"}
    path = tmp_path / "secrets"
    path.write_text(f"# planted\napi_token = {SECRET}\n\n")
    assert Vault.from_file(path).names() == ["api_token"]


def test_bad_secrets_are_named_without_echoing_a_value(tmp_path):
    with pytest.raises(VaultError, match="no secret named 'nope'; the vault holds api_token"):
        Vault({"api_token": SECRET}).use("nope", str)
    with pytest.raises(VaultError, match="use lowercase letters"):
        Vault({"Bad-Name": SECRET})
    with pytest.raises(VaultError, match="at least 8 characters"):
        Vault({"short": "abc"})
    path = tmp_path / "secrets"
    path.write_text(f"{SECRET}\n")
    with pytest.raises(VaultError, match="line 1: expected name=value") as raised:
        Vault.from_file(path)
    assert SECRET not in str(raised.value)
