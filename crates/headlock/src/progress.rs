//! Progress of `headlock backup` and `headlock restore` on standard error: a bar
//! (indicatif) with the bytes moved, the rate and the time left when standard error is
//! a terminal; a plain line every [`LINE_INTERVAL`] otherwise (logs, CI; the
//! `HEADLOCK_PROGRESS_INTERVAL` environment variable changes it, in seconds); nothing
//! with `--quiet`. Standard output stays free for the data or the snapshot id.
//!
//! A tree backup ([`Progress::scan`]) shows what restic's status line shows: files and
//! bytes scanned (read, or skipped as unchanged), of the totals once a background walk
//! has sized the tree, the time left from then on, and (its detail) what was sent.
//!
//! The bytes are counted by whoever moves them (a reading thread, the download task)
//! in a shared [`Counter`]; a ticker thread turns the count into the display, so the
//! data path never waits for the terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};

/// How often the plain display prints a line, unless `HEADLOCK_PROGRESS_INTERVAL` says.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);
/// The environment variable that sets the plain display's interval, in seconds.
pub const INTERVAL_VAR: &str = "HEADLOCK_PROGRESS_INTERVAL";
/// Bounds of [`INTERVAL_VAR`], in seconds.
const INTERVAL_RANGE: std::ops::RangeInclusive<f64> = 0.1..=3600.0;
/// How often the bar is redrawn.
const BAR_INTERVAL: Duration = Duration::from_millis(100);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An indicatif bar (standard error is a terminal).
    Bar,
    /// A plain line at this interval.
    Lines(Duration),
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
            Mode::Lines(line_interval(std::env::var(INTERVAL_VAR).ok().as_deref()))
        }
    }
}

