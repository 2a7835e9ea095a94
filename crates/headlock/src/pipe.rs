//! Bounded pipes between the threads that read and write files (tar, standard input,
//! the restored tree) and the async tasks that speak HTTP.
//!
//! - [`upload`]: a [`PipeWriter`] (`std::io::Write`, on a plain thread) feeding a
//!   [`PipeBody`] (a hyper request body). The body ends cleanly only after
//!   [`PipeWriter::finish`]: a writer dropped early (an error, a panic) or one that
//!   [`PipeWriter::fail`]s makes the body fail, so hyper aborts the request and the
//!   server sees a body cut short instead of a complete-looking one.
//! - [`download`]: a [`PipeFeeder`] (async, fed with response frames) feeding a
//!   [`PipeReader`] (`std::io::Read`, on a blocking thread). The reader sees the end
//!   of the data only after [`PipeFeeder::finish`]; otherwise an error.
//!
//! Each holds at most [`DEPTH`] pieces of at most [`PIECE`] bytes (plus one being
//! filled or drained), so memory stays bounded whatever flows through.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use hyper::body::{Body, Bytes, Frame};
use tokio::sync::mpsc;

/// Size of the pieces a [`PipeWriter`] sends.
pub const PIECE: usize = 256 * 1024;
/// Pieces a pipe holds before the writing side waits.
pub const DEPTH: usize = 8;

/// What both ends of a pipe see.
#[derive(Debug, Default)]
struct Shared {
    /// The writing side reached its end normally.
    finished: AtomicBool,
    /// The reading side went away (the server answered, the connection closed, the
    /// unpacker stopped).
    closed: AtomicBool,
    /// Why the writing side gave up, if it did.
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, reason: &str) {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| reason.to_string());
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The message of a write into a pipe whose reading side is gone.
const CLOSED: &str = "the other side of the transfer stopped";
/// The message of an end that came without `finish`.
const CUT_SHORT: &str = "the data source stopped before its end";

/// A request body fed from a thread: see the module documentation.
pub fn upload() -> (PipeWriter, PipeBody, PipeStatus) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let shared = Arc::new(Shared::default());
    (
        PipeWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(PIECE),
            shared: shared.clone(),
        },
        PipeBody {
            rx,
            shared: shared.clone(),
        },
        PipeStatus(shared),
    )
}

/// The writing end of [`upload`]; call [`PipeWriter::finish`] at the end of the data.
#[derive(Debug)]
pub struct PipeWriter {
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

impl PipeWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        let sent = match &self.tx {
            Some(tx) => tx.blocking_send(Ok(Bytes::from(piece))).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            self.shared.closed.store(true, Ordering::Release);
            Err(io::Error::new(io::ErrorKind::BrokenPipe, CLOSED))
        }
    }

    /// Sends what is buffered and ends the body normally.
    pub fn finish(mut self) -> io::Result<()> {
        self.send_buf()?;
        self.shared.finished.store(true, Ordering::Release);
        self.tx = None;
        Ok(())
    }

    /// Ends the body with an error, so that the request is aborted; `reason` is kept
    /// for [`PipeStatus::failure`]. Nothing is recorded when the reading side had gone
    /// already: then the write error was a consequence, not the cause.
    pub fn fail(mut self, reason: &str) {
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        self.shared.fail(reason);
        if let Some(tx) = self.tx.take() {
            let _ = tx.blocking_send(Err(io::Error::other(reason.to_string())));
        }
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (PIECE - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Pieces go out when full or at `finish`: a flush by the tar writer must not
        // turn into many small frames.
        Ok(())
    }
}

/// The request body of [`upload`].
#[derive(Debug)]
pub struct PipeBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    shared: Arc<Shared>,
}

impl Body for PipeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(match ready!(self.rx.poll_recv(cx)) {
            Some(Ok(piece)) => Some(Ok(Frame::data(piece))),
            Some(Err(e)) => Some(Err(e)),
            None if self.shared.finished.load(Ordering::Acquire) => None,
            None => Some(Err(io::Error::other(CUT_SHORT))),
        })
    }
}

