//! How a batching subscription's request is put together: which chain outputs
//! can travel as an element of a batch, and the request that carries them.
//!
//! Each event still runs through the whole chain on its own; batching only
//! joins the results. The batch request goes to the endpoint as configured,
//! with `content-type: application/json` and the elements' bytes unchanged, so
//! an element is exactly the body the event would have had alone.

use crate::runtime::Request;
use serde::de::IgnoredAny;

/// A batch body stops growing at this size; the deliveries whose elements did
/// not fit wait for the subscription's next batch. The first element always
/// goes, whatever its size: it is bounded already by the plugin output and
/// template limits, and a batch must make progress.
pub const MAX_BATCH_BODY_BYTES: usize = 16 << 20;

/// The media type of a batch request.
const JSON: &str = "application/json";

/// What an event's chain output means for its batch.
#[derive(Debug, PartialEq)]
pub enum BatchItem {
    /// One JSON body for the endpoint as configured: an element of the array.
    Element(Vec<u8>),
    /// Requests that one array cannot carry: several of them (a fan-out), a
    /// body that is not JSON, or a request that names its own method, URL or
    /// headers (an integration template's API call). They are sent alone,
    /// exactly as for a subscription that does not batch.
    Alone(Vec<Request>),
}

/// Sorts the requests a chain made of one event.
pub fn batch_item(mut requests: Vec<Request>) -> BatchItem {
    let plain = match requests.as_slice() {
        [single] => {
            single.method.is_none()
                && single.url.is_none()
                && single.headers.iter().all(|(name, value)| {
                    name.eq_ignore_ascii_case("content-type") && is_json(value)
                })
                && serde_json::from_slice::<IgnoredAny>(&single.body).is_ok()
        }
        _ => false,
    };
    if plain && let Some(single) = requests.pop() {
        return BatchItem::Element(single.body);
    }
    BatchItem::Alone(requests)
}

/// How many of the elements, whose sizes are `sizes` in order, fit in one
/// batch body of at most [`MAX_BATCH_BODY_BYTES`]: at least one.
pub fn elements_that_fit(sizes: impl IntoIterator<Item = usize>) -> usize {
    // `[` and `]`, then each element and the comma before all but the first.
    let mut body = 2;
    let mut fit = 0;
    for size in sizes {
        body += size + usize::from(fit > 0);
        if fit > 0 && body > MAX_BATCH_BODY_BYTES {
            break;
        }
        fit += 1;
    }
    fit
}

/// The request that carries `elements` (JSON texts) as one JSON array, in order.
pub fn batch_request<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Request {
    let mut body = vec![b'['];
    for (index, element) in elements.into_iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(element);
    }
    body.push(b']');
    Request {
        method: None,
        url: None,
        headers: vec![("content-type".into(), JSON.into())],
        body,
    }
}

/// `application/json`, or a `+json` type such as `application/cloudevents+json`,
/// with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == JSON || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn json_request(body: &Value) -> Request {
        Request {
            method: None,
            url: None,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap(),
        }
    }

    #[test]
    fn one_plain_json_request_is_an_element() {
        let body = json!({ "order": { "id": "SO-1" } });
        let mut charset = json_request(&body);
        charset.headers = vec![(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        )];
        let mut bare = json_request(&body);
        bare.headers.clear();
        for request in [json_request(&body), charset, bare] {
            assert_eq!(
                batch_item(vec![request]),
                BatchItem::Element(serde_json::to_vec(&body).unwrap())
            );
        }
    }

    #[test]
    fn what_an_array_cannot_carry_goes_alone() {
        let body = json!({ "n": 1 });
        let fan_out = vec![json_request(&body), json_request(&body)];
        let mut method = json_request(&body);
        method.method = Some("PATCH".into());
        let mut url = json_request(&body);
        url.url = Some("/services/data".into());
        let mut header = json_request(&body);
        header
            .headers
            .push(("x-shopify-topic".into(), "orders/create".into()));
        let mut text = json_request(&body);
        text.headers = vec![("content-type".into(), "text/plain".into())];
        let mut broken = json_request(&body);
        broken.body = b"{\"order\": ".to_vec();
        let cases = [
            ("fan-out", fan_out),
            ("none", vec![]),
            ("method", vec![method]),
            ("url", vec![url]),
            ("header", vec![header]),
            ("text", vec![text]),
            ("not JSON", vec![broken]),
        ];
        for (case, requests) in cases {
            assert_eq!(
                batch_item(requests.clone()),
                BatchItem::Alone(requests),
                "{case}"
            );
        }
    }

    #[test]
    fn the_batch_request_is_the_array_of_its_elements_in_order() {
        let elements = [json!({ "n": 1 }), json!([2, "two"]), json!("three")]
            .map(|element| serde_json::to_vec(&element).unwrap());

        let request = batch_request(elements.iter().map(Vec::as_slice));

        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, json!([{ "n": 1 }, [2, "two"], "three"]));
        assert_eq!((request.method, request.url), (None, None));
        assert_eq!(
            request.headers,
            vec![("content-type".to_owned(), "application/json".to_owned())]
        );
        assert_eq!(batch_request([]).body, b"[]");
    }

    #[test]
    fn a_batch_body_stops_growing_at_its_limit_but_takes_one_element() {
        let half = MAX_BATCH_BODY_BYTES / 2;
        assert_eq!(elements_that_fit([10, 20, 30]), 3);
        // Two halves and their brackets and comma are 3 bytes too many.
        assert_eq!(elements_that_fit([half, half, 1]), 1);
        assert_eq!(elements_that_fit([half - 2, half - 1]), 2);
        assert_eq!(elements_that_fit([half - 2, half]), 1);
        assert_eq!(elements_that_fit([MAX_BATCH_BODY_BYTES * 2, 1]), 1);
        assert_eq!(elements_that_fit([]), 0);
    }
}
