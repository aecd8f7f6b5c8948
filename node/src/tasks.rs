//! The node's background tasks: every task the node spawns is tracked here, so that
//! [`Tasks::stop`] can cancel the long-running ones and wait for all of them to end.
//!
//! Two kinds: [`Tasks::spawn`] for work that runs until the node stops (loops, fetches,
//! mirrors, catch-up, bulk connections): it is dropped at its next await once the node stops;
//! [`Tasks::spawn_to_end`] (and [`Tasks::spawn_blocking`]) for short work that answers one
//! request or stores one record: it runs to its end, and the node waits for it.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The node's tracked tasks and the token that tells them to stop. Clones share both: each part
/// of the node holds one, and [`Tasks::stop`] on any clone stops and awaits every task.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    /// Runs `task` until it ends or the node stops, whichever comes first.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Runs short `task` to its end; [`Tasks::stop`] waits for it.
    pub(crate) fn spawn_to_end<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.tracker.spawn(task)
    }

    /// Runs blocking `f` on the blocking pool; [`Tasks::stop`] waits for it.
    pub(crate) fn spawn_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.tracker.spawn_blocking(f)
    }

    /// A token cancelled when the node begins to stop.
    pub(crate) fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// Tells every task to stop and waits, at most `limit`, for all of them to end. Returns
    /// false if some were still running at the limit.
    pub(crate) async fn stop(&self, limit: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(limit, self.tracker.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn stop_cancels_loops_and_waits_for_short_work() {
        let tasks = Tasks::default();
        let looped = Arc::new(AtomicBool::new(false));
        // The guard lives in the task's future from the start: dropped with it even if the
        // task is cancelled before its first poll.
        let guard = DropFlag(looped.clone());
        tasks.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        tasks.spawn_to_end(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        });
        assert!(tasks.stop(Duration::from_secs(5)).await, "tasks still running");
        assert!(looped.load(Ordering::SeqCst), "the endless task was not dropped");
        assert!(finished.load(Ordering::SeqCst), "stop returned before the short task ended");
    }

    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}
