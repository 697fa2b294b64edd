//! What happens to an event between capture and delivery, without plugins:
//! which subscriptions it matches ([`pattern_matches`]), whether it passes
//! their CEL [`Filter`], and the payload their [`PayloadTemplate`] makes of it.
//! The built-in [`Catalog`] of event types says which payloads are acceptable.
//!
//! Filters and templates see the same variables: the payload's top-level keys,
//! `data` (the whole payload) and `event` (`id`, `type`, `tenant`,
//! `occurred_at`, `timestamp`). Both are compiled once, when a subscription is
//! saved, so that a bad expression is refused then, not at delivery.
//!
//! [`batch`] joins the chain's outputs for a batching subscription into one
//! request whose body is a JSON array.

pub mod batch;
mod catalog;
pub mod chain;
mod context;
mod filter;
mod matching;
mod template;

#[cfg(test)]
mod samples;

pub use catalog::{Catalog, CatalogError, EventTypeDef, Module, PayloadError};
pub use filter::{Filter, FilterError, MAX_FILTER_BYTES};
pub use matching::{
    EventTypeError, MAX_EVENT_TYPE_LEN, PatternError, pattern_matches, validate_event_type,
    validate_pattern,
};
pub use template::{
    MAX_RENDERED_BYTES, MAX_TEMPLATE_SOURCE_BYTES, MAX_TEMPLATE_STRINGS, PayloadTemplate,
    TEMPLATE_FUEL, TemplateError, TemplatePart, TextTemplate, render_text,
};
