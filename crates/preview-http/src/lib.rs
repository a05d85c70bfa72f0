//! # preview-http
//!
//! What the engine's HTTP API clients share — GitHub's (`preview-github`) and
//! DigitalOcean's (`preview-digitalocean`):
//! - [`api_base_url`]: the one check of the base URL a token is sent to
//!   (https, or plain http to loopback test servers only; no query, no user
//!   info), normalised to end in `/` so relative paths join under it;
//! - [`Backoff`]: the one retry schedule, exponential with jitter, from the
//!   maintained `backon` crate (so many runs retrying after the same outage
//!   spread out instead of returning at the same instant).
//!
//! What is retried, and when a server's own `retry-after` wins, stays with
//! each client: the APIs differ there.

use std::time::Duration;

use reqwest::Url;

/// `api_url` checked and normalised as the base of an API that receives a
/// token. The error says why, for the caller to wrap with the URL; `example`
/// is a correct base URL of that API (`https://api.github.com`).
pub fn api_base_url(api_url: &str, example: &str) -> Result<Url, String> {
    let mut base = Url::parse(api_url.trim()).map_err(|e| e.to_string())?;
    match base.scheme() {
        "https" => {}
        "http" => {
            let host = base.host_str().unwrap_or_default();
            let loopback = host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err("plain http is only allowed for loopback test servers; the token would travel unencrypted".into());
            }
        }
        _ => return Err("must be an http(s) URL".into()),
    }
    if base.cannot_be_a_base() || base.query().is_some() || !base.username().is_empty() {
        return Err(format!("must be a plain base URL such as {example}"));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

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
    fn base_urls() {
        let ok = |u: &str| api_base_url(u, "https://api.example.com").map(|b| b.to_string());
        assert_eq!(
            ok("https://api.github.com").as_deref(),
            Ok("https://api.github.com/")
        );
        assert_eq!(
            ok(" https://ghe.example.com/api/v3 ").as_deref(),
            Ok("https://ghe.example.com/api/v3/")
        );
        assert_eq!(
            ok("http://127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080/")
        );
        assert_eq!(ok("http://[::1]:9").as_deref(), Ok("http://[::1]:9/"));
        assert_eq!(
            ok("http://localhost:9").as_deref(),
            Ok("http://localhost:9/")
        );
        for (bad, why) in [
            ("http://api.github.com", "unencrypted"),
            ("ftp://api.github.com", "http(s)"),
            (
                "https://api.github.com/?x=1",
                "plain base URL such as https://api.example.com",
            ),
            ("https://user@api.github.com", "plain base URL"),
            ("not a url", "relative URL"),
        ] {
            let err = ok(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

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
