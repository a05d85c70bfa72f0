//! Medians, percentiles and formatting.

use std::time::Duration;

/// Median of a sample (sorts it); the default value for an empty one.
pub fn median<T: Ord + Copy + Default>(samples: &mut [T]) -> T {
    if samples.is_empty() {
        return T::default();
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// The `p`-th percentile (nearest rank) of a sorted sample; zero for an empty one.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `12.3 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sample: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sample, 50), Duration::from_millis(50));
        assert_eq!(percentile(&sample, 95), Duration::from_millis(95));
        assert_eq!(percentile(&sample[..1], 95), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
        let mut odd = [3, 1, 2];
        assert_eq!(median(&mut odd), 2);
    }
}
