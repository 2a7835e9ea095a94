//! Latency samples and their percentiles (nearest rank, on sorted samples).

use std::time::Duration;

/// A set of latency samples.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted: bool,
    values: Vec<Duration>,
}

impl Samples {
    /// Empty, with room for `n` samples.
    pub fn with_capacity(n: usize) -> Samples {
        Samples {
            sorted: true,
            values: Vec::with_capacity(n),
        }
    }

    /// Adds one sample.
    pub fn push(&mut self, d: Duration) {
        self.sorted = false;
        self.values.push(d);
    }

    /// Adds every sample of `other`.
    pub fn extend(&mut self, other: Samples) {
        self.sorted = false;
        self.values.extend(other.values);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The `p`-th percentile (0 < p <= 100) by nearest rank; `None` when empty.
    pub fn percentile(&mut self, p: f64) -> Option<Duration> {
        if self.values.is_empty() {
            return None;
        }
        if !self.sorted {
            self.values.sort_unstable();
            self.sorted = true;
        }
        let n = self.values.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        Some(self.values[rank.clamp(1, n) - 1])
    }

    /// The largest sample.
    pub fn max(&self) -> Option<Duration> {
        self.values.iter().max().copied()
    }
}

/// Milliseconds with two decimals, for printing.
pub fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
        None => "n/a".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nearest_rank_percentiles() {
        let mut s = Samples::default();
        for i in (1..=100u64).rev() {
            s.push(Duration::from_millis(i));
        }
        assert_eq!(s.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(s.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(s.percentile(100.0), Some(Duration::from_millis(100)));
        assert_eq!(s.max(), Some(Duration::from_millis(100)));
        let mut one = Samples::default();
        one.push(Duration::from_millis(7));
        assert_eq!(one.percentile(1.0), Some(Duration::from_millis(7)));
        assert_eq!(Samples::default().percentile(50.0), None);
    }
}
