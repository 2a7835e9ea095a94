//! A TCP proxy for the backup benchmark, between the CLI and the service: it counts
//! the bytes each way (what the CLI sent over its socket) and can hold the link to a
//! rate, like a 1 Gbit/s network between a backup host and the service.
//!
//! The rate is a byte budget per direction shared by all connections (one link,
//! full duplex): each piece of up to [`PIECE`] bytes is let through at the time the
//! budget allows, computed on a virtual clock that may run at most [`BURST`] behind
//! the real one (so timer granularity does not lower the rate, and an idle link does
//! not save up more than that).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Largest piece read and written at once.
pub const PIECE: usize = 64 * 1024;
/// How far the virtual clock may lag the real one.
pub const BURST: Duration = Duration::from_millis(10);

/// A running proxy; stops (its listener and connections) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    rate: Arc<std::sync::Mutex<Option<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

/// One direction of the link: its byte budget.
struct Pace {
    rate: Arc<std::sync::Mutex<Option<u64>>>,
    next: Mutex<Instant>,
}

impl Pace {
    /// Waits until `n` more bytes fit in the budget (at once without a rate).
    async fn take(&self, n: usize) {
        let Some(rate) = *self.rate.lock().expect("rate lock") else {
            return;
        };
        let at = {
            let mut next = self.next.lock().await;
            let (later, at) = schedule(*next, Instant::now(), n, rate);
            *next = later;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// The budget's arithmetic: with the virtual clock at `next` and the real one at
/// `now`, `n` bytes at `rate` bytes a second move the virtual clock to the first
/// value returned and may go at the second (up to [`BURST`] early).
fn schedule<T>(next: T, now: T, n: usize, rate: u64) -> (T, T)
where
    T: Copy + Ord + std::ops::Add<Duration, Output = T> + std::ops::Sub<Duration, Output = T>,
{
    let floor = now - BURST;
    let start = if next > floor { next } else { floor };
    let later = start + Duration::from_secs_f64(n as f64 / rate as f64);
    (later, later - BURST)
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `to`.
    pub async fn start(to: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let rate = Arc::new(std::sync::Mutex::new(None));
        let pace = |rate: &Arc<std::sync::Mutex<Option<u64>>>| {
            Arc::new(Pace {
                rate: rate.clone(),
                next: Mutex::new(Instant::now()),
            })
        };
        let (pace_up, pace_down) = (pace(&rate), pace(&rate));
        let (count_up, count_down) = (up.clone(), down.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let (pu, pd, cu, cd) = (
                    pace_up.clone(),
                    pace_down.clone(),
                    count_up.clone(),
                    count_down.clone(),
                );
                conns.spawn(async move {
                    let Ok(server) = TcpStream::connect(to).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, &pu, &cu), pipe(sr, cw, &pd, &cd));
                });
                // Reap finished connections as they go.
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Proxy {
            addr,
            up,
            down,
            rate,
            task,
        })
    }

    /// Where the CLI connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes from clients to the service so far.
    pub fn up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }

    /// Bytes from the service to clients so far.
    pub fn down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }

    /// Holds each direction to `bytes_per_sec` from now on (`None`: no limit).
    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        *self.rate.lock().expect("rate lock") = bytes_per_sec.filter(|r| *r > 0);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Moves `from` to `to` within the budget, counting; on either end's close or error,
/// shuts the write side down.
///
/// The bytes go socket -> pipe -> socket with `splice(2)`: the kernel moves the pages,
/// and nothing is copied through this process. A proxy that reads and writes copies
/// every byte twice on the cores the CLI and the service share, which slowed
/// Headlock's measured backups (restic's runs have no proxy).
async fn pipe(
    from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    pace: &Pace,
    count: &AtomicU64,
) {
    let _ = forward(&from, &to, pace, count).await;
    let _ = to.shutdown().await;
}

/// [`pipe`]'s loop: a piece of up to [`PIECE`] bytes into the pipe, then all of it out.
async fn forward(
    from: &tokio::net::tcp::OwnedReadHalf,
    to: &tokio::net::tcp::OwnedWriteHalf,
    pace: &Pace,
    count: &AtomicU64,
) -> std::io::Result<()> {
    use nix::fcntl::{SpliceFFlags, splice};
    use std::os::fd::AsFd;
    use tokio::io::Interest;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    // The pipe holds one piece at most (its default room is 64 KiB, a PIECE), and
    // is emptied before the next: it never blocks either side.
    let (pipe_out, pipe_in) = nix::unistd::pipe()?;
    let (src, dst): (&TcpStream, &TcpStream) = (from.as_ref(), to.as_ref());
    loop {
        from.readable().await?;
        let n = match src.try_io(Interest::READABLE, || {
            splice(src.as_fd(), None, pipe_in.as_fd(), None, PIECE, flags).map_err(Into::into)
        }) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        pace.take(n).await;
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match dst.try_io(Interest::WRITABLE, || {
                splice(pipe_out.as_fd(), None, dst.as_fd(), None, left, flags).map_err(Into::into)
            }) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(m) => left -= m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// An echo server: what it reads, it writes back.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn accepts_bytes_both_ways_and_counts_them() {
        let proxy = Proxy::start(echo().await).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        // Several megabytes: more than the sockets and the pipe hold, so both ends wait.
        let data: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = c.split();
        let send = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let recv = r.read_to_end(&mut back);
        let ((), got) = tokio::join!(send, recv);
        got.unwrap();
        assert_eq!(back, data);
        assert_eq!((proxy.up(), proxy.down()), (8_000_000, 8_000_000));
    }

    #[test]
    fn accepts_the_rate_on_a_virtual_clock_with_a_bounded_burst() {
        let ms = Duration::from_millis;
        let t0 = Instant::now() + Duration::from_secs(1);
        // 1 MB at 1 MB/s in pieces: the clock moves 1 s; each piece may go 10 ms early.
        let mut next = t0;
        for _ in 0..16 {
            let (later, at) = schedule(next, t0, 62_500, 1_000_000);
            assert_eq!(at + BURST, later);
            next = later;
        }
        assert_eq!(next, t0 + ms(1000));
        // Late (a timer fired late): at most BURST is made up, not more.
        let (later, _) = schedule(t0, t0 + ms(500), 1000, 1_000_000);
        assert_eq!(later, t0 + ms(490) + ms(1));
        // Idle for long: no saving up beyond BURST.
        let (later, at) = schedule(t0, t0 + ms(5000), 0, 1_000_000);
        assert_eq!((later, at), (t0 + ms(4990), t0 + ms(4980)));
    }
}
