"""Rules on a request's headers and top-level fields: version and beta headers, known fields, the model and its
limits, max_tokens, the sampling parameters, stop_sequences, metadata, service_tier, stream and system; and the
model's context window, which the whole request must fit.

Wording follows the API's own messages where they are known (docs/emulator.md says where each was seen).
"""
from __future__ import annotations

import math
from typing import Any

from harnesses.emulator import schema
from harnesses.emulator.rules import Request, RequestError, invalid, rule
from harnesses.emulator.service import prompt_tokens, prompt_tokens_at_most

REFERENCE = "https://docs.claude.com/en/api/messages"
CONTEXT_WINDOWS = "https://docs.claude.com/en/docs/build-with-claude/context-windows"
MAX_MESSAGES = 100_000  # "There is a limit of 100,000 messages in a single request" (MessageCreateParams.messages)


@rule("https://docs.claude.com/en/api/versioning")
def api_version(request: Request) -> None:
    """The anthropic-version header is required, and must name a version the API has."""
    version = request.headers.get("anthropic-version")
    if version is None:
        raise invalid("anthropic-version: header is required")
    if version not in schema.api_versions():
        raise invalid(f"anthropic-version: {version!r} is not a valid version; valid: {', '.join(schema.api_versions())}")


@rule("https://docs.claude.com/en/api/beta-headers")
def beta_header(request: Request) -> None:
    """Each value of the anthropic-beta header (comma-separated) must be a beta the API knows."""
    unknown = [v for v in request.betas if v not in schema.known_betas()]
    if unknown:
        raise invalid(f"Unexpected value(s) `{', '.join(unknown)}` for the `anthropic-beta` header. Please consult our "
                      "documentation at docs.claude.com or try again without the header.")


@rule("anthropic.types.message_create_params.MessageCreateParams; " + REFERENCE)
def known_fields(request: Request) -> None:
    """A body holds only the fields the endpoint defines (a beta request: those of the beta params)."""
    allowed = schema.request_fields(request.endpoint, request.beta)
    extra = next((key for key in request.body if key not in allowed), None)
    if extra is not None:
        raise invalid(f"{extra}: Extra inputs are not permitted")


@rule(REFERENCE, loose=True)
def model_field(request: Request) -> None:
    """`model` is required, a string."""
    if "model" not in request.body:
        raise invalid("model: Field required")
    if not isinstance(request.body["model"], str):
        raise invalid("model: Input should be a valid string")


@rule("https://docs.claude.com/en/api/errors; https://docs.claude.com/en/docs/about-claude/models/overview")
def known_model(request: Request) -> None:
    """A model the API does not have is a 404 not_found_error naming it."""
    if request.limits is None:
        raise RequestError(404, "not_found_error", f"model: {request.body['model']}")


@rule(REFERENCE, loose=True)
def max_tokens_field(request: Request) -> None:
    """`max_tokens` is required on /v1/messages: a whole number >= 0 (0 only warms the prompt cache)."""
    if request.endpoint != "messages":
        return
    value = request.body.get("max_tokens")
    if "max_tokens" not in request.body:
        raise invalid("max_tokens: Field required")
    if not _is_int(value):
        raise invalid("max_tokens: Input should be a valid integer")
    if value < 0:
        raise invalid("max_tokens: Input should be greater than or equal to 0")


@rule("https://docs.claude.com/en/docs/about-claude/models/overview")
def max_tokens_limit(request: Request) -> None:
    """`max_tokens` may not exceed the model's maximum output."""
    limit = request.limits.max_output_tokens
    if request.endpoint == "messages" and request.body["max_tokens"] > limit:
        raise invalid(f"max_tokens: {request.body['max_tokens']} > {limit}, which is the maximum allowed number of "
                      f"output tokens for {request.body['model']}")


@rule(REFERENCE, loose=True)
def messages_field(request: Request) -> None:
    """`messages` is required: a list of at least one message and at most 100,000."""
    messages = request.body.get("messages")
    if "messages" not in request.body:
        raise invalid("messages: Field required")
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    if len(messages) > MAX_MESSAGES:
        raise invalid(f"messages: a request may hold at most {MAX_MESSAGES} messages, got {len(messages)}")


