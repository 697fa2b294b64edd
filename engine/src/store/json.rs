//! Structured fields (headers, retry policies, patterns, plugin chains,
//! payloads) are stored as JSON text: both backends hold it the same way, and
//! the schema does not change each time a field is added to one of them.

use super::database::Row;
use super::error::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;

/// `value` as JSON text, for a column.
pub(super) fn to_json<T: Serialize>(value: &T, what: impl Display) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|error| StoreError::Invalid(format!("{what} cannot be stored as JSON: {error}")))
}

/// The JSON text in `column` of `row`, decoded; `owner` names the object it
/// belongs to (`endpoint ep_…`) for the error message.
pub(super) fn json_column<T: DeserializeOwned>(
    row: &Row,
    column: &str,
    owner: impl Display,
) -> Result<T, StoreError> {
    let text: String = row.get(column)?;
    decode(&text, column, owner)
}

/// Like [`json_column`], for a nullable column.
pub(super) fn optional_json_column<T: DeserializeOwned>(
    row: &Row,
    column: &str,
    owner: impl Display,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.get(column)?;
    text.map(|text| decode(&text, column, owner)).transpose()
}

/// The JSON `text` of `column`, decoded; for columns read otherwise than
/// whole (sealed ones, say).
pub(super) fn decode<T: DeserializeOwned>(
    text: &str,
    column: &str,
    owner: impl Display,
) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("{column} of {owner}: {error}")))
}
