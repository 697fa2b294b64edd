"""What the plugin says about itself, apart from the WIT entry point so that the tests
can check it."""

import json

NAME = "redact-pii"
VERSION = "0.1.0"
DESCRIPTION = "Removes or masks personal data before delivery"

# A copy of ../redact-pii/config.schema.json, the canonical schema shared by the Rust,
# JavaScript and Python builds (a component cannot read files when it runs).
# test_redact.py fails if the two differ.
CONFIG_SCHEMA = {
    "type": "object",
    "description": "Which fields of the event payload to delete or mask before delivery. Paths are dotted (customer.email); on an array, * means every element and a number means that index.",
    "additionalProperties": False,
    "properties": {
        "remove": {
            "description": "Paths of fields to delete. Applied before mask. A path that does not exist is ignored.",
            "type": "array",
            "items": {
                "type": "string",
                "minLength": 1
            },
            "default": []
        },
        "mask": {
            "description": "Paths of fields whose value is replaced by asterisks, keeping the last keep_last characters. Numbers and booleans are masked as their JSON text, null stays null, and an object or array becomes \"[redacted]\".",
            "type": "array",
            "items": {
                "type": "string",
                "minLength": 1
            },
            "default": []
        },
        "keep_last": {
            "description": "How many trailing characters (Unicode code points) a masked value keeps in clear.",
            "type": "integer",
            "minimum": 0,
            "maximum": 16,
            "default": 4
        }
    }
}

# Compact, as the Rust and JavaScript builds serialise it.
CONFIG_SCHEMA_JSON = json.dumps(CONFIG_SCHEMA, separators=(",", ":"), ensure_ascii=False)
