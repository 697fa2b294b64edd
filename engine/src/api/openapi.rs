//! `GET /openapi.json`: the API described for clients and tooling.

use axum::Json;
use serde_json::{Value, json};

fn operation(summary: &str, success: &str) -> Value {
    json!({
        "summary": summary,
        "responses": {
            success: { "description": "success" },
            "401": { "description": "no credential, or one that is not valid, revoked or expired" },
            "403": { "description": "the caller's role lacks the access, or its key is used from outside its networks" },
            "4XX": { "description": "a problem document naming the field at fault",
                     "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } }
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "Weft", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Webhook engine: capture events, match subscriptions, run plugins, deliver signed requests." },
        "paths": {
            "/v1/events": { "post": operation("Publish one event; 202 means it is on disk", "202") },
            "/v1/events/batch": { "post": operation("Publish up to 1000 events atomically", "202") },
            "/v1/events/{id}": { "get": operation("Show a captured event", "200") },
            "/v1/event-types": { "get": operation("List built-in and custom event types", "200"),
                                 "post": operation("Add a custom event type with its JSON Schema", "201") },
            "/v1/event-types/{name}": { "get": operation("Show an event type and its schema", "200") },
            "/v1/endpoints": { "get": operation("List endpoints with their health, a page at a time (limit, after; next_after), filtered by health state (health=healthy|degraded|failing|disabled)", "200"), "post": operation("Create an endpoint", "201") },
            "/v1/endpoints/{id}": { "get": operation("Show an endpoint and its health: circuit, success rate and latency over 5m, 1h, 24h, last success and failure, backlog", "200"), "put": operation("Replace an endpoint", "200"),
                                    "delete": operation("Delete an endpoint no subscription uses", "204") },
            "/v1/endpoints/{id}/replay-failed": { "post": operation("Replay the endpoint's failed deliveries in a time range", "202") },
            "/v1/endpoints/{id}/disable": { "post": operation("Disable an endpoint ({\"reason\": …} optional): its pending deliveries are kept as skipped; publishes weft.endpoint.disabled", "200") },
            "/v1/endpoints/{id}/enable": { "post": operation("Enable an endpoint, its circuit closed", "200") },
            "/v1/endpoints/{id}/recover": { "post": operation("Deliver, in capture order, what the endpoint skipped while disabled (since: unix ms or RFC 3339; all without it)", "200") },
            "/v1/endpoints/{id}/rotate-secret": { "post": operation("Replace the signing secret (shown once); the old one also signs for a grace period", "200") },
            "/v1/subscriptions": { "get": operation("List subscriptions, a page at a time (limit, after; next_after)", "200"), "post": operation("Create a subscription", "201") },
            "/v1/subscriptions/{id}": { "get": operation("Show a subscription", "200"), "put": operation("Replace a subscription", "200"),
                                        "delete": operation("Delete a subscription", "204") },
            "/v1/subscriptions/{id}/preview": { "post": operation("Run a sample event through the chain, delivering nothing", "200") },
            "/v1/subscriptions/{id}/resume": { "post": operation("Resume a subscription a plugin paused, releasing its held deliveries", "200") },
            "/v1/deliveries": { "get": operation("Search deliveries by status, endpoint, subscription, event type, time", "200") },
            "/v1/deliveries/{id}": { "get": operation("Show a delivery and its attempts", "200") },
            "/v1/deliveries/{id}/attempts": { "get": operation("List a delivery's attempts", "200") },
            "/v1/deliveries/{id}/replay": { "post": operation("Deliver again", "202") },
            "/v1/plugins": { "get": operation("List plugins", "200"), "post": operation("Upload a plugin component (application/wasm)", "201") },
            "/v1/plugins/{name}": { "get": operation("List a plugin's versions", "200") },
            "/v1/api-keys": { "get": operation("List the tenant's API keys (admins)", "200"),
                              "post": operation("Create an API key, shown once in the answer (admins)", "201") },
            "/v1/api-keys/{id}": { "delete": operation("Revoke an API key (admins)", "200") },
            "/v1/audit": { "get": operation("Search the audit log by action, actor, object, outcome, time (admins)", "200") },
            "/v1/settings": { "get": operation("The tenant's settings: how many days its history is kept (its own choice, and the one in effect)", "200"),
                              "put": operation("Set how many days the tenant's history is kept, 1 to 3650, or null for the server's default (admins)", "200") }
        },
        "security": [{ "bearer": [] }],
        "components": {
          "securitySchemes": { "bearer": {
            "type": "http", "scheme": "bearer",
            "description": "An API key (`weft_…`: its tenant and role) or a JWT of the issuer `weft serve` trusts (tenant and role in its claims). Roles: admin (everything, keys included), integration-admin (configuration and replays, reads), publisher (publishes events only), viewer (reads)."
          } },
          "schemas": { "Problem": {
            "type": "object",
            "required": ["type", "title", "detail"],
            "properties": {
                "type": { "type": "string" }, "title": { "type": "string" }, "detail": { "type": "string" },
                "field": { "type": "string" }, "errors": { "type": "array", "items": { "type": "string" } }
            }
        } } }
    }))
}
