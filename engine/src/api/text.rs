//! Checks for the short texts clients name things with: object names and
//! idempotency keys. Control characters are refused everywhere (PostgreSQL
//! cannot store NUL in text, and a line break in a name breaks every log line
//! that quotes it), so both backends answer the same 4xx.

use super::ApiError;

/// The longest object name.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest idempotency key, in bytes, as the `Idempotency-Key` drafts suggest.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// An object name: 1 to 200 characters, not blank, no control characters.
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let problem = if name.trim().is_empty() {
        "name must not be empty"
    } else if name.chars().count() > MAX_NAME_CHARS {
        "name is longer than 200 characters"
    } else if name.chars().any(char::is_control) {
        "name contains a control character (a line break, tab or NUL)"
    } else {
        return Ok(());
    };
    Err(ApiError::unprocessable("invalid_field", problem).at(field))
}

/// An idempotency key: 1 to 255 bytes, no control characters.
pub fn check_idempotency_key(field: &str, key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || key.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "an idempotency key is 1 to 255 bytes with no control characters",
        )
        .at(field));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_control_characters_or_nothing_visible_are_refused() {
        assert!(check_name("name", "Order sync (EU) — ünïcode").is_ok());
        for bad in ["", "   ", "a\0b", "line\nbreak", &"x".repeat(201)] {
            let problem = check_name("name", bad).unwrap_err();
            assert_eq!(problem.field.as_deref(), Some("name"), "{bad:?}");
        }
    }

    #[test]
    fn idempotency_keys_are_short_and_printable() {
        assert!(check_idempotency_key("k", "order-1042/retry").is_ok());
        for bad in ["", "nul\0", "tab\t", &"k".repeat(256)] {
            assert_eq!(
                check_idempotency_key("k", bad).unwrap_err().code,
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
    }
}
