"""The tools every sandbox offers: names, JSON schemas shown to the model, and input validation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


class ToolError(Exception):
    """A tool call that failed; its message is what the model sees as the tool result."""


MAX_INPUT_DEPTH = 32  # levels of nesting in a tool's input (every tool takes a flat object)
MAX_INPUT_CHARS = 16_000_000  # characters in all of a tool input's strings together (other values count 1)
_MAX_MESSAGE = 500  # characters of a schema error quoted back to the model


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    idempotent: bool  # safe to run again after a crash left its outcome unknown
    read_only: bool = False  # changes nothing in the workspace

    def to_api(self) -> dict[str, Any]:
        """The Messages API `tools` entry."""
        return {"name": self.name, "description": self.description, "input_schema": dict(self.input_schema)}


def object_schema(required: list[str], **properties: dict) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_PATH = {"type": "string", "minLength": 1, "description": "Path relative to the workspace root."}

TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in [
        ToolSpec(
            "bash",
            "Run a bash command in the workspace. Output (stdout and stderr) is capped; "
            "a non-zero exit status is reported as an error.",
            object_schema(
                ["command"],
                command={"type": "string", "minLength": 1},
                timeout={"type": "number", "exclusiveMinimum": 0, "description": "Seconds (capped by the sandbox)."},
            ),
            idempotent=False,
        ),
        ToolSpec(
            "read_file",
            "Read a UTF-8 text file. `offset` (1-based line) and `limit` (lines) select a range.",
            object_schema(
                ["path"],
                path=_PATH,
                offset={"type": "integer", "minimum": 1},
                limit={"type": "integer", "minimum": 1},
            ),
            idempotent=True,
            read_only=True,
        ),
        ToolSpec(
            "write_file",
            "Create or overwrite a file with `content`, creating parent directories.",
            object_schema(["path", "content"], path=_PATH, content={"type": "string"}),
            idempotent=True,
        ),
        ToolSpec(
            "edit_file",
            "Replace the exact text `old_string` with `new_string`; `old_string` must occur exactly once.",
            object_schema(
                ["path", "old_string", "new_string"],
                path=_PATH,
                old_string={"type": "string", "minLength": 1},
                new_string={"type": "string"},
            ),
            idempotent=False,
        ),
        ToolSpec(
            "list_files",
            "List files under a directory (default: the workspace root), one path per line; directories end in '/'.",
            object_schema([], path=_PATH, recursive={"type": "boolean"}),
            idempotent=True,
            read_only=True,
        ),
    ]
}


def validate_input(name: str, input: Any, tools: Mapping[str, ToolSpec] = TOOLS) -> ToolSpec:
    """Return the tool's spec, or raise ToolError naming what was wrong and what is valid."""
    spec = tools.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ToolError(f"unknown tool {name!r}; available tools: {', '.join(sorted(tools))}")
    _check_size(name, spec, input)
    validator = _validator(spec)
    if validator.is_valid(input):
        if name == "bash":
            _check_command(input["command"])
        return spec
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(input))
    if error is not None:
        where = "".join(f"[{p!r}]" for p in error.absolute_path)
        message = error.message if len(error.message) <= _MAX_MESSAGE else error.message[:_MAX_MESSAGE] + " [...]"
        raise ToolError(f"invalid input for {name}{' at ' + where[:_MAX_MESSAGE] if where else ''}: {message}. "
                        f"{name} takes {signature(spec)}")
    return spec


def _check_size(name: str, spec: ToolSpec, input: Any) -> None:
    """ToolError if `input` is nested deeper than MAX_INPUT_DEPTH or holds more than MAX_INPUT_CHARS: checked
    without recursion, before anything (a schema validator, an error message, a JSON encoder) recurses into it."""
    if nested_deeper_than(input, MAX_INPUT_DEPTH):
        raise ToolError(f"invalid input for {name}: nested more than {MAX_INPUT_DEPTH} levels deep. "
                        f"{name} takes {signature(spec)}")
    if sum(len(value) if isinstance(value, str) else 1 for value, _ in _values(input)) > MAX_INPUT_CHARS:
        raise ToolError(f"invalid input for {name}: more than {MAX_INPUT_CHARS} characters in all; "
                        "write large content in parts, or generate it with bash")


def nested_deeper_than(value: Any, depth: int) -> bool:
    """Whether JSON-like `value` nests more than `depth` levels (a scalar is one), found without recursion."""
    return any(level > depth for _, level in _values(value, stop_below=depth + 1))


def _values(value: Any, stop_below: int | None = None):
    """(every value in `value`, its depth), keys of objects too, depth first; none below depth `stop_below`."""
    pending = [(value, 1)]
    while pending:
        value, depth = pending.pop()
        yield value, depth
        if stop_below is not None and depth >= stop_below:
            continue
        if isinstance(value, dict):
            pending.extend((key, depth + 1) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, (list, tuple)):
            pending.extend((item, depth + 1) for item in value)


def _check_command(command: str) -> None:
    """A command bash can be given: no NUL byte (an argument cannot hold one), only encodable text."""
    if "\x00" in command:
        raise ToolError(f"invalid input for bash: the command holds a NUL byte (at character {command.index(chr(0))}), "
                        "which no command line can; write such bytes with printf '\\0'")
    try:
        command.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError as exc:
        raise ToolError(f"invalid input for bash: the command holds a lone surrogate at character {exc.start}, "
                        "which is not text") from None


def signature(spec: ToolSpec) -> str:
    """A one-line description of a tool's input, e.g. `{path: string, content: string}`."""
    schema = spec.input_schema
    parts = [
        f"{key}{'' if key in schema['required'] else '?'}: {prop['type']}"
        for key, prop in schema["properties"].items()
    ]
    return "{" + ", ".join(parts) + "}"


_VALIDATORS: dict[str, Any] = {}  # by tool name and schema


def _validator(spec: ToolSpec) -> Any:
    from jsonschema import Draft202012Validator

    key = f"{spec.name}:{id(spec.input_schema)}"
    if key not in _VALIDATORS:
        _VALIDATORS[key] = Draft202012Validator(spec.input_schema)
    return _VALIDATORS[key]
