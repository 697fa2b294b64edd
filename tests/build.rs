//! Builds every wasm guest the tests load, from source: the first-party plugins
//! (`plugins/`), the misbehaving guests (`tests/guests/`) and the Rust template
//! plugin authors start from (`sdk/templates/rust-transform`), for wasm32-wasip2.
//!
//! The nested cargo uses its own target directory beside this build's, so it never
//! waits on the lock of the build that runs this script. Tests find the components
//! through `WEFT_GUEST_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

const WORKSPACES: [&str; 3] = ["plugins", "tests/guests", "sdk/templates/rust-transform"];

fn main() {
    let repo = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .parent()
        .unwrap()
        .to_owned();
    let target_dir = wasm_target_dir();
    for workspace in WORKSPACES {
        watch_sources(&repo.join(workspace));
        build(&repo.join(workspace).join("Cargo.toml"), &target_dir);
    }
    watch_sources(&repo.join("sdk"));
    println!("cargo:rerun-if-changed={}", repo.join("wit").display());
    println!(
        "cargo:rustc-env=WEFT_GUEST_DIR={}",
        target_dir.join("wasm32-wasip2").join("release").display()
    );
}

/// `<this build's target dir>/wasm`: found from OUT_DIR, which is
/// `<target dir>/<profile>/build/<crate>-<hash>/out`.
fn wasm_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is inside the target directory")
        .join("wasm")
}

fn build(manifest: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(manifest)
        // Cargo reads `.cargo/config.toml` from the working directory up, so run
        // from the workspace for its settings (the plugins' linker flags) to apply.
        .current_dir(manifest.parent().unwrap())
        .env("CARGO_TARGET_DIR", target_dir);
    // Flags meant for this build must not leak into the guests' build.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(variable);
    }
    let status = command
        .status()
        .expect("cannot run cargo to build the wasm guests");
    assert!(
        status.success(),
        "building {} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)",
        manifest.display()
    );
}

/// Re-run when a guest's Rust sources or manifests change; not for node_modules or
/// virtualenvs, which the JavaScript and Python plugins keep beside their sources.
fn watch_sources(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "node_modules" | ".venv" | "target" | "__pycache__" | "test"
            ) {
                watch_sources(&path);
            }
        } else if name.ends_with(".rs") || name.ends_with(".toml") || name.ends_with(".json") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
