//! A small typed client of the DigitalOcean API (v2): domain records here,
//! Kubernetes clusters in `clusters_api.rs`.
//!
//! - Base URL `https://api.digitalocean.com` by default; any other (a test fake) can
//!   be given, plain `http` only for loopback addresses so the token never travels
//!   unencrypted.
//! - The token is a [`SecretString`], sent as a sensitive `Authorization: Bearer`
//!   header and never part of a message, an error or a `Debug` output.
//! - Lists follow DigitalOcean's page-number pagination (`page`, `per_page` ≤ 200,
//!   `meta.total`) instead of the `links.pages.next` URLs, so the token is only ever
//!   sent to the configured base URL.
//! - Rate limits (429) and server errors (5xx) are retried with exponential backoff;
//!   a POST only on 429, connection failures and before anything was sent, since a
//!   5xx may come after the record was created (the provider's next read sees it).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use preview_core::secret::SecretString;

/// The real API.
pub const DEFAULT_API_URL: &str = "https://api.digitalocean.com";
/// Page size of list requests (DigitalOcean's maximum).
pub const PER_PAGE: usize = 200;
/// Upper bound on pages read by one list (200 000 records).
const MAX_PAGES: usize = 1000;
/// `User-Agent` of every request.
const USER_AGENT: &str = concat!("preview-envs/", env!("CARGO_PKG_VERSION"));

/// Errors of the client. None of them contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DoError {
    /// The base URL cannot be used.
    #[error("DigitalOcean API URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why not.
        reason: String,
    },
    /// The API answered with an error status.
    #[error("DigitalOcean API {request}: HTTP {status} {id}: {message}")]
    Api {
        /// `POST /v2/domains/example.com/records`.
        request: String,
        /// HTTP status.
        status: u16,
        /// DigitalOcean's error id (`not_found`, `unauthorized`, …).
        id: String,
        /// DigitalOcean's message.
        message: String,
    },
    /// No answer (connection, timeout).
    #[error("DigitalOcean API {request}: {message}")]
    Transport {
        /// The request.
        request: String,
        /// What failed.
        message: String,
    },
    /// An answer that is not what the API documents.
    #[error("DigitalOcean API {request}: unexpected response: {message}")]
    Decode {
        /// The request.
        request: String,
        /// What was wrong.
        message: String,
    },
}

impl DoError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            DoError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in total (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub backoff: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(500),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// One DNS record as the API returns it (the fields the engine uses).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DomainRecord {
    /// Record id.
    pub id: u64,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Name relative to the zone.
    pub name: String,
    /// Address, target or text.
    #[serde(default)]
    pub data: String,
    /// TTL in seconds.
    #[serde(default)]
    pub ttl: i64,
}

/// A record to create or the fields to change. Every attribute is sent, `null`
/// where it does not apply, like the API's own example: its schema requires `type`
/// for every request (PATCH too), and `flags` and `tag` even for TXT records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordFields {
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Name relative to the zone.
    pub name: String,
    /// Address, target or text.
    pub data: String,
    /// TTL in seconds.
    pub ttl: i64,
    /// MX/SRV priority (`null` for the types the engine manages).
    pub priority: Option<i64>,
    /// SRV port.
    pub port: Option<i64>,
    /// SRV weight.
    pub weight: Option<i64>,
    /// CAA flags.
    pub flags: Option<i64>,
    /// CAA tag.
    pub tag: Option<String>,
}

impl RecordFields {
    /// A record whose `data` describes it (A, AAAA, CNAME, TXT).
    pub fn simple(record_type: &str, name: &str, data: &str, ttl: i64) -> Self {
        RecordFields {
            record_type: record_type.to_owned(),
            name: name.to_owned(),
            data: data.to_owned(),
            ttl,
            priority: None,
            port: None,
            weight: None,
            flags: None,
            tag: None,
        }
    }
}

#[derive(Deserialize)]
struct RecordEnvelope {
    domain_record: DomainRecord,
}

