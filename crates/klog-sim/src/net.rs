//! turmoil's simulated TCP behind klog's network seam ([`klog_rt::net`]), and
//! turmoil's simulated time behind its wall-clock seam ([`klog_rt::clock`]).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Once};

use klog_rt::net::{BoxFuture, ByteStream, Network, OtherListener};

/// turmoil's TCP as a [`Network`]: host names (`n1:9092`) resolve in the
/// simulation's DNS.
struct TurmoilNetwork;

impl Network for TurmoilNetwork {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn ByteStream>>> {
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(s) as Box<dyn ByteStream>)
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn OtherListener>>> {
        Box::pin(async move {
            let l = turmoil::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TurmoilListener(l)) as Box<dyn OtherListener>)
        })
    }
}

struct TurmoilListener(turmoil::net::TcpListener);

impl OtherListener for TurmoilListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(Box<dyn ByteStream>, SocketAddr)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            Ok((Box::new(s) as Box<dyn ByteStream>, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The simulation's time since the Unix epoch, when called inside one.
fn simulated_wall_clock() -> Option<i64> {
    turmoil::since_epoch().map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Installs turmoil's network and clock in this process (once; later calls do
/// nothing). Outside a simulation the clock falls back to the system's, but every
/// connection and listener of the process goes through turmoil from now on.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        klog_rt::net::install(Arc::new(TurmoilNetwork));
        klog_rt::clock::install(simulated_wall_clock);
    });
}
