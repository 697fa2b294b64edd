//! What can go wrong in the store, in terms its callers can act on: the API maps
//! `NotFound` to 404, `Conflict` to 409, `Invalid` to 400, the rest to 500.

/// A failed store operation. Every message names the object or input at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist in the tenant (it may exist in another one).
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The operation contradicts what is stored: a duplicate, or an object still in use.
    #[error("{0}")]
    Conflict(String),
    /// Event `index` of a capture repeats a stored (or earlier) event by its
    /// id or idempotency key, but is not the same event: another type,
    /// payload or metadata.
    #[error(
        "{by} already names event {existing}, which has another type, payload or metadata: \
         an idempotency key (or an event id) stands for one event; use a new one for a new event"
    )]
    Repeated {
        index: usize,
        existing: String,
        by: String,
    },
    /// The caller passed something the store cannot write as given.
    #[error("{0}")]
    Invalid(String),
    /// The database failed; the message says what was being done.
    #[error("database error while {0}")]
    Database(String),
    /// A stored value cannot be decoded: the database was changed behind Weft's back.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A sealed secret cannot be sealed or opened: no master key, or not the
    /// one that sealed it.
    #[error("sealed secrets: {0}")]
    Sealed(String),
}

impl StoreError {
    pub(super) fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    /// Wraps a database error with what was being done: `database("claiming deliveries")`.
    pub(super) fn database(doing: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let doing = doing.into();
        move |error| {
            if is_unstorable_text(&error) {
                Self::Invalid(format!(
                    "{doing}: a text value contains the NUL character (U+0000), which cannot be stored"
                ))
            } else {
                Self::Database(format!("{doing}: {error}"))
            }
        }
    }
}

/// PostgreSQL refuses NUL in text (SQLSTATE 22021); the API checks the texts it
/// knows of, and this turns any it missed into a 400 instead of a 500.
fn is_unstorable_text(error: &sqlx::Error) -> bool {
    const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(CHARACTER_NOT_IN_REPERTOIRE))
}
