"""The redaction itself, free of host calls so that `python3 -m unittest` runs it as is.

A path is a list of segments separated by dots. Each segment looks up an object key;
on an array, `*` means every element and a decimal segment means that index. A path
that leads nowhere is ignored: events of one type do not all carry every optional
field.

JSON is read and written so that nothing a redaction does not touch changes, as in
the Rust and JavaScript builds: objects keep their key order (dicts do), numbers keep
the text they were written with (`JsonNumber`; only the exponent is normalised), and
what is accepted is what RFC 8259 and serde_json accept, nesting limit included.
"""

import json
import re
from itertools import accumulate
from json.encoder import encode_basestring

# How many trailing characters `mask` leaves in clear unless configured otherwise.
DEFAULT_KEEP_LAST = 4
# The largest `keep_last` the configuration schema allows.
MAX_KEEP_LAST = 16
# What a masked object or array becomes: its shape and size could be personal too.
REDACTED = "[redacted]"
# serde_json refuses the 128th level of nesting; the other builds follow it.
MAX_DEPTH = 127
DIGITS = re.compile(r"[0-9]+")
# A \u escape of a surrogate: only then can a parsed string hold a lone one.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE = re.compile("[\ud800-\udfff]")
EXPONENT = re.compile(r"[eE]([+-]?)")
STRING_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
NOT_BRACKET = re.compile(r"[^\[\]{}]+")
NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}


class PluginError(Exception):
    """Why the plugin could not handle an event; `kind` is the `plugin-error` case."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class JsonNumber:
    """A JSON number, kept as the text it was written with."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, JsonNumber) and other.text == self.text

    def __repr__(self):
        return f"JsonNumber({self.text!r})"


def _float(text):
    # serde_json writes an exponent as e+N or e-N whatever the input said (1E5 is
    # 1e+5), the one liberty it takes with a number's text; the other builds take it too.
    return JsonNumber(EXPONENT.sub(lambda m: "e" + (m.group(1) or "+"), text))


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def parse_json(text):
    """Parses JSON text into dicts, lists, strs, JsonNumbers, bools and None."""
    # json.loads recurses without a limit that fits the component's stack, and
    # accepts deeper nesting than the other builds: check first.
    if _nests_too_deep(text):
        raise ValueError(f"nesting deeper than {MAX_DEPTH} levels")
    value = json.loads(
        text,
        parse_int=JsonNumber,
        parse_float=_float,
        parse_constant=_refuse_constant,
    )
    # json.loads accepts lone surrogates; the other builds do not.
    if SURROGATE_ESCAPE.search(text):
        _check_surrogates(value)
    return value


def _nests_too_deep(text):
    """Whether arrays and objects nest deeper than MAX_DEPTH, found without recursion
    and at the speed of C: strip strings, keep brackets, sum +1/-1 along them."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    brackets = NOT_BRACKET.sub("", STRING_TOKEN.sub("", text))
    return max(accumulate(map(NESTING.__getitem__, brackets)), default=0) > MAX_DEPTH


def _check_surrogates(value):
    if isinstance(value, str):
        if SURROGATE.search(value):
            raise ValueError("lone surrogate in string")
    elif isinstance(value, dict):
        for key, child in value.items():
            _check_surrogates(key)
            _check_surrogates(child)
    elif isinstance(value, list):
        for child in value:
            _check_surrogates(child)


def to_json(value):
    """Serialises a parsed value as compact JSON, escaping strings as serde_json does."""
    parts = []
    _write(value, parts)
    return "".join(parts)


def _write(value, parts):
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(encode_basestring(value))
    elif isinstance(value, JsonNumber):
        parts.append(value.text)
    elif isinstance(value, list):
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    elif isinstance(value, dict):
        parts.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                parts.append(",")
            parts.append(encode_basestring(key))
            parts.append(":")
            _write(item, parts)
        parts.append("}")
    else:
        raise TypeError(f"cannot serialise {type(value).__name__} as JSON")


class Config:
    """What to redact, read from the plugin's configuration."""

    def __init__(self, remove=(), mask=(), keep_last=DEFAULT_KEEP_LAST):
        self.remove = list(remove)
        self.mask = list(mask)
        self.keep_last = keep_last


