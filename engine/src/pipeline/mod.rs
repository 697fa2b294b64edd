//! What a worker does to a captured event before delivery: a subscription's
//! [`chain`] runs its CEL [`Filter`], its plugins and the payload its
//! [`PayloadTemplate`] makes of the event. (Which subscriptions an event goes
//! to is decided at capture, by [`crate::ingest`].)
//!
//! Filters and templates see the same variables: the payload's top-level keys,
//! `data` (the whole payload) and `event` (`id`, `type`, `tenant`,
//! `occurred_at`, `timestamp`). Both are compiled once, when a subscription is
//! saved, so that a bad expression is refused then, not at delivery.
//!
//! [`batch`] joins the chain's outputs for a batching subscription into one
//! request whose body is a JSON array.

pub mod batch;
pub mod chain;
mod context;
mod filter;
mod offload;
mod template;

pub use filter::{
    Cost as FilterCost, Filter, FilterError, MAX_BYTES as MAX_FILTER_MEMORY, MAX_FILTER_BYTES,
    MAX_STEPS as MAX_FILTER_STEPS,
};
pub use offload::off_the_runtime;
pub use template::{
    MAX_RENDERED_BYTES, MAX_TEMPLATE_SOURCE_BYTES, MAX_TEMPLATE_STRINGS, PAYLOAD_TEMPLATE_FUEL,
    PayloadTemplate, TEMPLATE_FUEL, TEXT_TEMPLATE_FUEL, TemplateError, TemplatePart, TextTemplate,
    render_text,
};