#[derive(Deserialize)]
struct RecordList {
    #[serde(default)]
    domain_records: Vec<DomainRecord>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    total: Option<usize>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A DigitalOcean API client bound to one base URL and one token.
///
/// The HTTP client (and its TLS set-up, which reads the system's root
/// certificates) is built on the first request, so a run that manages no
/// DigitalOcean resource pays nothing for having a token configured.
#[derive(Clone)]
pub struct DoClient {
    http: Arc<OnceLock<Result<reqwest::Client, String>>>,
    base: Url,
    token: SecretString,
    retry: RetryPolicy,
}

impl fmt::Debug for DoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("retry", &self.retry)
            .finish()
    }
}

impl DoClient {
    /// A client for `api_url` (e.g. [`DEFAULT_API_URL`]) with the default retries.
    pub fn new(api_url: &str, token: SecretString) -> Result<Self, DoError> {
        Self::with_retry(api_url, token, RetryPolicy::default())
    }

    /// A client with an explicit retry policy.
    pub fn with_retry(
        api_url: &str,
        token: SecretString,
        retry: RetryPolicy,
    ) -> Result<Self, DoError> {
        let bad = |reason: &str| DoError::BadUrl {
            url: api_url.to_owned(),
            reason: reason.to_owned(),
        };
        if token.is_empty() {
            return Err(bad("the API token is empty"));
        }
        let mut base = Url::parse(api_url.trim()).map_err(|e| bad(&e.to_string()))?;
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
                    return Err(bad(
                        "plain http is only allowed for loopback test servers; the token would travel unencrypted",
                    ));
                }
            }
            _ => return Err(bad("must be an http(s) URL")),
        }
        if base.cannot_be_a_base() || base.query().is_some() || !base.username().is_empty() {
            return Err(bad(
                "must be a plain base URL such as https://api.digitalocean.com",
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(DoClient {
            http: Arc::new(OnceLock::new()),
            base,
            token,
            retry: RetryPolicy {
                attempts: retry.attempts.max(1),
                ..retry
            },
        })
    }

    fn http(&self, request: &str) -> Result<&reqwest::Client, DoError> {
        let timeout = self.retry.request_timeout;
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .user_agent(USER_AGENT)
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(timeout)
                    .connect_timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| format!("cannot build an HTTP client: {e}"))
            })
            .as_ref()
            .map_err(|message| DoError::Transport {
                request: request.to_owned(),
                message: message.clone(),
            })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `base` + percent-encoded path segments.
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends one request with retries; returns the status and body of a success.
    pub(super) async fn execute(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>), DoError> {
        let request_name = format!("{} {}", method.as_str(), url.path());
        let http = self.http(&request_name)?;
        let idempotent = method != Method::POST;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut authorization =
                HeaderValue::from_str(&format!("Bearer {}", self.token.expose())).map_err(
                    |_| DoError::BadUrl {
                        url: self.base.to_string(),
                        reason: "the API token contains characters not allowed in a header".into(),
                    },
                )?;
            authorization.set_sensitive(true);
            let mut request = http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, authorization);
            if let Some(body) = body {
                request = request.json(body);
            }
            let last = attempt >= self.retry.attempts;
            let wait = self
                .retry
                .backoff
                .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    // Connection failures never reached the API; timeouts may have.
                    let retryable = error.is_connect() || (idempotent && error.is_timeout());
                    if retryable && !last {
                        tracing::warn!(request = %request_name, attempt, "DigitalOcean API unreachable; retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(DoError::Transport {
                        request: request_name,
                        message: transport_message(&error),
                    });
                }
            };
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| DoError::Transport {
                    request: request_name.clone(),
                    message: transport_message(&e),
                })?
                .to_vec();
            if status.is_success() {
                return Ok((status, bytes));
            }
            let retryable =
                status == StatusCode::TOO_MANY_REQUESTS || (idempotent && status.is_server_error());
            if retryable && !last {
                tracing::warn!(request = %request_name, status = status.as_u16(), attempt, "DigitalOcean API busy; retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            let error: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(DoError::Api {
                request: request_name,
                status: status.as_u16(),
                id: error.id.unwrap_or_else(|| "error".to_owned()),
                message: error
                    .message
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned()),
            });
        }
    }

    /// [`Self::execute`], decoding the JSON answer.
    pub(super) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<T, DoError> {
        let request = format!("{} {}", method.as_str(), url.path());
        let (_, bytes) = self.execute(method, url, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| DoError::Decode {
            request,
            message: e.to_string(),
        })
    }

    /// Every record of `domain`, optionally only of `record_type` and named `fqdn`
    /// (fully qualified, as the API's `name` filter expects).
    pub async fn list_records(
        &self,
        domain: &str,
        record_type: Option<&str>,
        fqdn: Option<&str>,
    ) -> Result<Vec<DomainRecord>, DoError> {
        let mut records = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = self.url(&["v2", "domains", domain, "records"]);
            {
                let mut query = url.query_pairs_mut();
                if let Some(t) = record_type {
                    query.append_pair("type", t);
                }
                if let Some(name) = fqdn {
                    query.append_pair("name", name);
                }
                query
                    .append_pair("page", &page.to_string())
                    .append_pair("per_page", &PER_PAGE.to_string());
            }
            let list: RecordList = self.json(Method::GET, url, None).await?;
            let got = list.domain_records.len();
            records.extend(list.domain_records);
            let total = list.meta.and_then(|m| m.total);
            let done = got < PER_PAGE || total.is_some_and(|t| records.len() >= t);
            if done {
                return Ok(records);
            }
        }
        Ok(records)
    }

    /// One record, or `None` when it does not exist.
    pub async fn get_record(&self, domain: &str, id: u64) -> Result<Option<DomainRecord>, DoError> {
        let url = self.url(&["v2", "domains", domain, "records", &id.to_string()]);
        match self.json::<RecordEnvelope>(Method::GET, url, None).await {
            Ok(envelope) => Ok(Some(envelope.domain_record)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a record.
    pub async fn create_record(
        &self,
        domain: &str,
        fields: &RecordFields,
    ) -> Result<DomainRecord, DoError> {
        let url = self.url(&["v2", "domains", domain, "records"]);
        let body = to_value(fields);
        let envelope: RecordEnvelope = self.json(Method::POST, url, Some(&body)).await?;
        Ok(envelope.domain_record)
    }

    /// Changes a record's name, data and TTL (PATCH).
    pub async fn update_record(
        &self,
        domain: &str,
        id: u64,
        fields: &RecordFields,
    ) -> Result<DomainRecord, DoError> {
        let url = self.url(&["v2", "domains", domain, "records", &id.to_string()]);
        let body = to_value(fields);
        let envelope: RecordEnvelope = self.json(Method::PATCH, url, Some(&body)).await?;
        Ok(envelope.domain_record)
    }

    /// Deletes a record; `false` when it was already gone.
    pub async fn delete_record(&self, domain: &str, id: u64) -> Result<bool, DoError> {
        let url = self.url(&["v2", "domains", domain, "records", &id.to_string()]);
        match self.execute(Method::DELETE, url, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

pub(super) fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A transport error's causes, without the URL (which holds nothing secret, but
/// the request is named separately).
fn transport_message(error: &reqwest::Error) -> String {
    let mut message = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let token = || SecretString::new("t");
        assert!(DoClient::new(DEFAULT_API_URL, token()).is_ok());
        assert!(DoClient::new("http://127.0.0.1:8080", token()).is_ok());
        for (url, expected) in [
            ("http://api.example.com", "plain http"),
            ("ftp://x", "http(s)"),
            ("https://api.digitalocean.com/?a=b", "plain base URL"),
            ("not a url", "relative URL"),
        ] {
            let err = DoClient::new(url, token()).expect_err(url).to_string();
            assert!(err.contains(expected), "{url}: {err}");
        }
        let err = DoClient::new(DEFAULT_API_URL, SecretString::new(""))
            .expect_err("empty token")
            .to_string();
        assert!(err.contains("token is empty"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let client =
            DoClient::new(DEFAULT_API_URL, SecretString::new("dop_v1_canary")).expect("client");
        let text = format!("{client:?}");
        assert!(!text.contains("canary"), "{text}");
        assert!(text.contains("[secret]"), "{text}");
    }

    #[test]
    fn paths_are_encoded() {
        let client = DoClient::new("http://127.0.0.1:1/base", SecretString::new("t")).expect("ok");
        let url = client.url(&["v2", "domains", "example.com", "records"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/base/v2/domains/example.com/records"
        );
    }
}
