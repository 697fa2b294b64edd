use crate::Error;
use crate::bindings::types;
use serde::de::DeserializeOwned;

/// A business event, as Weft captured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Weft's id for the event (`evt_…`), stable across retries: receivers deduplicate on it.
    pub id: String,
    /// `<entity>.<action>`, for example `sales_order.created`.
    pub event_type: String,
    /// The tenant that published the event.
    pub tenant: String,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub occurred_at: u64,
    /// The media type of [`Event::data`], `application/json` for platform events.
    pub content_type: String,
    /// The payload bytes as published.
    pub data: Vec<u8>,
    /// Extra attributes from the publisher or from Weft.
    pub metadata: Vec<(String, String)>,
}

impl Event {
    /// Parses the payload as JSON into `T`.
    ///
    /// A payload that does not fit `T` is an [`Error::InvalidEvent`]: retrying
    /// cannot fix it.
    ///
    /// ```
    /// # let event = weft_sdk::Event {
    /// #     id: "evt_1".into(), event_type: "stock.updated".into(), tenant: "acme".into(),
    /// #     occurred_at: 0, content_type: "application/json".into(),
    /// #     data: br#"{"stock":{"sku":"A-1","quantity":7}}"#.to_vec(), metadata: vec![],
    /// # };
    /// #[derive(serde::Deserialize)]
    /// struct Stock { sku: String, quantity: i64 }
    /// #[derive(serde::Deserialize)]
    /// struct Payload { stock: Stock }
    ///
    /// let payload: Payload = event.json()?;
    /// assert_eq!(payload.stock.quantity, 7);
    /// # Ok::<(), weft_sdk::Error>(())
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.data).map_err(|e| {
            Error::InvalidEvent(format!("{} payload of {}: {e}", self.event_type, self.id))
        })
    }

    /// The value of a metadata attribute, if the event has it.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Reads a sample event file, the shape publishers send and
    /// `weft plugin run --event` takes: `{"type": …, "data": {…}}` with optional
    /// `id`, `tenant`, `occurred_at` (unix ms) and `metadata`. For a plugin's
    /// native unit tests:
    ///
    /// ```
    /// let event = weft_sdk::Event::from_sample(
    ///     r#"{"type": "stock.updated", "data": {"stock": {"sku": "A-1", "quantity": 7}}}"#,
    /// )?;
    /// assert_eq!(event.event_type, "stock.updated");
    /// assert_eq!(event.data, br#"{"stock":{"sku":"A-1","quantity":7}}"#);
    /// # Ok::<(), weft_sdk::Error>(())
    /// ```
    pub fn from_sample(text: &str) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Sample {
            #[serde(default = "sample_id")]
            id: String,
            #[serde(rename = "type")]
            event_type: String,
            #[serde(default = "sample_tenant")]
            tenant: String,
            #[serde(default)]
            occurred_at: u64,
            #[serde(default)]
            metadata: std::collections::BTreeMap<String, String>,
            data: serde_json::Value,
        }
        fn sample_id() -> String {
            "evt_sample".to_owned()
        }
        fn sample_tenant() -> String {
            "local".to_owned()
        }
        let sample: Sample = serde_json::from_str(text)
            .map_err(|e| Error::InvalidEvent(format!("sample event: {e}")))?;
        Ok(Self {
            id: sample.id,
            event_type: sample.event_type,
            tenant: sample.tenant,
            occurred_at: sample.occurred_at,
            content_type: "application/json".to_owned(),
            data: serde_json::to_vec(&sample.data).map_err(|e| Error::Internal(e.to_string()))?,
            metadata: sample.metadata.into_iter().collect(),
        })
    }

    #[doc(hidden)]
    pub fn from_wit(event: types::Event) -> Self {
        Self {
            id: event.id,
            event_type: event.event_type,
            tenant: event.tenant,
            occurred_at: event.occurred_at,
            content_type: event.content_type,
            data: event.data,
            metadata: event.metadata,
        }
    }
}
