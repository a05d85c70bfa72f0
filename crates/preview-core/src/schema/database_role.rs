//! The per-PR login role: how its password is made, how it reaches the server
//! (a SCRAM-SHA-256 verifier, never the password), and the `role` section of a
//! `Database` body. Pure: no IO.
//!
//! A `Database` whose body has a `role` section is owned by a login role of the
//! **same name** as the database (`aphiria_pr_123`, checked like it with
//! `preview_postgres::sql::check_identifier`), created and dropped with it by both
//! executors:
//!
//! ```yaml
//! role:
//!   connectionLimit: 10
//!   passwordVerifier: SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>
//! ```
//!
//! - attributes [`ATTRIBUTES`]: it can log in, and nothing else (no superuser,
//!   no CREATEDB, no CREATEROLE, no replication, no BYPASSRLS; it is a member of
//!   no role — it keeps INHERIT so that, as `pg_database_owner`, it owns the
//!   schema `public` of its database on PostgreSQL ≥ 15);
//! - it carries the ownership marker as `COMMENT ON ROLE` (the database's
//!   marker text, `preview_postgres::sql::marker_comment`); a role of that name without
//!   the marker of the same stack is never altered, taken over or dropped;
//! - its password is random ([`generate_password`]), made by the engine's
//!   caller and kept by it (the `stacks` binary seals it in the stack's state
//!   and puts it into the preview's Secret). The executors only ever see its
//!   SCRAM verifier ([`scram_verifier`], the form PostgreSQL stores in
//!   `pg_authid.rolpassword`): the in-cluster Jobs carry the verifier, not the
//!   password. The verifier's salt is derived from the password, so the same
//!   password gives the same verifier on every run (a no-op `up` stays a
//!   no-op), and a different password a different one.
//!
//! The verifier is a secret path of the resource ([`VERIFIER_POINTER`]): plans
//! show it as `[secret]` and its record's hash is keyed per stack.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::SecretString;
use crate::state::auth::hmac_sha256;

/// Role attributes every per-PR role gets (`CREATE ROLE … WITH` / `ALTER ROLE … WITH`).
pub const ATTRIBUTES: &str = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
/// JSON pointer of the verifier in a `Database` body (a secret path).
pub const VERIFIER_POINTER: &str = "/role/passwordVerifier";
/// Default `CONNECTION LIMIT` of a per-PR role.
pub const DEFAULT_CONNECTION_LIMIT: u32 = 20;
/// Largest connection limit accepted (a sanity bound, far below `max_connections` defaults × 10).
pub const MAX_CONNECTION_LIMIT: u32 = 1000;
/// Length of a generated password (alphanumeric: ≈ 238 bits).
pub const PASSWORD_CHARS: usize = 40;
/// PBKDF2 iterations of the verifier (PostgreSQL's default `scram_iterations`).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// The `role` section of a `Database` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// `CONNECTION LIMIT` (1..=[`MAX_CONNECTION_LIMIT`]).
    pub connection_limit: u32,
    /// The password's SCRAM-SHA-256 verifier ([`scram_verifier`]).
    pub password_verifier: String,
}

impl RoleSpec {
    /// The role for `password` (its verifier is computed here).
    pub fn new(role: &str, password: &SecretString, connection_limit: u32) -> RoleSpec {
        RoleSpec {
            connection_limit,
            password_verifier: scram_verifier(role, password),
        }
    }

    /// Checks the limit and the verifier's shape; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_CONNECTION_LIMIT).contains(&self.connection_limit) {
            return Err(format!(
                "field role.connectionLimit is {}; use 1 to {MAX_CONNECTION_LIMIT}",
                self.connection_limit
            ));
        }
        if !is_scram_verifier(&self.password_verifier) {
            return Err(
                "field role.passwordVerifier is not a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)".into(),
            );
        }
        Ok(())
    }
}

/// A fresh random password: [`PASSWORD_CHARS`] characters from `[A-Za-z0-9]`
/// (safe in URLs, connection strings and shell variables without quoting).
pub fn generate_password() -> SecretString {
    let text: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(PASSWORD_CHARS)
        .map(char::from)
        .collect();
    SecretString::new(text)
}

