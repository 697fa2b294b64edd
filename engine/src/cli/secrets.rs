//! The master key that seals secrets at rest (see [`crate::secrets`]): where
//! `weft serve` finds it, and `weft secrets`, which makes a key and re-seals
//! the database under a new one.

use crate::secrets::{Keyring, MasterKey};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the master keys come from.
#[derive(Debug, Args)]
#[command(next_help_heading = "Secrets at rest")]
pub struct MasterKeyArgs {
    /// A file holding the master key (32 bytes in base64, from `weft secrets
    /// generate-key`). Without it or WEFT_MASTER_KEY, a SQLite database keeps
    /// its key in `<database file>.master-key`, made on first use; PostgreSQL
    /// needs one given.
    #[arg(long, env = "WEFT_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master key itself, in base64; prefer the environment to the
    /// command line, where other users can see it.
    #[arg(
        long,
        env = "WEFT_MASTER_KEY",
        hide_env_values = true,
        value_name = "BASE64",
        conflicts_with = "master_key_file"
    )]
    pub master_key: Option<String>,
    /// A file holding a previous master key: values it sealed still open,
    /// until `weft secrets rotate` re-seals them. Repeat for several.
    #[arg(
        long = "previous-master-key-file",
        env = "WEFT_PREVIOUS_MASTER_KEY_FILES",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub previous_master_key_files: Vec<PathBuf>,
}

impl MasterKeyArgs {
    /// The keyring for the database at `database_url`, and where its current
    /// key came from (for the start-up message).
    pub fn keyring(&self, database_url: &str) -> Result<(Arc<Keyring>, String)> {
        let (current, source) = match (&self.master_key, &self.master_key_file) {
            (Some(text), _) => (
                MasterKey::from_base64(text).context("WEFT_MASTER_KEY")?,
                "WEFT_MASTER_KEY".to_owned(),
            ),
            (None, Some(path)) => (read_key(path)?, path.display().to_string()),
            (None, None) => match sqlite_file(database_url) {
                Some(SqliteFile::Memory) => {
                    let keyring = Arc::new(Keyring::ephemeral());
                    return Ok((keyring, "a key as short-lived as the database".into()));
                }
                Some(SqliteFile::Path(database)) => {
                    let path = key_file_beside(&database);
                    (key_beside_database(&path)?, path.display().to_string())
                }
                None => bail!(
                    "secrets are sealed at rest: give the master key with --master-key-file \
                     or WEFT_MASTER_KEY (make one with `weft secrets generate-key`)"
                ),
            },
        };
        let previous = self
            .previous_master_key_files
            .iter()
            .map(|path| read_key(path))
            .collect::<Result<Vec<_>>>()?;
        let source = format!("master key {} from {source}", current.id());
        Ok((Arc::new(Keyring::new(current, previous)), source))
    }
}

fn read_key(path: &Path) -> Result<MasterKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the master key file {}", path.display()))?;
    MasterKey::from_base64(&text).with_context(|| format!("master key file {}", path.display()))
}

/// The key of a SQLite database that was given none: read from `path`, or
/// made there (readable by its owner only) on first use.
fn key_beside_database(path: &Path) -> Result<MasterKey> {
    if path.exists() {
        return read_key(path);
    }
    let text = MasterKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the master key file {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the master key file {}", path.display()))?;
    eprintln!(
        "weft: made the master key {} that seals this database's secrets; \
         back it up apart from the database (without it, the secrets are lost)",
        path.display()
    );
    MasterKey::from_base64(&text).map_err(|error| anyhow!(error))
}

enum SqliteFile {
    Memory,
    Path(PathBuf),
}

/// The file of a `sqlite:` database URL, if it is one.
fn sqlite_file(url: &str) -> Option<SqliteFile> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Some(SqliteFile::Memory);
    }
    Some(SqliteFile::Path(PathBuf::from(path)))
}

fn key_file_beside(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".master-key");
    PathBuf::from(name)
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a new random master key (base64), to keep in a file or a secret store.
    GenerateKey,
    /// Re-seal every secret in the database under the current master key.
    ///
    /// To replace the master key: run this with the new key as the master key
    /// and the old one as a previous key, then restart `weft serve` with the
    /// new key alone. Nodes still running with the old key alone cannot open
    /// what this re-sealed: give them both keys first.
    Rotate {
        /// The database `weft serve` uses.
        #[arg(long, default_value = "sqlite://weft.db", env = "WEFT_DATABASE_URL")]
        database_url: String,
        #[command(flatten)]
        keys: MasterKeyArgs,
    },
}

pub fn run(command: SecretsCommand) -> Result<()> {
    match command {
        SecretsCommand::GenerateKey => {
            println!("{}", MasterKey::generate());
            Ok(())
        }
        SecretsCommand::Rotate { database_url, keys } => {
            let (keyring, source) = keys.keyring(&database_url)?;
            let resealed = super::with_store(&database_url, Some(keyring), async |store| {
                store
                    .reseal_endpoint_secrets()
                    .await
                    .context("nothing was changed")
            })?;
            println!("re-sealed {resealed} secrets under {source}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_names_its_file() {
        let path = |url: &str| match sqlite_file(url) {
            Some(SqliteFile::Path(path)) => Some(path),
            _ => None,
        };
        assert_eq!(path("sqlite://weft.db"), Some("weft.db".into()));
        assert_eq!(
            path("sqlite:data/weft.db?mode=rwc"),
            Some("data/weft.db".into())
        );
        assert_eq!(
            path("sqlite:///var/lib/weft.db"),
            Some("/var/lib/weft.db".into())
        );
        assert!(matches!(
            sqlite_file("sqlite::memory:"),
            Some(SqliteFile::Memory)
        ));
        assert!(sqlite_file("postgres://db/weft").is_none());
        assert_eq!(
            key_file_beside(Path::new("data/weft.db")),
            PathBuf::from("data/weft.db.master-key")
        );
    }

    #[test]
    fn postgres_without_a_key_is_refused_with_the_way_out() {
        let keys = MasterKeyArgs {
            master_key_file: None,
            master_key: None,
            previous_master_key_files: Vec::new(),
        };
        let error = keys.keyring("postgres://db/weft").unwrap_err().to_string();
        assert!(error.contains("--master-key-file"), "{error}");
    }

    #[test]
    fn a_sqlite_database_gets_a_private_key_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("weft.db").display());
        let keys = MasterKeyArgs {
            master_key_file: None,
            master_key: None,
            previous_master_key_files: Vec::new(),
        };
        let (first, _) = keys.keyring(&url).unwrap();
        let (second, source) = keys.keyring(&url).unwrap();
        assert_eq!(first.current_key_id(), second.current_key_id());
        assert!(source.contains("weft.db.master-key"), "{source}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.path().join("weft.db.master-key");
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
