//! The task seam: every task the broker and client libraries spawn (and openraft's,
//! through the metadata quorum's runtime), and every piece of blocking file work they
//! wait for, goes through [`spawn`] and [`blocking`], so that a simulator can
//! stop one simulated process's tasks (a long GC pause, a SIGSTOP) and make its
//! disk slow, while the other processes in the same runtime thread go on.
//!
//! A simulator runs a process's top-level future inside [`gated`] with a [`Gate`]
//! of its own. While a gated task is polled, its gate is the thread's current
//! one, and every task it spawns through [`spawn`] (and every task those spawn)
//! is gated by it too. Outside a gate, which is always the case in production,
//! [`spawn`] is `tokio::spawn` and [`blocking`] is `spawn_blocking`.
//!
//! ```text
//!  simulator ── gated(gate, node_main) ──► spawn(task) ──► spawn(task) ...
//!     │ pause / resume                         │ every poll asks the gate first
//!     └──────────────── Gate ◄─────────────────┘ blocking(f): f inline, then
//!                                                  gate.disk_delay() of sleep
//! ```

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A simulator's hold on one simulated process's tasks.
pub trait Gate: Send + Sync + 'static {
    /// `Ready` while the process runs; while it is paused, `Pending` with the
    /// waker kept, to be woken when it resumes.
    fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()>;

    /// How long the process's blocking file work takes to complete, now (a slow
    /// disk: fsyncs that take hundreds of milliseconds).
    fn disk_delay(&self) -> Duration;
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<dyn Gate>>> = const { RefCell::new(None) };
}

fn current() -> Option<Arc<dyn Gate>> {
    CURRENT.with(|c| c.borrow().clone())
}

pin_project_lite::pin_project! {
    /// A future that asks its gate (if any) before each poll, and makes the gate
    /// current while it is polled. See [`gated`].
    pub struct Gated<F> {
        gate: Option<Arc<dyn Gate>>,
        #[pin]
        inner: F,
    }
}

impl<F: fmt::Debug> fmt::Debug for Gated<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gated")
            .field("gated", &self.gate.is_some())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(gate) = this.gate.as_ref() else {
            return this.inner.poll(cx);
        };
        if gate.poll_open(cx).is_pending() {
            return Poll::Pending;
        }
        let previous = CURRENT.with(|c| c.replace(Some(gate.clone())));
        let out = this.inner.poll(cx);
        CURRENT.with(|c| *c.borrow_mut() = previous);
        out
    }
}

/// Runs `future` under `gate`: it, and every task it spawns through [`spawn`],
/// makes progress only while the gate is open.
pub fn gated<F: Future>(gate: Arc<dyn Gate>, future: F) -> Gated<F> {
    Gated {
        gate: Some(gate),
        inner: future,
    }
}

/// `future` under the current gate, if there is one: for a task spawned some
/// other way than [`spawn`] (into a `JoinSet`, say).
pub fn inherit<F: Future>(future: F) -> Gated<F> {
    Gated {
        gate: current(),
        inner: future,
    }
}

/// `tokio::spawn`, under the current gate if there is one.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(inherit(future))
}

/// The blocking work of [`blocking`] panicked (or its thread was cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockingFailed;

impl fmt::Display for BlockingFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("blocking file work panicked or was cancelled")
    }
}

impl std::error::Error for BlockingFailed {}

/// Runs blocking file work (writes, fsyncs) and waits for it: on tokio's
/// blocking pool, or, under a gate, inline on the simulator's thread (so that a
/// seeded run does not depend on when a pool thread finishes) followed by the
/// gate's [`Gate::disk_delay`] of simulated time.
pub async fn blocking<T, F>(f: F) -> Result<T, BlockingFailed>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match current() {
        None => tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| BlockingFailed),
        Some(gate) => {
            let out = f();
            let delay = gate.disk_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::Waker;

    #[derive(Default)]
    struct TestGate {
        paused: AtomicBool,
        wakers: Mutex<Vec<Waker>>,
    }

    impl Gate for TestGate {
        fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()> {
            if self.paused.load(Ordering::SeqCst) {
                self.wakers.lock().expect("wakers").push(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }

        fn disk_delay(&self) -> Duration {
            Duration::from_millis(300)
        }
    }

    impl TestGate {
        fn resume(&self) {
            self.paused.store(false, Ordering::SeqCst);
            for w in self.wakers.lock().expect("wakers").drain(..) {
                w.wake();
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_gate_stops_its_tasks_and_their_children_and_blocking_waits_the_disk() {
        let gate = Arc::new(TestGate::default());
        let ticks = Arc::new(AtomicUsize::new(0));
        let child_ticks = ticks.clone();
        let started = tokio::time::Instant::now();
        let root = tokio::spawn(gated(gate.clone(), async move {
            // A child spawned from inside the gate inherits it.
            let child = spawn(async move {
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    child_ticks.fetch_add(1, Ordering::SeqCst);
                }
            });
            let synced_after = blocking(move || 7).await.expect("inline");
            assert_eq!(synced_after, 7);
            let waited = started.elapsed();
            child.await.expect("child");
            waited
        }));
        tokio::time::sleep(Duration::from_millis(105)).await;
        let before = ticks.load(Ordering::SeqCst);
        assert!((9..=11).contains(&before), "{before} ticks in 105 ms");
        gate.paused.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        // At most the tick already woken when the pause began.
        assert!(ticks.load(Ordering::SeqCst) <= before + 1);
        gate.resume();
        let waited = root.await.expect("root");
        assert_eq!(ticks.load(Ordering::SeqCst), 100);
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        // Outside a gate, spawn and blocking are tokio's.
        assert_eq!(spawn(async { 3 }).await.expect("plain"), 3);
        assert_eq!(blocking(|| 4).await, Ok(4));
    }
}
