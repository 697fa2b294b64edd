"""Runs the table of cases shared with the Rust and JavaScript builds
(../redact-pii/cases.json) against the pure redaction logic."""

import json
import pathlib
import unittest

import plugin_info
from redact import PluginError, mask_text, parse_json, redact_event, to_json

SHARED = pathlib.Path(__file__).resolve().parent.parent / "redact-pii"


def config_json(row):
    if "config_text" in row:
        return row["config_text"]
    return to_json(row["config"]) if "config" in row else "{}"


def input_bytes(row):
    if "input_text" in row:
        return row["input_text"].encode("utf-8")
    if "input_bytes" in row:
        return bytes(int(b.text) for b in row["input_bytes"])
    return to_json(row["input"]).encode("utf-8")


class SharedCases(unittest.TestCase):
    # Read with the plugin's own parser, so that numbers keep their text.
    table = parse_json((SHARED / "cases.json").read_text(encoding="utf-8"))

    def test_cases(self):
        event_id = self.table["event_id"]
        for row in self.table["cases"]:
            with self.subTest(row["name"]):
                run = self.runner(event_id, row)
                if "error" in row:
                    self.check_error(run, row["error"])
                elif "expected_text" in row:
                    self.assertEqual(run(), row["expected_text"])
                else:
                    self.assertEqual(run(), to_json(row["expected"]))

    @staticmethod
    def runner(event_id, row):
        def run():
            return to_json(redact_event(event_id, input_bytes(row), config_json(row)))

        return run

    def check_error(self, run, expected):
        with self.assertRaises(PluginError) as raised:
            run()
        error = raised.exception
        self.assertEqual(error.kind, expected["kind"])
        if "message" in expected:
            self.assertEqual(error.message, expected["message"])
        if "starts_with" in expected:
            self.assertTrue(
                error.message.startswith(expected["starts_with"]), error.message
            )


class Masking(unittest.TestCase):
    def test_masks_by_code_point(self):
        self.assertEqual(mask_text("4111111111111111", 4), "************1111")
        self.assertEqual(mask_text("\U0001F600\U0001F600\U0001F600abc", 4), "**\U0001F600abc")
        self.assertEqual(mask_text("abc", 0), "***")
        self.assertEqual(mask_text("", 4), "")


class Nesting(unittest.TestCase):
    def test_deep_payloads_are_refused_before_parsing(self):
        # Parsing 100000 levels would exhaust the component's stack, not just fail.
        for depth in (128, 100_000):
            with self.assertRaisesRegex(ValueError, "nesting deeper than 127"):
                parse_json("[" * depth + "]" * depth)

    def test_brackets_in_strings_do_not_count(self):
        text = '{"a":"' + "[" * 200 + '\\""}'
        self.assertEqual(to_json(parse_json(text)), text)


class Describe(unittest.TestCase):
    def test_schema_is_the_canonical_one_serialised_as_the_rust_build_does(self):
        canonical = (SHARED / "config.schema.json").read_text(encoding="utf-8")
        self.assertEqual(plugin_info.CONFIG_SCHEMA_JSON, to_json(parse_json(canonical)))
        self.assertEqual(plugin_info.CONFIG_SCHEMA, json.loads(canonical))


if __name__ == "__main__":
    unittest.main()
