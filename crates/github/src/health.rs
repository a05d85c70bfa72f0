//! Health checks: GET each URL with capped exponential backoff until it answers in the
//! expected range or the deadline passes. URLs are checked concurrently.

use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::Serialize;

/// An inclusive range of acceptable status codes, e.g. `200-399` or `204`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpectRange {
    /// Lowest accepted status.
    pub low: u16,
    /// Highest accepted status.
    pub high: u16,
}

impl Default for ExpectRange {
    fn default() -> Self {
        Self {
            low: 200,
            high: 399,
        }
    }
}

impl FromStr for ExpectRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parse = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|code| (100..=599).contains(code))
        };
        let range = match text.split_once('-') {
            Some((low, high)) => parse(low).zip(parse(high)),
            None => parse(text).map(|code| (code, code)),
        };
        match range {
            Some((low, high)) if low <= high => Ok(Self { low, high }),
            _ => Err(format!(
                "{text:?} is not a status range such as 200-399 or 204"
            )),
        }
    }
}

impl ExpectRange {
    /// Whether `status` is accepted.
    pub fn contains(self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

/// Timing of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthOptions {
    /// Overall deadline per URL.
    pub timeout: Duration,
    /// First wait between attempts; doubles each time.
    pub interval: Duration,
    /// Cap of the wait between attempts.
    pub max_interval: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Accepted statuses.
    pub expect: ExpectRange,
}

/// Wait before attempt `attempt + 1` (attempts count from 1). Pure.
pub fn backoff(options: &HealthOptions, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    options
        .interval
        .saturating_mul(factor)
        .min(options.max_interval)
}

/// One try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The URL.
    pub url: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Status code, when the server answered.
    pub status: Option<u16>,
    /// Why there was no answer.
    pub error: Option<String>,
    /// Milliseconds since the check started.
    pub elapsed_ms: u64,
}

/// Outcome for one URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UrlReport {
    /// The URL.
    pub url: String,
    /// Answered in range before the deadline.
    pub healthy: bool,
    /// Every attempt.
    pub attempts: Vec<Attempt>,
}

impl UrlReport {
    /// Status codes (or `error`) of every attempt, comma-separated.
    pub fn statuses(&self) -> String {
        self.attempts
            .iter()
            .map(|a| {
                a.status
                    .map_or_else(|| "error".to_string(), |s| s.to_string())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Checks every URL concurrently; `on_attempt` sees each attempt as it happens.
pub async fn check_urls(
    urls: &[String],
    options: &HealthOptions,
    on_attempt: &dyn Fn(&Attempt, Option<Duration>),
) -> Result<Vec<UrlReport>, String> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("preview-envs-health/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(options.request_timeout)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let checks = urls
        .iter()
        .map(|url| check_one(&client, url, options, on_attempt));
    Ok(futures::future::join_all(checks).await)
}

async fn check_one(
    client: &reqwest::Client,
    url: &str,
    options: &HealthOptions,
    on_attempt: &dyn Fn(&Attempt, Option<Duration>),
) -> UrlReport {
    let started = Instant::now();
    let deadline = started + options.timeout;
    let mut attempts = Vec::new();
    let mut number = 0;
    loop {
        number += 1;
        let (status, error) = match client.get(url).send().await {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (None, Some(crate::github::error_chain(&error))),
        };
        let attempt = Attempt {
            url: url.to_string(),
            attempt: number,
            status,
            error,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let healthy = status.is_some_and(|s| options.expect.contains(s));
        let remaining = deadline.saturating_duration_since(Instant::now());
        let next =
            (!healthy && !remaining.is_zero()).then(|| backoff(options, number).min(remaining));
        on_attempt(&attempt, next);
        attempts.push(attempt);
        match next {
            Some(wait) => tokio::time::sleep(wait).await,
            None => {
                return UrlReport {
                    url: url.to_string(),
                    healthy,
                    attempts,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            "200-399".parse(),
            Ok(ExpectRange {
                low: 200,
                high: 399
            })
        );
        assert_eq!(
            "204".parse(),
            Ok(ExpectRange {
                low: 204,
                high: 204
            })
        );
        for bad in ["", "abc", "399-200", "0-99", "200-700"] {
            assert!(bad.parse::<ExpectRange>().is_err(), "{bad}");
        }
        assert!(ExpectRange::default().contains(301));
        assert!(!ExpectRange::default().contains(503));
    }

    #[test]
    fn backoff_is_capped() {
        let options = HealthOptions {
            timeout: Duration::from_secs(300),
            interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            expect: ExpectRange::default(),
        };
        let waits: Vec<u64> = (1..=6).map(|a| backoff(&options, a).as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 30, 30, 30]);
    }
}
