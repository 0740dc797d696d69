//! The harness's [`Gate`] on one node's tasks ([`klog_rt::task`]): a paused
//! node's tasks make no progress (its timers fire late, all at once, when it
//! resumes; what it is sent waits in its sockets), and a slow disk makes the
//! node's blocking file work take simulated time.

use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use klog_rt::task::Gate;

#[derive(Default)]
struct State {
    /// Overlapping pauses in force.
    pauses: u32,
    /// Tasks parked while paused.
    parked: Vec<Waker>,
    /// The latencies of the slow-disk faults in force (the largest applies).
    disk: Vec<Duration>,
}

/// One node's gate, kept across its restarts.
#[derive(Default)]
pub struct NodeGate(Mutex<State>);

impl NodeGate {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops the node's tasks (as SIGSTOP, or a long GC pause).
    pub fn pause(&self) {
        self.state().pauses += 1;
    }

    /// Ends one pause; when none is left, the parked tasks run again.
    pub fn resume(&self) {
        let parked = {
            let mut s = self.state();
            s.pauses = s.pauses.saturating_sub(1);
            if s.pauses > 0 {
                return;
            }
            std::mem::take(&mut s.parked)
        };
        parked.into_iter().for_each(Waker::wake);
    }

    /// The disk gets slow: blocking file work takes `delay`.
    pub fn slow_disk(&self, delay: Duration) {
        self.state().disk.push(delay);
    }

    /// One slow-disk fault ends.
    pub fn disk_recovers(&self, delay: Duration) {
        let mut s = self.state();
        if let Some(i) = s.disk.iter().position(|d| *d == delay) {
            s.disk.swap_remove(i);
        }
    }

    /// Ends every pause and slow disk (the heal).
    pub fn reset(&self) {
        self.state().disk.clear();
        self.crashed();
    }

    /// The node's process was killed: a pause ends with it (its restart is a
    /// new process); a slow disk stays slow.
    pub fn crashed(&self) {
        let parked = {
            let mut s = self.state();
            s.pauses = 0;
            std::mem::take(&mut s.parked)
        };
        parked.into_iter().for_each(Waker::wake);
    }
}

impl Gate for NodeGate {
    fn poll_open(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state();
        if s.pauses == 0 {
            return Poll::Ready(());
        }
        if !s.parked.iter().any(|w| w.will_wake(cx.waker())) {
            s.parked.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn disk_delay(&self) -> Duration {
        self.state().disk.iter().max().copied().unwrap_or_default()
    }
}
