//! Which endpoints' circuits are not closed, as a process last read them:
//! shared by its workers, so that a delivery to an endpoint whose circuit is
//! closed costs no query, and a circuit one worker opens holds back the
//! others at once. Read again every [`REREAD`]: a circuit another node
//! opens is seen that late.

use crate::model::EndpointId;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const REREAD: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub struct OpenCircuits {
    inner: Mutex<Watched>,
}

#[derive(Debug, Default)]
struct Watched {
    read_at: Option<Instant>,
    not_closed: HashSet<EndpointId>,
}

impl OpenCircuits {
    /// Whether it is time to read the circuits again; if so, the caller
    /// does (and no other caller until the next [`REREAD`]).
    pub fn reread_due(&self) -> bool {
        let mut watched = self.lock();
        if watched.read_at.is_some_and(|at| at.elapsed() < REREAD) {
            return false;
        }
        watched.read_at = Some(Instant::now());
        true
    }

    /// What was read: the endpoints whose circuit is not closed.
    pub fn replace(&self, not_closed: impl IntoIterator<Item = EndpointId>) {
        self.lock().not_closed = not_closed.into_iter().collect();
    }

    /// Whether endpoint `id`'s circuit may be open (read it to be sure).
    pub fn may_be_open(&self, id: &EndpointId) -> bool {
        self.lock().not_closed.contains(id)
    }

    /// Endpoint `id`'s circuit opened (`true`) or closed.
    pub fn set(&self, id: &EndpointId, open: bool) {
        let mut watched = self.lock();
        if open {
            watched.not_closed.insert(id.clone());
        } else {
            watched.not_closed.remove(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        // The set is rebuilt from the database at the next reread: a
        // poisoned one is as good as any.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
