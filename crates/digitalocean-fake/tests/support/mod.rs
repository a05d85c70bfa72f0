//! What the fake's own tests share: a started fake that knows [`TOKEN`], and a
//! request to it with that token.

use digitalocean_fake::DigitalOceanFake;
use serde_json::Value;

/// The API token the fake accepts.
pub const TOKEN: &str = "dop_v1_fake_token";

/// A started fake that accepts [`TOKEN`].
pub async fn started() -> DigitalOceanFake {
    let fake = DigitalOceanFake::start().await.expect("fake starts");
    fake.add_token(TOKEN);
    fake
}

/// `method path` with `body` as JSON and [`TOKEN`]: the status and the body text.
pub async fn send_text(
    fake: &DigitalOceanFake,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", fake.base_url()))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}
