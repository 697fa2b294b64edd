//! Group commit for capture: publishes that arrive together share one
//! transaction, so 2,000 single-event publishes a second cost far fewer than
//! 2,000 commits (each a write of the log to disk), and none of them waits
//! behind a queue of others' commits.
//!
//! A combining task takes the first waiting request, then every other one
//! already waiting, up to [`MAX_GROUP_EVENTS`] events, and captures them with
//! one [`Store::insert_events`]. A caller hears back only once its
//! events are committed, so "202 means it is on disk" holds for each of them.
//! If a group fails, each of its requests is tried again on its own, so one
//! request's failure is never reported to another.

use super::{IngestOutcome, NewEvent, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// A group stops growing at this many events.
pub const MAX_GROUP_EVENTS: usize = 1000;
/// Requests waiting for the combiner, at most; callers beyond wait to queue.
const QUEUE_DEPTH: usize = 4096;

type Reply = oneshot::Sender<Result<Vec<IngestOutcome>, StoreError>>;

struct Request {
    events: Vec<NewEvent>,
    reply: Reply,
}

/// A handle on the combining tasks; cheap to clone. They end when the last
/// handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<Request>,
}

impl GroupCommit {
    /// Starts the combining tasks on the current tokio runtime: one for SQLite,
    /// which writes one transaction at a time anyway; a few for PostgreSQL, so
    /// one group's commit overlaps the next group's statements.
    pub fn start(store: Store) -> Self {
        let (requests, queue) = mpsc::channel(QUEUE_DEPTH);
        let inbox = Arc::new(Mutex::new(Inbox { queue, held: None }));
        for _ in 0..store.concurrent_writers() {
            tokio::spawn(combine(store.clone(), Arc::clone(&inbox)));
        }
        Self { requests }
    }

    /// Captures `events` as [`Store::insert_events`] does, in one transaction
    /// with whatever other captures are waiting at the same moment.
    pub async fn insert_events(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped =
            || StoreError::Database("capturing events: the store is shutting down".into());
        self.requests
            .send(Request { events, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The queue of waiting captures, and one taken from it that did not fit in
/// the last group and so leads the next.
struct Inbox {
    queue: mpsc::Receiver<Request>,
    held: Option<Request>,
}

async fn combine(store: Store, inbox: Arc<Mutex<Inbox>>) {
    while let Some(group) = next_group(&inbox).await {
        commit(&store, group).await;
    }
}

/// The first waiting request and every other already waiting that fits in
/// [`MAX_GROUP_EVENTS`]; `None` once every handle is gone.
async fn next_group(inbox: &Mutex<Inbox>) -> Option<Vec<Request>> {
    let mut inbox = inbox.lock().await;
    let first = match inbox.held.take() {
        Some(held) => held,
        None => inbox.queue.recv().await?,
    };
    let mut events = first.events.len();
    let mut group = vec![first];
    while events < MAX_GROUP_EVENTS {
        let Ok(next) = inbox.queue.try_recv() else {
            break;
        };
        if events + next.events.len() > MAX_GROUP_EVENTS {
            inbox.held = Some(next);
            break;
        }
        events += next.events.len();
        group.push(next);
    }
    Some(group)
}

async fn commit(store: &Store, group: Vec<Request>) {
    let mut sizes = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    let mut combined = Vec::new();
    for Request { events, reply } in group {
        sizes.push(events.len());
        replies.push(reply);
        combined.extend(events);
    }
    let result = store.insert_events(&combined).await;
    if replies.len() == 1 || result.is_ok() {
        let mut outcomes = result.map(Vec::into_iter);
        for (reply, size) in replies.into_iter().zip(sizes) {
            let own = match &mut outcomes {
                Ok(outcomes) => Ok(outcomes.by_ref().take(size).collect()),
                Err(error) => Err(error.clone()),
            };
            let _ = reply.send(own);
        }
        return;
    }
    // Nothing of the group was written: each request again on its own, so each
    // hears its own outcome.
    let mut start = 0;
    for (reply, size) in replies.into_iter().zip(sizes) {
        let own = &combined[start..start + size];
        start += size;
        let _ = reply.send(store.insert_events(own).await);
    }
}
