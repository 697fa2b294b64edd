"""A Weft transform that wraps each event's payload in an envelope saying which event
it is:

    {"event": "sales_order.created", "id": "evt_2KqJ7vT9mWcXbR4sLpN8dFh3Ya", "data": {"order": {}}}

Start your own plugin from here: rename it in `describe`, then change `transform`.

componentize-py maps the `transformer` world of weft:plugin@0.1.0 onto this module:
- a class named `WitWorld` implements the world's exports as methods, `describe`
  and `transform`;
- records are dataclasses in `wit_world.imports.types` with snake_case fields
  (`e.event_type`; `e.data` is bytes); an `option` is a value or None;
- returning is the `ok` case of a `result`; raising
  `componentize_py_types.Err(PluginError_InvalidEvent("why"))` (or another case of
  `plugin-error`) is its `err` case;
- the host's functions are in `wit_world.imports.host`:
      from wit_world.imports import host
      settings = json.loads(host.config())
      host.log(host.LogLevel.INFO, "wrapped the payload")

Only the standard library is available inside the component.
"""

import json

import componentize_py_types
import wit_world
from wit_world.imports.types import Event, PluginError_InvalidEvent, PluginInfo, Request


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="envelope",
            version="0.1.0",
            description="Wraps the payload with the event's type and id",
            # A JSON Schema for the plugin's configuration; {} accepts any (none is used).
            config_schema="{}",
        )

    def transform(self, e: Event) -> list[Request]:
        data = payload_json(e)
        # The payload goes in as published rather than through json.dumps(json.loads(...)),
        # so that numbers and keys reach the receiver exactly as they were written.
        # To reshape a payload, parse it and build the body you need with json.dumps.
        event_type, event_id = json_string(e.event_type), json_string(e.id)
        body = '{"event":%s,"id":%s,"data":%s}' % (event_type, event_id, data)
        return [
            Request(
                method=None,  # the endpoint's method (POST unless configured otherwise)
                url=None,  # the endpoint's URL
                headers=[("content-type", "application/json")],
                body=body.encode("utf-8"),
            )
        ]


def payload_json(e: Event) -> str:
    """The payload's JSON text.

    A payload that is not JSON fails as an invalid event: Weft dead-letters it instead
    of retrying something that can never succeed.
    """
    try:
        text = bytes(e.data).decode("utf-8")
        json.loads(text, parse_constant=refuse_constant)
    except ValueError as error:
        message = f"{e.event_type} payload of {e.id}: {error}"
        raise componentize_py_types.Err(PluginError_InvalidEvent(message)) from None
    return text.strip(" \t\r\n")


def json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def refuse_constant(name: str):
    # Python's json accepts NaN and Infinity; JSON does not.
    raise ValueError(f"{name} is not JSON")
