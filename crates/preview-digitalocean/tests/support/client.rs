//! The DigitalOcean client of the engine tests: the fake's URL, a test token,
//! fast retries.

use std::time::Duration;

use digitalocean_fake::DigitalOceanFake;
use preview_core::secret::SecretString;
use preview_digitalocean::{DoClient, RetryPolicy};

/// A client of `fake` with `token`, retrying once at once.
pub fn test_client(fake: &DigitalOceanFake, token: &str) -> DoClient {
    DoClient::with_retry(
        &fake.base_url(),
        SecretString::new(token),
        RetryPolicy {
            attempts: 2,
            backoff: Duration::from_millis(1),
            request_timeout: Duration::from_secs(10),
        },
    )
    .expect("client")
}
