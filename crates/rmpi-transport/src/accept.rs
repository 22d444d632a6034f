//! Accepting connections in the background during bootstrap (rendezvous server and mesh).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::error::{Error, Result};

/// Connections the kernel queues on a listener before it is asked to accept them (the kernel
/// caps this at `net.core.somaxconn`, 4096 by default). The standard library's 128 drops the
/// connections of a thousand ranks arriving at once, and each dropped one is retried only after a
/// second or more.
pub(crate) const BACKLOG: i32 = 4096;

/// `listener`, listening again with a queue of [`BACKLOG`] (keeps the old one if refused).
pub(crate) fn deep_backlog(listener: TcpListener) -> TcpListener {
    if let Err(e) = socket2::SockRef::from(&listener).listen(BACKLOG) {
        tracing::debug!("cannot deepen the listen queue: {e}");
    }
    listener
}

/// A thread that accepts connections and hands each to `handle` on a thread of its own, so that
/// a silent or slow client never holds up the others. Dropping it stops it: the blocked `accept`
/// is woken by a connection to the listener itself, and the thread is joined.
pub(crate) struct Acceptor {
    stop: Arc<AtomicBool>,
    wake: SocketAddr,
    thread: Option<thread::JoinHandle<()>>,
}

impl Acceptor {
    /// Starts accepting on (a clone of) `listener`; `who` names the owner in log lines.
    pub(crate) fn spawn<F>(listener: &TcpListener, who: String, handle: F) -> Result<Acceptor>
    where
        F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        let listener =
            listener.try_clone().map_err(|e| Error::io(format!("{who}: listener"), e))?;
        let mut wake =
            listener.local_addr().map_err(|e| Error::io(format!("{who}: listener"), e))?;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() {
                Ipv4Addr::LOCALHOST.into()
            } else {
                Ipv6Addr::LOCALHOST.into()
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || loop {
                let accepted = listener.accept();
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                match accepted {
                    Ok((stream, peer)) => {
                        let handle = handle.clone();
                        thread::spawn(move || handle(stream, peer));
                    }
                    Err(e) => {
                        tracing::warn!("{who}: accept failed: {e}");
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            })
        };
        Ok(Acceptor { stop, wake, thread: Some(thread) })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.wake, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