/// The plain display's interval: `value` in seconds if it is a number within
/// [`INTERVAL_RANGE`], else [`LINE_INTERVAL`] (with a warning if it was set).
fn line_interval(value: Option<&str>) -> Duration {
    let Some(value) = value else {
        return LINE_INTERVAL;
    };
    match value.trim().parse::<f64>() {
        Ok(secs) if INTERVAL_RANGE.contains(&secs) => Duration::from_secs_f64(secs),
        _ => {
            eprintln!(
                "headlock: warning: {INTERVAL_VAR} must be seconds from {} to {}; using {}",
                INTERVAL_RANGE.start(),
                INTERVAL_RANGE.end(),
                LINE_INTERVAL.as_secs()
            );
            LINE_INTERVAL
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

/// What the display shows besides the count, set once each while it runs.
#[derive(Default)]
struct Shown {
    detail: OnceLock<Detail>,
    /// A tree backup: files scanned, and bytes skipped unread (scanned without being
    /// counted by the counter).
    scan: OnceLock<(Counter, Counter)>,
    /// Total bytes and, for a tree, files.
    total: OnceLock<(u64, Option<u64>)>,
}

/// One moment of a display, for a line or the bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Moment {
    /// Bytes done: moved, or for a scan read or skipped.
    done: u64,
    /// Files scanned, for a scan.
    files: Option<u64>,
    total: Option<(u64, Option<u64>)>,
    elapsed: Duration,
}

impl Shown {
    fn moment(&self, counter: &Counter, start: Instant) -> Moment {
        let (files, skipped) = match self.scan.get() {
            Some((files, skipped)) => (Some(files.get()), skipped.get()),
            None => (None, 0),
        };
        Moment {
            done: counter.get().saturating_add(skipped),
            files,
            total: self.total.get().copied(),
            elapsed: start.elapsed(),
        }
    }

    /// `, DETAIL` or nothing.
    fn detail(&self, sep: &str) -> String {
        self.detail
            .get()
            .map(|f| format!("{sep}{}", f()))
            .unwrap_or_default()
    }
}

/// The time left at the rate so far, once the total is known and some is done.
fn eta(m: &Moment) -> Option<Duration> {
    let (total, _) = m.total?;
    let rate = rate(m.done, m.elapsed);
    (rate > 0 && m.done < total).then(|| Duration::from_secs((total - m.done).div_ceil(rate)))
}

/// A plain progress line (without the `headlock: LABEL: ` start and the detail):
/// `N of T VERB, R/s, ELAPSED, ETA E`, or for a scan `F of TF files, N of T scanned
/// (P%), R/s, ELAPSED, ETA E`, each "of" and the ETA once the total is known.
fn plain_line(verb: &str, m: &Moment) -> String {
    let (total_bytes, total_files) = match m.total {
        Some((bytes, files)) => (Some(bytes), files),
        None => (None, None),
    };
    let of = |n: Option<u64>, f: &dyn Fn(u64) -> String| {
        n.map(|n| format!(" of {}", f(n))).unwrap_or_default()
    };
    let mut line = String::new();
    let verb = match m.files {
        Some(files) => {
            line += &format!("{files}{} files, ", of(total_files, &|n| n.to_string()));
            "scanned"
        }
        None => verb,
    };
    line += &format!(
        "{}{} {verb}",
        HumanBytes(m.done),
        of(total_bytes, &|n| HumanBytes(n).to_string())
    );
    if let Some(total) = total_bytes.filter(|t| *t > 0) {
        line += &format!(" ({}%)", m.done.min(total) * 100 / total);
    }
    line += &format!(
        ", {}/s, {}",
        HumanBytes(rate(m.done, m.elapsed)),
        HumanDuration(m.elapsed)
    );
    if let Some(left) = eta(m) {
        line += &format!(", ETA {}", HumanDuration(left));
    }
    line
}

/// A running display; [`Progress::finish`] ends it with a summary line.
pub struct Progress {
    shown: Arc<Shown>,
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
        let shown: Arc<Shown> = Arc::default();
        if let Some(total) = total {
            let _ = shown.total.set((total, None));
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let ticker = match mode {
            Mode::Quiet => None,
            Mode::Bar => {
                let bar = bar.clone().expect("a bar in bar mode");
                let counter = counter.clone();
                let shown = shown.clone();
                Some(std::thread::spawn(move || {
                    // The style drawn: (total known, scanning).
                    let mut styled = (total.is_some(), false);
                    while let Err(mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(BAR_INTERVAL)
                    {
                        let m = shown.moment(&counter, start);
                        let now = (m.total.is_some(), m.files.is_some());
                        if now != styled {
                            if let Some((t, _)) = m.total {
                                bar.set_length(t);
                            }
                            let shown_verb = if now.1 { "scanned" } else { verb };
                            bar.set_style(bar_style(now.0, shown_verb));
                            styled = now;
                        }
                        bar.set_position(m.done);
                        let files = match (m.files, m.total) {
                            (Some(f), Some((_, Some(t)))) => format!(", {f}/{t} files"),
                            (Some(f), _) => format!(", {f} files"),
                            (None, _) => String::new(),
                        };
                        bar.set_message(format!("{files}{}", shown.detail(", ")));
                    }
                }))
            }
            Mode::Lines(interval) => {
                let counter = counter.clone();
                let shown = shown.clone();
                Some(std::thread::spawn(move || {
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval)
                    {
                        eprintln!(
                            "headlock: {label}: {}{}",
                            plain_line(verb, &shown.moment(&counter, start)),
                            shown.detail(", ")
                        );
                    }
                }))
            }
        };
        Progress {
            shown,
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
    /// a tree); `None` when nothing is shown.
    pub fn total_later(&self) -> Option<TotalLater> {
        (self.mode != Mode::Quiet).then(|| TotalLater(self.shown.clone()))
    }

    /// Shows a tree backup as a scan: `files` scanned, and the bytes of `skipped`
    /// (files not read, unchanged) as scanned besides the count (once; later calls
    /// are ignored).
    pub fn scan(&self, files: Counter, skipped: Counter) {
        let _ = self.shown.scan.set((files, skipped));
    }

    /// Adds `detail` to every redraw and to the summary line (once; later calls are
    /// ignored).
    pub fn set_detail(&self, detail: impl Fn() -> String + Send + Sync + 'static) {
        let _ = self.shown.detail.set(Box::new(detail));
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
            eprintln!(
                "headlock: {}: {} {} in {:.1} s ({}/s){}{extra}",
                self.label,
                HumanBytes(done),
                self.verb,
                elapsed.as_secs_f64(),
                HumanBytes(rate(done, elapsed)),
                self.shown.detail("; "),
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
pub struct TotalLater(Arc<Shown>);

impl TotalLater {
    /// The total: `bytes`, and for a tree `files`; the display shows the time left
    /// from then on.
    pub fn set(self, bytes: u64, files: Option<u64>) {
        let _ = self.0.total.set((bytes, files));
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
            for verb in ["read", "downloaded", "scanned"] {
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

    #[test]
    fn accepts_plain_lines_with_totals_and_the_time_left_once_known() {
        let secs = Duration::from_secs;
        let mut m = Moment {
            done: 3 << 20,
            files: None,
            total: None,
            elapsed: secs(3),
        };
        assert_eq!(
            plain_line("read", &m),
            "3.00 MiB read, 1.00 MiB/s, 3 seconds"
        );
        m.total = Some((10 << 20, None));
        assert_eq!(
            plain_line("read", &m),
            "3.00 MiB of 10.00 MiB read (30%), 1.00 MiB/s, 3 seconds, ETA 7 seconds"
        );
        // A scan counts files, and says "scanned" whatever the verb.
        m.files = Some(120);
        m.total = None;
        assert_eq!(
            plain_line("read", &m),
            "120 files, 3.00 MiB scanned, 1.00 MiB/s, 3 seconds"
        );
        m.total = Some((12 << 20, Some(480)));
        assert_eq!(
            plain_line("read", &m),
            "120 of 480 files, 3.00 MiB of 12.00 MiB scanned (25%), 1.00 MiB/s, 3 seconds, ETA 9 seconds"
        );
        // Done, or nothing yet: no time left to say.
        m.done = 12 << 20;
        assert!(!plain_line("read", &m).contains("ETA"));
        m.done = 0;
        assert!(!plain_line("read", &m).contains("ETA"));
    }

    #[test]
    fn accepts_intervals_within_bounds_only() {
        assert_eq!(line_interval(None), LINE_INTERVAL);
        assert_eq!(line_interval(Some("0.5")), Duration::from_millis(500));
        assert_eq!(line_interval(Some(" 60 ")), Duration::from_secs(60));
        for bad in ["0", "0.01", "-1", "1e9", "NaN", "five", ""] {
            assert_eq!(line_interval(Some(bad)), LINE_INTERVAL, "{bad}");
        }
    }
}
