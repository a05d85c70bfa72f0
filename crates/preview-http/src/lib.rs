//! # preview-http
//!
//! What the engine's HTTP API clients share — GitHub's (`preview-github`) and
//! DigitalOcean's (`preview-digitalocean`):
//! - [`api_base_url`]: the one check of the base URL a token is sent to
//!   (https, or plain http to loopback test servers only; no query, no user
//!   info), normalised to end in `/` so relative paths join under it;
//! - [`Backoff`]: the one retry schedule, exponential with jitter (from
//!   `preview_core::retry`, which the Kubernetes provider uses too).
//!
//! What is retried, and when a server's own `retry-after` wins, stays with
//! each client: the APIs differ there.

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

pub use preview_core::retry::Backoff;

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
}
