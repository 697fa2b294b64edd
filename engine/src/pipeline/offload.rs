//! Where the expressions users write are evaluated when they may take more
//! than a few microseconds: a pool of threads of its own, as many at once as
//! the machine has cores, and never the async runtime's threads, so that no
//! filter or template delays `/health`, a publish or another tenant's
//! deliveries. Callers queue for a place (they do not fail), and each piece
//! of work is bounded by its own budget (CEL's cost, a template's fuel).

use std::sync::LazyLock;
use tokio::sync::Semaphore;

/// Evaluations at once: one per core, so that expressions compete with the
/// rest of Weft for the cores, not with one another for threads.
static PLACES: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    Semaphore::new(cores)
});

/// Runs `work` on a blocking thread once a place is free, and returns its
/// result. A panic in `work` is resumed here, as if `work` had run inline.
pub async fn off_the_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let _place = PLACES
        .acquire()
        .await
        .expect("the expression pool's semaphore is never closed");
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only at shutdown, when the runtime drops its blocking tasks.
            Err(error) => panic!("an expression's evaluation was cancelled: {error}"),
        },
    }
}
