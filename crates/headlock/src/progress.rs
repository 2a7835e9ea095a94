//! Progress of `headlock backup` and `headlock restore` on standard error: a bar
//! (indicatif) with the bytes moved, the rate and the time left when standard error is
//! a terminal; a plain line every [`LINE_INTERVAL`] otherwise (logs, CI); nothing
//! with `--quiet`. Standard output stays free for the data or the snapshot id.
//!
//! The bytes are counted by whoever moves them (a reading thread, the download task)
//! in a shared [`Counter`]; a ticker thread turns the count into the display, so the
//! data path never waits for the terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};

/// How often the plain display prints a line.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);
/// How often the bar is redrawn.
const BAR_INTERVAL: Duration = Duration::from_millis(100);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An indicatif bar (standard error is a terminal).
    Bar,
    /// A plain line every [`LINE_INTERVAL`].
    Lines,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// [`Mode::Quiet`] if asked, else a bar on a terminal and lines elsewhere.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// A byte count shared with the threads that move the data.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n` bytes.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Text the display adds to the byte count (e.g. what was sent and what skipped),
/// computed at each redraw.
type Detail = Box<dyn Fn() -> String + Send + Sync>;

/// A running display; [`Progress::finish`] ends it with a summary line.
pub struct Progress {
    detail: Arc<std::sync::OnceLock<Detail>>,
    mode: Mode,
    /// `backup`, `restore`: the start of every line.
    label: &'static str,
    /// `read`, `downloaded`: what the count is.
    verb: &'static str,
    counter: Counter,
    bar: Option<ProgressBar>,
    stop: Option<mpsc::Sender<()>>,
    ticker: Option<std::thread::JoinHandle<()>>,
    start: Instant,
}

impl Progress {
    /// Starts showing `counter` (of `total` bytes, when known).
    pub fn start(
        mode: Mode,
        label: &'static str,
        verb: &'static str,
        total: Option<u64>,
        counter: Counter,
    ) -> Progress {
        let start = Instant::now();
        let bar = (mode == Mode::Bar).then(|| new_bar(total, verb));
        let detail: Arc<std::sync::OnceLock<Detail>> = Arc::default();
        let detail_of = |detail: &Arc<std::sync::OnceLock<Detail>>| {
            detail
                .get()
                .map(|f| format!(", {}", f()))
                .unwrap_or_default()
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let ticker = match mode {
            Mode::Quiet => None,
            Mode::Bar => {
                let bar = bar.clone().expect("a bar in bar mode");
                let counter = counter.clone();
                let detail = detail.clone();
                Some(std::thread::spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(BAR_INTERVAL)
                    {
                        bar.set_position(counter.get());
                        bar.set_message(detail_of(&detail));
                    }
                }))
            }
            Mode::Lines => {
                let counter = counter.clone();
                let detail = detail.clone();
                Some(std::thread::spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(LINE_INTERVAL)
                    {
                        let done = counter.get();
                        let elapsed = start.elapsed();
                        let of = total
                            .map(|t| format!(" of {}", HumanBytes(t)))
                            .unwrap_or_default();
                        eprintln!(
                            "headlock: {label}: {}{of} {verb}, {}/s, {}{}",
                            HumanBytes(done),
                            HumanBytes(rate(done, elapsed)),
                            HumanDuration(elapsed),
                            detail_of(&detail)
                        );
                    }
                }))
            }
        };
        Progress {
            detail,
            mode,
            label,
            verb,
            counter,
            bar,
            stop: Some(stop),
            ticker,
            start,
        }
    }

    /// A handle that sets the total once it is known (e.g. after another thread sized
    /// a tree); `None` when the display has no use for one.
    pub fn total_later(&self) -> Option<TotalLater> {
        self.bar.clone().map(|bar| TotalLater {
            bar,
            verb: self.verb,
        })
    }

    /// Adds `detail` to every redraw and to the summary line (once; later calls are
    /// ignored).
    pub fn set_detail(&self, detail: impl Fn() -> String + Send + Sync + 'static) {
        let _ = self.detail.set(Box::new(detail));
    }

    /// A handle that prints warnings without garbling the bar.
    pub fn warnings(&self) -> Warnings {
        Warnings(self.bar.clone())
    }

    fn stop_ticker(&mut self) {
        self.stop.take();
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }

    /// Ends the display with `headlock: LABEL: N VERB in T (R/s)` and `extra`
    /// (e.g. `; 12 MiB new stored`), unless quiet.
    pub fn finish(mut self, extra: &str) {
        self.stop_ticker();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.mode != Mode::Quiet {
            let done = self.counter.get();
            let elapsed = self.start.elapsed();
            let detail = self
                .detail
                .get()
                .map(|f| format!("; {}", f()))
                .unwrap_or_default();
            eprintln!(
                "headlock: {}: {} {} in {:.1} s ({}/s){detail}{extra}",
                self.label,
                HumanBytes(done),
                self.verb,
                elapsed.as_secs_f64(),
                HumanBytes(rate(done, elapsed)),
            );
        }
    }
}

impl Drop for Progress {
    /// An abandoned display (an error) just disappears; the error says the rest.
    fn drop(&mut self) {
        self.stop_ticker();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// See [`Progress::total_later`].
pub struct TotalLater {
    bar: ProgressBar,
    verb: &'static str,
}

impl TotalLater {
    /// Turns the spinner into a bar of `total` bytes.
    pub fn set(self, total: u64) {
        self.bar.set_length(total);
        self.bar.set_style(bar_style(true, self.verb));
    }
}

/// See [`Progress::warnings`]. Warnings show whatever the mode, `--quiet` included.
#[derive(Clone)]
pub struct Warnings(Option<ProgressBar>);

impl Warnings {
    /// Prints `headlock: warning: TEXT` on standard error.
    pub fn warn(&self, text: &str) {
        match &self.0 {
            Some(bar) => bar.suspend(|| eprintln!("headlock: warning: {text}")),
            None => eprintln!("headlock: warning: {text}"),
        }
    }
}

fn new_bar(total: Option<u64>, verb: &'static str) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::no_length(),
    };
    bar.set_style(bar_style(total.is_some(), verb));
    bar
}

fn bar_style(known: bool, verb: &str) -> ProgressStyle {
    ProgressStyle::with_template(&template(known, verb))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The bar's template: with a total, a bar and the time left; without, a spinner.
fn template(known: bool, verb: &str) -> String {
    if known {
        format!(
            "{{bar:30}} {{bytes}}/{{total_bytes}} {verb}, {{binary_bytes_per_sec}}, {{eta}} left{{msg}}"
        )
    } else {
        format!("{{spinner}} {{bytes}} {verb}, {{binary_bytes_per_sec}}, {{elapsed}}{{msg}}")
    }
}

/// Bytes per second.
fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0;
    }
    (bytes as f64 / secs) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_bar_templates() {
        for known in [true, false] {
            for verb in ["read", "downloaded"] {
                let t = template(known, verb);
                assert!(ProgressStyle::with_template(&t).is_ok(), "{t}");
                assert!(
                    t.contains(verb) && t.contains("{binary_bytes_per_sec}"),
                    "{t}"
                );
            }
        }
    }

    #[test]
    fn accepts_counts_from_several_threads() {
        let c = Counter::default();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.add(3)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(c.get(), 12_000);
        assert_eq!(rate(1000, Duration::from_secs(2)), 500);
        assert_eq!(rate(1000, Duration::ZERO), 0);
    }
}
