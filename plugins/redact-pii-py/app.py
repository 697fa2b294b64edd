"""The component's entry point: the `transformer` world of weft:plugin@0.1.0.

componentize-py maps the world onto this module: a class named `WitWorld`
implements the world's exports as methods (`describe`, `transform`); the imported
`host` interface is `wit_world.imports.host`; records are dataclasses in
`wit_world.imports.types`; returning is the `ok` case of a `result`, and raising
`componentize_py_types.Err(<plugin-error case>)` is its `err` case.
"""

import componentize_py_types
import wit_world
from wit_world.imports import host
from wit_world.imports.types import (
    Event,
    PluginError_Internal,
    PluginError_InvalidConfig,
    PluginError_InvalidEvent,
    PluginInfo,
    Request,
)

import plugin_info
from redact import PluginError, redact_event, to_json

ERROR_CASES = {
    "invalid-event": PluginError_InvalidEvent,
    "invalid-config": PluginError_InvalidConfig,
}


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=plugin_info.NAME,
            version=plugin_info.VERSION,
            description=plugin_info.DESCRIPTION,
            config_schema=plugin_info.CONFIG_SCHEMA_JSON,
        )

    def transform(self, e: Event) -> list[Request]:
        try:
            payload = redact_event(e.id, e.data, host.config())
            body = to_json(payload).encode("utf-8")
        except PluginError as error:
            raise componentize_py_types.Err(ERROR_CASES[error.kind](error.message))
        except Exception as error:
            # A bug: report it as one rather than as an opaque trap.
            raise componentize_py_types.Err(PluginError_Internal(repr(error)))
        return [
            Request(
                method=None,
                url=None,
                headers=[("content-type", "application/json")],
                body=body,
            )
        ]
