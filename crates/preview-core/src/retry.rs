//! The one retry schedule of the engine's clients (the GitHub and DigitalOcean
//! API clients through `preview-http`, the Kubernetes provider's retried
//! writes and its first request): exponential with jitter, from the maintained
//! `backon` crate, so many runs retrying after the same outage spread out
//! instead of returning at the same instant. What is retried, how often, and
//! when a server's own `retry-after` wins stays with each client.

use std::time::Duration;

/// The wait before each retry: `first`, then doubled each time up to `max`,
/// each plus a random jitter of up to itself (so a wait lies between the
/// exponential step and twice it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The step before the first retry.
    pub first: Duration,
    /// The cap of the step (the jitter comes on top).
    pub max: Duration,
}

impl Backoff {
    /// The waits of one request's retries, in order (endless: the caller
    /// counts its attempts).
    pub fn delays(&self) -> backon::ExponentialBackoff {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.max.max(self.first))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_of_up_to_each_step() {
        let backoff = Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
        };
        let steps = [1, 2, 4, 8, 16, 30, 30, 30];
        // Many schedules: every wait lies in [step, 2 × step], and they differ.
        let mut firsts = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let waits: Vec<Duration> = backoff.delays().take(steps.len()).collect();
            for (wait, step) in waits.iter().zip(steps) {
                let step = Duration::from_secs(step);
                assert!(
                    *wait >= step && *wait <= step * 2,
                    "{wait:?} for step {step:?}"
                );
            }
            firsts.insert(waits[0]);
        }
        assert!(firsts.len() > 1, "the jitter spreads the retries");
    }
}