/// The SCRAM-SHA-256 verifier of `password` for `role` (RFC 5802 / 7677, as
/// PostgreSQL stores it): `SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`.
/// The 16-byte salt is `HMAC-SHA256(password, label ‖ role)`: deterministic,
/// different per role, and as unguessable as the password.
pub fn scram_verifier(role: &str, password: &SecretString) -> String {
    let password = password.expose().as_bytes();
    let salt_full = hmac_sha256(
        password,
        &[b"preview-envs/scram-salt/v1\0", role.as_bytes()],
    );
    let salt = &salt_full[..16];
    let salted = pbkdf2_sha256_block(password, salt, SCRAM_ITERATIONS);
    let client_key = hmac_sha256(&salted, &[b"Client Key"]);
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, &[b"Server Key"]);
    format!(
        "SCRAM-SHA-256${SCRAM_ITERATIONS}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

/// True when `text` has the shape of a SCRAM-SHA-256 verifier. Its characters
/// (base64, `$`, `:`, digits, letters, `-`) need no quoting in SQL literals.
pub fn is_scram_verifier(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((iterations, rest)) = rest.split_once(':') else {
        return false;
    };
    let Some((salt, keys)) = rest.split_once('$') else {
        return false;
    };
    let Some((stored, server)) = keys.split_once(':') else {
        return false;
    };
    let decodes = |s: &str, len: Option<usize>| {
        B64.decode(s)
            .is_ok_and(|b| !b.is_empty() && len.is_none_or(|l| b.len() == l))
    };
    iterations.parse::<u32>().is_ok_and(|n| n > 0)
        && decodes(salt, None)
        && decodes(stored, Some(32))
        && decodes(server, Some(32))
}

/// PBKDF2-HMAC-SHA256 (RFC 8018), first (and only needed) 32-byte block.
fn pbkdf2_sha256_block(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac_sha256(password, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac_sha256(password, &[&u]);
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc_7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1, dkLen=64), first 32 bytes.
        assert_eq!(
            hex::encode(pbkdf2_sha256_block(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn scram_matches_rfc_7677_keys() {
        // RFC 7677 §3: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096:
        // the client proof/server signature there follow from these keys.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted = pbkdf2_sha256_block(b"pencil", &salt, 4096);
        let server_key = hmac_sha256(&salted, &[b"Server Key"]);
        let client_key = hmac_sha256(&salted, &[b"Client Key"]);
        let stored_key = Sha256::digest(client_key);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let server_signature = hmac_sha256(&server_key, &[auth_message.as_bytes()]);
        assert_eq!(
            B64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let client_signature = hmac_sha256(&stored_key, &[auth_message.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
    }

    #[test]
    fn verifiers_are_stable_per_password_and_role() {
        let p = SecretString::new("pw-canary-0123456789");
        let a = scram_verifier("aphiria_pr_1", &p);
        assert_eq!(a, scram_verifier("aphiria_pr_1", &p));
        assert_ne!(a, scram_verifier("aphiria_pr_2", &p));
        assert_ne!(
            a,
            scram_verifier("aphiria_pr_1", &SecretString::new("other"))
        );
        assert!(is_scram_verifier(&a), "{a}");
        assert!(!a.contains("pw-canary"));
        assert!(!is_scram_verifier("md5abc"));
        assert!(!is_scram_verifier("SCRAM-SHA-256$4096:c2FsdA==$x:y"));
    }

    #[test]
    fn passwords_are_random_and_alphanumeric() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), PASSWORD_CHARS);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn checks_name_the_field() {
        let mut spec = RoleSpec::new("r", &SecretString::new("p"), 10);
        assert!(spec.check().is_ok());
        spec.connection_limit = 0;
        assert!(
            spec.check()
                .expect_err("0")
                .contains("role.connectionLimit")
        );
        spec.connection_limit = 10;
        spec.password_verifier = "plain-password".into();
        assert!(
            spec.check()
                .expect_err("verifier")
                .contains("role.passwordVerifier")
        );
    }
}
