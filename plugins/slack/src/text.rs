//! Text as Slack wants it: escaped for mrkdwn and cut to the lengths its blocks accept.

use serde_json::Value;

/// `text` escaped for Slack's mrkdwn (`&`, `<` and `>` only, as Slack asks) and cut
/// to at most `max_chars` characters, ending with `…` when cut.
pub fn mrkdwn(text: &str, max_chars: usize) -> String {
    fit(text, max_chars, true)
}

/// `text` cut to at most `max_chars` characters, ending with `…` when cut.
pub fn plain(text: &str, max_chars: usize) -> String {
    fit(text, max_chars, false)
}

/// Cuts after escaping, never inside an escape, so the result is both valid and
/// within the limit Slack enforces on the escaped text.
fn fit(text: &str, max_chars: usize, escape: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut used = 0;
    let mut utf8 = [0u8; 4];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let piece = match c {
            '&' if escape => "&amp;",
            '<' if escape => "&lt;",
            '>' if escape => "&gt;",
            _ => c.encode_utf8(&mut utf8),
        };
        let width = piece.chars().count();
        // Unless this is the last character, keep room for the ellipsis.
        let room = if chars.peek().is_some() {
            max_chars.saturating_sub(1)
        } else {
            max_chars
        };
        if used + width > room {
            out.push('…');
            break;
        }
        out.push_str(piece);
        used += width;
    }
    out
}

/// A label for a payload key: `customer_id` becomes `Customer ID`.
pub fn label(key: &str) -> String {
    let words = key.split(['_', '-']).filter(|word| !word.is_empty());
    let mut out = String::with_capacity(key.len());
    for (i, word) in words.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.eq_ignore_ascii_case("id") {
            out.push_str("ID");
        } else if i == 0 {
            let mut chars = word.chars();
            out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
            out.push_str(chars.as_str());
        } else {
            out.push_str(word);
        }
    }
    out
}

/// How a payload value reads in a message; `None` for null, which is not shown.
///
/// Lists of scalars read as `a, b, c`; other structures as compact JSON.
pub fn display(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.iter().all(is_scalar) => Some(
            items
                .iter()
                .filter_map(display)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        other => Some(other.to_string()),
    }
}

/// Whether a value is a string, number or boolean.
pub fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_only_what_slack_asks() {
        assert_eq!(
            mrkdwn("Tan & Sons <b>*x*</b>", 100),
            "Tan &amp; Sons &lt;b&gt;*x*&lt;/b&gt;"
        );
    }

    #[test]
    fn keeps_text_that_fits_exactly() {
        assert_eq!(plain("abcde", 5), "abcde");
        assert_eq!(mrkdwn("a&b", 7), "a&amp;b");
    }

    #[test]
    fn cuts_with_an_ellipsis_within_the_limit() {
        assert_eq!(plain("abcdef", 5), "abcd…");
        assert_eq!(plain("åäöüßé", 3), "åä…");
        assert_eq!(mrkdwn("a&bc", 7), "a&amp;…");
    }

    #[test]
    fn never_cuts_inside_an_escape() {
        assert_eq!(mrkdwn("ab&", 6), "ab…");
    }

    #[test]
    fn labels_read_like_words() {
        assert_eq!(label("customer_id"), "Customer ID");
        assert_eq!(label("created_at"), "Created at");
        assert_eq!(label("id"), "ID");
        assert_eq!(label("total"), "Total");
    }

    #[test]
    fn displays_values_for_people() {
        assert_eq!(display(&json!("SO-1")).as_deref(), Some("SO-1"));
        assert_eq!(display(&json!(4062.5)).as_deref(), Some("4062.5"));
        assert_eq!(display(&json!(true)).as_deref(), Some("true"));
        assert_eq!(
            display(&json!(["items", "total"])).as_deref(),
            Some("items, total")
        );
        assert_eq!(
            display(&json!({"city": "Klang"})).as_deref(),
            Some(r#"{"city":"Klang"}"#)
        );
        assert_eq!(display(&json!(null)), None);
    }
}
