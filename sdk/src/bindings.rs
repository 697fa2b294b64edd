//! The guest bindings wit-bindgen generates from `wit/`, one module per world.
//!
//! Plugin authors never name these: the `filter!`, `transformer!` and `integration!`
//! macros wire a plugin type to them. The three worlds share the `types` and `host`
//! interfaces, generated once in `filter` and reused by the others.

// Generated glue takes every field of a record as an argument.
#[allow(clippy::too_many_arguments)]
pub mod filter {
    wit_bindgen::generate!({
        world: "filter",
        path: "../wit/v0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_filter_world",
        default_bindings_module: "weft_sdk::__private::filter",
    });
}

#[allow(clippy::too_many_arguments)]
pub mod transformer {
    wit_bindgen::generate!({
        world: "transformer",
        path: "../wit/v0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_transformer_world",
        default_bindings_module: "weft_sdk::__private::transformer",
        with: {
            "weft:plugin/types@0.1.0": crate::bindings::filter::weft::plugin::types,
            "weft:plugin/host@0.1.0": crate::bindings::filter::weft::plugin::host,
        },
    });
}

#[allow(clippy::too_many_arguments)]
pub mod integration {
    wit_bindgen::generate!({
        world: "integration",
        path: "../wit/v0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_integration_world",
        default_bindings_module: "weft_sdk::__private::integration",
        with: {
            "weft:plugin/types@0.1.0": crate::bindings::filter::weft::plugin::types,
            "weft:plugin/host@0.1.0": crate::bindings::filter::weft::plugin::host,
        },
    });
}

pub use filter::weft::plugin::{host, types};
