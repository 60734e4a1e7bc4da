"""What the API refuses, and how it says so: an ApiError is answered as the API's error JSON, with its status."""
from __future__ import annotations

from typing import Any, Mapping


class ApiError(Exception):
    """An error answer: HTTP status, `error.type` and a message that names what was wrong and what is valid."""

    def __init__(self, status: int, kind: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.kind, self.details = status, kind, details  # details: `error_code` and what it names

    def body(self, request_id: str) -> dict[str, Any]:
        error = {"type": self.kind, "message": str(self), **({"details": self.details} if self.details else {})}
        return {"type": "error", "error": error, "request_id": request_id}


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def not_found(kind: str, resource_id: str) -> ApiError:
    return ApiError(404, "not_found_error", f"{kind} {resource_id!r} not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, "invalid_request_error", message)


def not_served(what: str, why: str) -> ApiError:
    """A valid request for something this server does not serve yet (docs/managed.md says what is not yet)."""
    return invalid(f"{what} is not served by harnesslab yet: {why} (see docs/managed.md)")


# -- reading a request body ---------------------------------------------------------------------------------

def body_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object, got {kind_of(body)}")
    return body


def known_fields(body: Mapping[str, Any], known: set[str], where: str = "") -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise invalid(f"{where}{unknown[0]}: Extra inputs are not permitted; valid fields: {', '.join(sorted(known))}")


def text(body: Mapping[str, Any], name: str, *, required: bool = False, empty: bool = True) -> str | None:
    """Field `name` as a str (None when absent or null, unless `required`)."""
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(f"{name}: a string is required")
        return None
    if not isinstance(value, str) or (not empty and not value):
        raise invalid(f"{name}: expected a {'non-empty ' if not empty else ''}string, got {kind_of(value)}")
    return value


def flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"{name}: expected true or false, got {kind_of(value)}")
    return value


MAX_METADATA_PAIRS, MAX_KEY, MAX_VALUE = 16, 64, 512  # as the API bounds `metadata`


def metadata(value: Any, name: str = "metadata", patch: bool = False) -> dict[str, Any]:
    """A metadata object (a patch may set a key to null: delete it)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{name}: expected an object of string keys and values, got {kind_of(value)}")
    for key, item in value.items():
        if len(key) > MAX_KEY:
            raise invalid(f"{name}: key {key[:80]!r} is longer than {MAX_KEY} characters")
        if not (isinstance(item, str) or (patch and item is None)):
            raise invalid(f"{name}.{key}: expected a string{' or null' if patch else ''}, got {kind_of(item)}")
        if isinstance(item, str) and len(item) > MAX_VALUE:
            raise invalid(f"{name}.{key}: the value is longer than {MAX_VALUE} characters")
    return dict(value)


def patched(current: Mapping[str, str], patch: Mapping[str, Any], name: str = "metadata") -> dict[str, str]:
    merged = {**current, **patch}
    result = {key: value for key, value in merged.items() if value is not None}
    if len(result) > MAX_METADATA_PAIRS:
        raise invalid(f"{name}: at most {MAX_METADATA_PAIRS} pairs, got {len(result)}")
    return result


def limit(query: Mapping[str, str], default: int = 20, most: int = 100) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise invalid(f"limit: expected a whole number from 1 to {most}, got {raw!r}")
    return int(raw)


def kind_of(value: Any) -> str:
    return "null" if value is None else {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}")