@rule(REFERENCE)
def sampling_ranges(request: Request) -> None:
    """temperature and top_p are numbers from 0 to 1; top_k a whole number >= 0."""
    for name in ("temperature", "top_p"):
        value = request.body.get(name)
        if value is not None and not (_is_number(value) and 0 <= value <= 1):
            raise invalid(f"{name}: range: 0..1")
    top_k = request.body.get("top_k")
    if top_k is not None and not (_is_int(top_k) and top_k >= 0):
        raise invalid("top_k: Input should be a whole number greater than or equal to 0")


@rule(REFERENCE + "#body-top-p")
def temperature_or_top_p(request: Request) -> None:
    """Models from the 4.5 generation take temperature or top_p, not both ("alter one or the other")."""
    if request.body.get("temperature") is not None and request.body.get("top_p") is not None:
        raise invalid("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")


@rule(REFERENCE, loose=True)
def stop_sequences_field(request: Request) -> None:
    """`stop_sequences` is a list of strings."""
    value = request.body.get("stop_sequences")
    if value is None:
        return
    if not isinstance(value, list):
        raise invalid("stop_sequences: Input should be a valid list")
    bad = next((i for i, s in enumerate(value) if not isinstance(s, str)), None)
    if bad is not None:
        raise invalid(f"stop_sequences.{bad}: Input should be a valid string")


@rule("anthropic.types.metadata_param.MetadataParam; " + REFERENCE + "#body-metadata")
def metadata_field(request: Request) -> None:
    """`metadata` is an object whose only field is `user_id` (a string of at most 256 characters, or null)."""
    value = request.body.get("metadata")
    if "metadata" not in request.body:
        return
    if not isinstance(value, dict):
        raise invalid("metadata: Input should be a valid dictionary")
    extra = next((key for key in value if key != "user_id"), None)
    if extra is not None:
        raise invalid(f"metadata.{extra}: Extra inputs are not permitted")
    user = value.get("user_id")
    if user is not None and not isinstance(user, str):
        raise invalid("metadata.user_id: Input should be a valid string")
    if user is not None and len(user) > 256:
        raise invalid("metadata.user_id: String should have at most 256 characters")


@rule("anthropic.types.message_create_params.MessageCreateParams.service_tier; https://docs.claude.com/en/api/service-tiers")
def service_tier_field(request: Request) -> None:
    """`service_tier` is 'auto' or 'standard_only'."""
    if "service_tier" in request.body and request.body["service_tier"] not in ("auto", "standard_only"):
        raise invalid("service_tier: Input should be 'auto' or 'standard_only'")


@rule(REFERENCE)
def stream_field(request: Request) -> None:
    """`stream` is a boolean."""
    if "stream" in request.body and not isinstance(request.body["stream"], bool):
        raise invalid("stream: Input should be a valid boolean")


@rule("anthropic.types.message_create_params.MessageCreateParams.system; " + REFERENCE + "#body-system")
def system_field(request: Request) -> None:
    """`system` is a string, or a list of text blocks (each with non-empty text)."""
    system = request.body.get("system")
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid("system: Input should be a valid string or a list of text blocks")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid(f"system.{i}.type: Input should be 'text'")
        problem = text_problem(block)
        if problem:
            raise invalid(f"system: {problem}")


@rule(CONTEXT_WINDOWS)
def context_window(request: Request) -> None:
    """The input tokens (the count usage and count_tokens report, of the prompt the model reads: after server-side
    context management) and `max_tokens` together fit the model's window: the API refuses a request that does not,
    rather than cut its answer short."""
    if request.endpoint != "messages":
        return  # count_tokens counts a prompt of any length: it is how a client finds out it is too long
    window, wanted = request.limits.context_window, request.body["max_tokens"]
    if prompt_tokens_at_most(request.body) + wanted <= window:
        return  # far from the window, as most requests are (editing only shortens them): no exact count needed
    tokens = prompt_tokens(request.edited.body)
    if tokens > window:
        raise invalid(f"prompt is too long: {tokens} tokens > {window} maximum")
    if tokens + wanted > window:
        raise invalid(f"input length and `max_tokens` exceed context limit: {tokens} + {wanted} > {window}, "
                      "decrease input length or `max_tokens` and try again")


def text_problem(block: dict[str, Any]) -> str | None:
    """What is wrong with a text block's text, as the API says it, or None."""
    text = block.get("text")
    if not isinstance(text, str):
        return "text content blocks must have a string `text`"
    if not text:
        return "text content blocks must be non-empty"
    if text.isspace():
        return "text content blocks must contain non-whitespace text"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
