//! The host side of `wit/`: the one place that runs `bindgen!`.
//!
//! The three worlds share the `types` and `host` interfaces, generated once in
//! `filter` and reused by the others, so one `Host` implementation serves them all.

pub mod filter {
    wasmtime::component::bindgen!({
        world: "filter",
        path: "../wit/v0.1.0",
        additional_derives: [PartialEq, Eq],
    });
}

pub mod transformer {
    wasmtime::component::bindgen!({
        world: "transformer",
        path: "../wit/v0.1.0",
        with: {
            "weft:plugin/types@0.1.0": crate::runtime::bindings::filter::weft::plugin::types,
            "weft:plugin/host@0.1.0": crate::runtime::bindings::filter::weft::plugin::host,
        },
    });
}

pub mod integration {
    wasmtime::component::bindgen!({
        world: "integration",
        path: "../wit/v0.1.0",
        with: {
            "weft:plugin/types@0.1.0": crate::runtime::bindings::filter::weft::plugin::types,
            "weft:plugin/host@0.1.0": crate::runtime::bindings::filter::weft::plugin::host,
        },
    });
}

pub use filter::weft::plugin::{host, types};

/// The package every world belongs to; imports name it with their version.
pub const CONTRACT_PACKAGE: &str = "weft:plugin";
/// The contract version this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
