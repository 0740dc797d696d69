//! klog's runtime seams: the few places where the broker, the metadata quorum and
//! the client touch the world outside their own memory (sockets, the wall clock,
//! spawned tasks and blocking file work), each a function call that a simulator can
//! redirect, plus the Kafka framing every listener reads with.
//!
//! ```text
//!  klog-client ─┐                      ┌─► tokio (default: TCP, SystemTime,
//!  klog-broker ─┼─► net::connect/bind ─┤         tokio::spawn, spawn_blocking)
//!  klog-quorum ─┘   clock::now_ms      │
//!                   task::spawn/blocking└─► what a simulator installed (klog-sim:
//!                   frame::read_frame         turmoil's network and time, a Gate
//!                   frame::accept_until       per simulated process)
//! ```
//!
//! * [`net`]: connect and bind through tokio's TCP or an installed [`net::Network`].
//! * [`clock`]: milliseconds since the Unix epoch, from the system or an installed
//!   clock.
//! * [`task`]: `tokio::spawn` and `spawn_blocking`, or, under a simulator's
//!   [`task::Gate`], tasks it can pause and file work it can slow.
//! * [`frame`]: a size-prefixed Kafka frame read with its size checked before
//!   anything is allocated, and the accept loop the broker's listeners run.
//!
//! What it does not do: no protocol (frames are bytes; decoding is `klog-codec`'s),
//! no runtime of its own (everything runs on the caller's tokio runtime), no
//! threads, and no policy: outside a simulation every seam is plain tokio with
//! nothing in between. A seam is installed once per process, before it is used.
//! `klog-client` re-exports [`clock`], [`net`] and [`task`] under its own name for
//! code written against it.

pub mod clock;
pub mod frame;
pub mod net;
pub mod task;
