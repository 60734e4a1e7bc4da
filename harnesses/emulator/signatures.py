"""Signatures of the thinking blocks the emulator writes, so that a block passed back changed is found out, as the
API finds it out (a thinking block must come back exactly as it was sent)."""
from __future__ import annotations

import base64
import hashlib
import hmac

# Not a secret: a signature only proves that an emulator wrote the block, and that it came back unchanged.
_KEY = b"harnesslab-emulator-thinking"


def sign(thinking: str) -> str:
    digest = hashlib.blake2b(thinking.encode("utf-8", "surrogatepass"), key=_KEY, digest_size=32).digest()
    return base64.b64encode(digest).decode()


def genuine(thinking: str, signature: str) -> bool:
    return hmac.compare_digest(sign(thinking), signature)
