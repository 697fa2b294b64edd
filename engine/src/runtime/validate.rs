//! Checks that what a plugin returned can be delivered, so that garbage fails the
//! invocation with a reason instead of failing later at the socket.
//!
//! These are checks on data, not HTTP: the runtime only makes sure methods and
//! header names are tokens, header values are single lines, URLs are absolute
//! `http(s)` URLs or paths, and a body declared as JSON is JSON.

use super::bindings::types::Request;
use super::error::InvokeError;

/// Total bytes of `requests`, as counted against the output limit.
pub(crate) fn output_size(requests: &[Request]) -> usize {
    requests
        .iter()
        .map(|r| {
            let headers: usize = r.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
            r.body.len()
                + headers
                + r.url.as_ref().map_or(0, String::len)
                + r.method.as_ref().map_or(0, String::len)
        })
        .sum()
}

pub(crate) fn check_requests(requests: &[Request]) -> Result<(), InvokeError> {
    for (index, request) in requests.iter().enumerate() {
        check_request(request).map_err(|reason| InvokeError::MalformedOutput { index, reason })?;
    }
    Ok(())
}

fn check_request(request: &Request) -> Result<(), String> {
    if let Some(method) = &request.method
        && !is_token(method)
    {
        return Err(format!("method {method:?} is not an HTTP method name"));
    }
    if let Some(url) = &request.url {
        check_url(url)?;
    }
    for (name, value) in &request.headers {
        if !is_token(name) {
            return Err(format!("header name {name:?} is not a valid header name"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!(
                "header {name} has a line break or NUL in its value"
            ));
        }
    }
    if declares_json(request)
        && let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&request.body)
    {
        return Err(format!("body is declared as JSON but is not: {error}"));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "url {url:?} contains white space or control characters"
        ));
    }
    if url.starts_with('/') && !url.starts_with("//") {
        return Ok(());
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("url {url:?} is neither an http(s) URL nor a path starting with /")
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("url {url:?} has no host"));
    }
    Ok(())
}

fn declares_json(request: &Request) -> bool {
    request.headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("content-type") && {
            let media_type = value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            media_type == "application/json" || media_type.ends_with("+json")
        }
    })
}

/// An RFC 9110 token: what method and header names are made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        method: Option<&str>,
        url: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Request {
        Request {
            method: method.map(str::to_owned),
            url: url.map(str::to_owned),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn well_formed_requests_pass_and_garbage_is_named() {
        let json = [("content-type", "application/json; charset=utf-8")];
        let cases: [(Request, Option<&str>); 10] = [
            (request(None, None, &json, r#"{"a":1}"#), None),
            (
                request(Some("PATCH"), Some("https://x.example/a?b=1"), &[], "raw"),
                None,
            ),
            (
                request(None, Some("/services/data/v61.0/sobjects"), &[], ""),
                None,
            ),
            (
                request(None, None, &json, "{not json"),
                Some("body is declared as JSON but is not"),
            ),
            (
                request(
                    None,
                    None,
                    &[("content-type", "application/vnd.api+json")],
                    "nope",
                ),
                Some("body is declared as JSON"),
            ),
            (
                request(Some("GET /"), None, &[], ""),
                Some("is not an HTTP method name"),
            ),
            (
                request(None, Some("ftp://x"), &[], ""),
                Some("neither an http(s) URL nor a path"),
            ),
            (
                request(None, Some("https:///path"), &[], ""),
                Some("has no host"),
            ),
            (
                request(None, None, &[("bad header", "v")], ""),
                Some("is not a valid header name"),
            ),
            (
                request(None, None, &[("x-a", "v\r\nx-b: injected")], ""),
                Some("line break"),
            ),
        ];
        for (request, expected) in cases {
            let result = check_request(&request);
            match expected {
                None => assert_eq!(result, Ok(()), "{request:?}"),
                Some(fragment) => {
                    let reason = result.unwrap_err();
                    assert!(
                        reason.contains(fragment),
                        "{reason} should contain {fragment}"
                    );
                }
            }
        }
    }

    #[test]
    fn output_size_counts_bodies_headers_and_urls() {
        let requests = [request(Some("PUT"), Some("/a"), &[("k", "vv")], "body")];
        assert_eq!(output_size(&requests), 3 + 2 + 3 + 4);
    }
}
