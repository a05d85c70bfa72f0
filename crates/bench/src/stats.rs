//! Medians and formatting.

use std::time::Duration;

/// Median of a sample (sorts it); the default value for an empty one.
pub fn median<T: Ord + Copy + Default>(samples: &mut [T]) -> T {
    if samples.is_empty() {
        return T::default();
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// `12.3 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