impl Drop for PipeBody {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

/// What the async side can ask of an [`upload`] pipe after the request.
#[derive(Debug, Clone)]
pub struct PipeStatus(Arc<Shared>);

impl PipeStatus {
    /// Why the writing side gave up, if it did (its own reason, not a consequence of
    /// the request ending).
    pub fn failure(&self) -> Option<String> {
        self.0.failure()
    }
}

/// A reader fed by an async task: see the module documentation.
pub fn download() -> (PipeFeeder, PipeReader) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let shared = Arc::new(Shared::default());
    (
        PipeFeeder {
            tx,
            shared: shared.clone(),
        },
        PipeReader {
            rx,
            current: Bytes::new(),
            shared,
        },
    )
}

/// The async end of [`download`].
#[derive(Debug)]
pub struct PipeFeeder {
    tx: mpsc::Sender<io::Result<Bytes>>,
    shared: Arc<Shared>,
}

/// The reading side of a [`download`] pipe went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderGone;

impl PipeFeeder {
    /// Hands a piece over, waiting while the pipe is full.
    pub async fn send(&self, piece: Bytes) -> Result<(), ReaderGone> {
        self.tx.send(Ok(piece)).await.map_err(|_| ReaderGone)
    }

    /// Ends the data normally.
    pub fn finish(self) {
        self.shared.finished.store(true, Ordering::Release);
    }

    /// Ends the data with an error the reader returns.
    pub async fn fail(self, reason: &str) {
        self.shared.fail(reason);
        let _ = self
            .tx
            .send(Err(io::Error::other(reason.to_string())))
            .await;
    }
}

/// The blocking end of [`download`].
#[derive(Debug)]
pub struct PipeReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    shared: Arc<Shared>,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(piece)) => self.current = piece,
                Some(Err(e)) => return Err(e),
                None if self.shared.finished.load(Ordering::Acquire) => return Ok(0),
                None => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, CUT_SHORT));
                }
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn accepts_writes_of_any_size_in_order() {
        let (mut w, body, status) = upload();
        let data: Vec<u8> = (0..3 * PIECE + 17).map(|i| (i % 251) as u8).collect();
        let expect = data.clone();
        let writer = std::thread::spawn(move || {
            for piece in data.chunks(1000) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap();
        });
        let got = body.collect().await.unwrap().to_bytes();
        writer.join().unwrap();
        assert_eq!(got.len(), expect.len());
        assert!(got == expect);
        assert_eq!(status.failure(), None);
    }

    #[tokio::test]
    async fn rejects_a_writer_dropped_before_finish() {
        let (mut w, body, _) = upload();
        std::thread::spawn(move || {
            w.write_all(b"partial").unwrap();
            drop(w);
        })
        .join()
        .unwrap();
        let e = body.collect().await.unwrap_err();
        assert_eq!(e.to_string(), CUT_SHORT);
    }

    #[tokio::test]
    async fn rejects_a_failed_writer_and_keeps_its_reason() {
        let (mut w, body, status) = upload();
        std::thread::spawn(move || {
            w.write_all(&[1; 10]).unwrap();
            w.fail("reading /x: gone");
        })
        .join()
        .unwrap();
        let e = body.collect().await.unwrap_err();
        assert_eq!(e.to_string(), "reading /x: gone");
        assert_eq!(status.failure().as_deref(), Some("reading /x: gone"));
    }

    #[tokio::test]
    async fn rejects_writes_after_the_body_is_gone_without_blaming_the_writer() {
        let (mut w, body, status) = upload();
        drop(body);
        let e = std::thread::spawn(move || {
            let e = w.write_all(&vec![0; 2 * PIECE]).unwrap_err();
            w.fail(&e.to_string());
            e
        })
        .join()
        .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(status.failure(), None);
    }

    #[tokio::test]
    async fn accepts_a_download_fed_in_pieces() {
        let (feeder, mut reader) = download();
        let reading = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).map(|_| all)
        });
        for i in 0..20u8 {
            feeder.send(Bytes::from(vec![i; 1000])).await.unwrap();
        }
        feeder.finish();
        let all = reading.await.unwrap().unwrap();
        assert_eq!(all.len(), 20_000);
        assert_eq!(all[19_999], 19);
    }

    #[tokio::test]
    async fn rejects_a_download_that_stops_without_finish() {
        let (feeder, mut reader) = download();
        let reading = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all)
        });
        feeder.send(Bytes::from_static(b"abc")).await.unwrap();
        drop(feeder);
        let e = reading.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn rejects_a_download_that_fails() {
        let (feeder, mut reader) = download();
        let reading = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all)
        });
        feeder.fail("connection reset").await;
        let e = reading.await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "connection reset");
    }
}
