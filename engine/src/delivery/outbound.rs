//! What a process's delivery workers share: one HTTP client (and its
//! connection pools), one cache of OAuth tokens, one throttle, one view of
//! which endpoints' circuits are open.

use super::client::{ClientBuildError, HttpSender};
use super::credentials::Credentials;
use super::guard::NetworkPolicy;
use super::throttle::Throttle;
use crate::health::OpenCircuits;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Outbound {
    pub sender: HttpSender,
    pub credentials: Credentials,
    pub throttle: Arc<Throttle>,
    pub circuits: Arc<OpenCircuits>,
}

impl Outbound {
    /// Sends under `policy`, as fast as `throttle` allows.
    pub fn new(policy: NetworkPolicy, throttle: Throttle) -> Result<Self, ClientBuildError> {
        let sender = HttpSender::new(policy)?;
        Ok(Self {
            credentials: Credentials::new(sender.clone()),
            sender,
            throttle: Arc::new(throttle),
            circuits: Arc::default(),
        })
    }
}