def parse_config(text):
    """Parses and checks the configuration.

    Weft validates it against the schema before the plugin runs, but a plugin that
    silently redacted nothing because of a misspelt key would leak exactly what it
    exists to hide, so it checks again and names the offending key.
    """
    try:
        fields = parse_json(text)
    except (ValueError, RecursionError) as e:
        raise PluginError("invalid-config", f"config is not valid JSON: {e}") from None
    if not isinstance(fields, dict):
        raise PluginError("invalid-config", "config must be a JSON object")
    config = Config()
    for key, value in fields.items():
        if key == "remove":
            config.remove = _paths(key, value)
        elif key == "mask":
            config.mask = _paths(key, value)
        elif key == "keep_last":
            config.keep_last = _keep_last(value)
        else:
            raise PluginError("invalid-config", f'unknown config key "{key}"')
    return config


def _paths(key, value):
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise PluginError(
            "invalid-config", f'config "{key}" must be an array of non-empty strings'
        )
    return value


def _keep_last(value):
    # An integer in JSON Schema's sense, as the host's validator sees it: 4.0 is one.
    n = float(value.text) if isinstance(value, JsonNumber) else None
    if n is None or not n.is_integer() or not 0 <= n <= MAX_KEEP_LAST:
        raise PluginError(
            "invalid-config",
            f'config "keep_last" must be an integer from 0 to {MAX_KEEP_LAST}',
        )
    return int(n)


def parse_payload(event_id, data):
    """Parses the event's payload.

    Anything but JSON can never be redacted, so it is an invalid event rather than a
    transient failure.
    """
    try:
        # Strict UTF-8, and a byte order mark is refused as the other builds refuse it.
        return parse_json(bytes(data).decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise PluginError(
            "invalid-event", f"event {event_id}: data is not valid JSON: {e}"
        ) from None


def redact_event(event_id, data, config_json):
    """What the transform does to one event, short of the host calls.

    Checks the configuration first (a bad one fails every event, so it is the error
    to report), then parses and redacts the payload.
    """
    config = parse_config(config_json)
    payload = parse_payload(event_id, data)
    redact(payload, config)
    return payload


def redact(payload, config):
    """Applies every removal, then every mask, in the order configured."""
    for path in config.remove:
        _remove(payload, path)
    for path in config.mask:
        _mask(payload, path, config.keep_last)


def _remove(root, path):
    # Removing array elements shifts the ones after them, as deleting from a list
    # does; `*` as the last segment empties the array.
    parents, last = _parents(root, path)
    for parent in parents:
        if isinstance(parent, dict):
            parent.pop(last, None)
        elif isinstance(parent, list):
            if last == "*":
                parent.clear()
            else:
                i = _index(last)
                if i is not None and i < len(parent):
                    del parent[i]


def _mask(root, path, keep_last):
    parents, last = _parents(root, path)
    for parent in parents:
        for container, key in _slots(parent, last):
            container[key] = _masked(container[key], keep_last)


def _parents(root, path):
    """The values the path's segments before the last lead to, and that last segment."""
    *init, last = path.split(".")
    level = [root]
    for segment in init:
        level = [c[k] for value in level for c, k in _slots(value, segment)]
    return level, last


def _slots(value, segment):
    """Where one segment leads from `value`, as (container, key) pairs."""
    if isinstance(value, dict):
        return [(value, segment)] if segment in value else []
    if isinstance(value, list):
        if segment == "*":
            return [(value, i) for i in range(len(value))]
        i = _index(segment)
        return [(value, i)] if i is not None and i < len(value) else []
    return []


def _index(segment):
    # ASCII digits only: int() would also take "٣", " 1" and "1_0".
    if not DIGITS.fullmatch(segment):
        return None
    try:
        return int(segment)
    except ValueError:
        # Past Python's 4300-digit limit, and so past the end of any array.
        return None


def _masked(value, keep_last):
    if value is None:
        return None
    if isinstance(value, str):
        return mask_text(value, keep_last)
    if isinstance(value, bool):
        return mask_text("true" if value else "false", keep_last)
    if isinstance(value, JsonNumber):
        return mask_text(value.text, keep_last)
    return REDACTED


def mask_text(text, keep_last):
    """Replaces all but the last `keep_last` code points of `text` with `*`.

    A text no longer than `keep_last` is hidden whole, or masking would reveal it
    entirely.
    """
    if len(text) <= keep_last:
        return "*" * len(text)
    hidden = len(text) - keep_last
    return "*" * hidden + text[hidden:]
