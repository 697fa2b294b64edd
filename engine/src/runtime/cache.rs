//! Compiled plugins on disk, so that a restart does not recompile them.
//!
//! A component compiled by Cranelift is serialised to
//! `<dir>/<content sha256>-<engine tag>.cwasm`. The engine tag changes with
//! Wasmtime's version and the engine's settings, so an artifact is only ever
//! loaded by an engine that could have produced it; Wasmtime checks this again when
//! it deserialises.
//!
//! **Trust:** loading an artifact maps machine code into the process. The directory
//! must be writable by Weft alone.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_tag: String,
}

impl ArtifactCache {
    pub(crate) fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_tag: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_tag))
    }

    /// The compiled component for `digest`, if a usable artifact is on disk.
    pub(crate) fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store` below from `Component::serialize`
        // of this engine's configuration (the tag in its name says so), in a
        // directory only Weft writes to. Wasmtime verifies the header again.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable compiled plugin");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes an artifact atomically: readers see the whole file or none.
    pub(crate) fn store(&self, digest: &str, artifact: &[u8]) -> std::io::Result<()> {
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(artifact)?;
        file.as_file().sync_all()?;
        file.persist(self.path(digest)).map_err(|e| e.error)?;
        Ok(())
    }
}
