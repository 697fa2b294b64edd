//! Pages of a tenant's configuration objects: `?limit=` (1 to
//! [`MAX_PAGE_SIZE`], [`DEFAULT_PAGE_SIZE`] unless given) and `?after=` the
//! last id of the page before. A full page comes with `next_after`, the id to
//! ask for the next one from.

use super::ApiError;
use crate::store::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageParams {
    limit: Option<u32>,
    after: Option<String>,
}

impl PageParams {
    pub(super) fn new(limit: Option<u32>, after: Option<String>) -> Self {
        Self { limit, after }
    }

    /// The page asked for; the id `after` checked with `parse_id`.
    pub(super) fn page<T, E: std::fmt::Display>(
        &self,
        parse_id: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Page<'_>, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(ApiError::invalid_query(
                "limit",
                format!("limit is 1 to {MAX_PAGE_SIZE}"),
            ));
        }
        if let Some(after) = &self.after {
            parse_id(after).map_err(|e| ApiError::invalid_query("after", e.to_string()))?;
        }
        Ok(Page {
            after: self.after.as_deref(),
            limit,
        })
    }
}

/// The answer for a page of `shown` objects under `key`, with the id to go on
/// from when the page is full.
pub(super) fn page_json(key: &str, shown: Vec<Value>, page: Page<'_>) -> Value {
    let next = (shown.len() == page.limit as usize)
        .then(|| shown.last().and_then(|last| last.get("id").cloned()))
        .flatten();
    json!({ key: shown, "next_after": next })
}
