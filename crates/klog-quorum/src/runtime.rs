//! The async runtime openraft runs on: tokio, as [`openraft::TokioRuntime`], except
//! that the election timeouts come from a random number generator a simulator can
//! seed ([`seed_election_rng`]), so that a seeded run elects the same leaders, and
//! that its tasks are spawned through [`klog_rt::task::spawn`] (a simulator
//! can pause them with the rest of the process).

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Seeds this thread's election-timeout generator: every quorum node running on
/// this thread from now on draws its election timeouts from one stream seeded with
/// `seed` (a simulation runs all its nodes on one thread). Without a seed, the
/// timeouts come from [`rand::thread_rng`].
pub fn seed_election_rng(seed: u64) {
    SEEDED.with(|r| *r.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// The generator [`KlogRuntime::thread_rng`] hands openraft: this thread's seeded
/// stream if [`seed_election_rng`] was called, the thread's entropy otherwise.
#[derive(Debug, Default, Clone, Copy)]
pub struct ElectionRng;

impl RngCore for ElectionRng {
    fn next_u32(&mut self) -> u32 {
        SEEDED.with(|r| match r.borrow_mut().as_mut() {
            Some(rng) => rng.next_u32(),
            None => rand::thread_rng().next_u32(),
        })
    }

    fn next_u64(&mut self) -> u64 {
        SEEDED.with(|r| match r.borrow_mut().as_mut() {
            Some(rng) => rng.next_u64(),
            None => rand::thread_rng().next_u64(),
        })
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        SEEDED.with(|r| match r.borrow_mut().as_mut() {
            Some(rng) => rng.fill_bytes(dest),
            None => rand::thread_rng().fill_bytes(dest),
        });
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// openraft's tokio runtime with [`ElectionRng`] as its random number generator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KlogRuntime;

impl AsyncRuntime for KlogRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ElectionRng;
    type OneshotSender<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        // Through klog's task seam, so that a simulator can pause the quorum
        // node's tasks with the rest of its process.
        klog_rt::task::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        ElectionRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn a_seeded_thread_draws_the_same_timeouts() {
        let draw = || {
            (0..8)
                .map(|_| KlogRuntime::thread_rng().gen_range(150..300u64))
                .collect::<Vec<_>>()
        };
        seed_election_rng(7);
        let a = draw();
        seed_election_rng(7);
        let b = draw();
        seed_election_rng(8);
        let c = draw();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
