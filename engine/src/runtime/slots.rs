//! Places for plugin instances. The pooling allocator has room for a fixed
//! number of instances at once; an instantiation beyond it fails. So every
//! instantiation (an invocation, or a plugin's `describe` while it loads)
//! first takes one of these places, waiting on its thread for one to free:
//! exhausting the pool is impossible by construction, and callers queue
//! instead of failing.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// The places, shared by every plugin a runtime loads.
#[derive(Debug)]
pub(crate) struct InstanceSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One place, held while an instance lives; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct InstanceSlot(Arc<InstanceSlots>);

impl InstanceSlots {
    pub(crate) fn new(count: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        })
    }

    /// Waits, on this thread, until a place is free, and takes it.
    pub(crate) fn take(self: &Arc<Self>) -> InstanceSlot {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        InstanceSlot(Arc::clone(self))
    }
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(PoisonError::into_inner);
        *free += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn no_more_than_the_places_are_ever_taken_and_every_taker_gets_one() {
        let slots = InstanceSlots::new(3);
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..24 {
                scope.spawn(|| {
                    let _slot = slots.take();
                    let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(held, Ordering::SeqCst);
                    std::thread::yield_now();
                    now.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert_eq!(*slots.free.lock().unwrap(), 3);
    }
}
