"""The vault: secrets go in and are used; they never come out.

There is no getter. A secret is used by handing the vault a function that receives it (`use`): the
credential proxy builds a request's auth header that way, inside its own process. Every text that leaves
the proxy passes `redact`, which replaces each secret, in the encodings it could travel in, by its name.
"""
from __future__ import annotations

import base64
import os
import re
import urllib.parse
from pathlib import Path
from typing import Callable, Mapping, TypeVar

T = TypeVar("T")
ENV_PREFIX = "HARNESSLAB_SECRET_"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MIN_LENGTH = 8  # shorter values would be redacted out of ordinary text


class VaultError(ValueError):
    """A secret that cannot be added or is not there; the message names what is."""


class Vault:
    def __init__(self, secrets: Mapping[str, str] | None = None):
        self._secrets: dict[str, str] = {}
        for name, value in (secrets or {}).items():
            self.add(name, value)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Vault:
        """Secrets from `HARNESSLAB_SECRET_<NAME>` variables, which are removed so that no child process inherits them."""
        vault = cls()
        vault._take(os.environ if environ is None else environ)
        return vault

    @classmethod
    def load(cls, file: str | Path | None = None, environ: dict[str, str] | None = None,
             secrets: Mapping[str, str] | None = None) -> Vault:
        """A vault from a secrets file, then `HARNESSLAB_SECRET_*` entries of `environ`, then `secrets`."""
        vault = cls.from_file(Path(file)) if file else cls()
        vault._take(environ or {})
        for name, value in (secrets or {}).items():
            vault.add(name, value)
        return vault

    def _take(self, environ: dict[str, str]) -> None:
        for key in [key for key in environ if key.startswith(ENV_PREFIX)]:
            self.add(key[len(ENV_PREFIX):].lower(), environ.pop(key))

    @classmethod
    def from_file(cls, path: Path) -> Vault:
        """Secrets from `name=value` lines (blank lines and # comments ignored)."""
        vault = cls()
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                name, sep, value = line.partition("=")
                if not sep:
                    raise VaultError(f"{path}, line {number}: expected name=value")  # never echo the line: it may be a secret
                vault.add(name.strip(), value.strip())
        return vault

    def add(self, name: str, value: str) -> None:
        if not _NAME.match(name):
            raise VaultError(f"secret name {name!r}: use lowercase letters, digits and _, starting with a letter")
        if not isinstance(value, str) or len(value) < MIN_LENGTH:
            raise VaultError(f"secret {name!r}: a value of at least {MIN_LENGTH} characters is required")
        self._secrets[name] = value

    def names(self) -> list[str]:
        return sorted(self._secrets)

    def use(self, name: str, how: Callable[[str], T]) -> T:
        """`how(secret)`: the secret goes into `how` and nowhere else."""
        if name not in self._secrets:
            raise VaultError(f"no secret named {name!r}; the vault holds {', '.join(self.names()) or 'none'}")
        return how(self._secrets[name])

    def redact(self, text: str) -> str:
        for name, value in self._secrets.items():
            for form in encodings(value):
                text = text.replace(form, f"[secret:{name}]")
        return text

    def __repr__(self) -> str:
        return f"Vault({', '.join(self.names())})"

    def __reduce__(self):
        raise TypeError("a Vault cannot be pickled: its secrets stay in the process that loaded them")


def encodings(value: str) -> list[str]:
    """The forms a secret may travel in: as is, URL-quoted and base64-encoded."""
    b64 = base64.b64encode(value.encode()).decode()
    forms = {value, urllib.parse.quote(value, safe=""), b64, b64.rstrip("=")}
    return sorted((f for f in forms if len(f) >= MIN_LENGTH), key=len, reverse=True)
