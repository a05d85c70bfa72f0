//! The versioned serialisation of [`StackState`], and the [`Codec`] every
//! backend reads and writes it with.
//!
//! Format 2 (written without a state passphrase):
//!
//! ```text
//! {
//!   "format": 2,
//!   "sha256": "<hex SHA-256 of the exact bytes of the state value>",
//!   "state": {...}
//! }
//! ```
//!
//! Format 3 (written when a state passphrase is set, [`super::auth`]):
//!
//! ```text
//! {
//!   "format": 3,
//!   "sha256": "<hex SHA-256 of the exact bytes of the state value>",
//!   "authentication": {"algorithm": "hmac-sha256",
//!                      "kdf": {"algorithm": "argon2id", "version": 19, "memoryKib": 19456,
//!                              "iterations": 2, "parallelism": 1, "salt": "<base64>"},
//!                      "tag": "<hex HMAC-SHA256>"},
//!   "state": {...}
//! }
//! ```
//!
//! The checksum covers the raw bytes of the `state` value as stored, so any
//! change to them (a flipped bit, a truncated upload, a hand edit) is detected
//! and the state is refused as corrupt instead of being misread. It detects
//! damage, not a forger with write access to the store (who can recompute it):
//! that takes the passphrase. With one, the [`Codec`]
//!
//! - writes format 3, whose tag only someone knowing the passphrase can make;
//! - refuses, as [`StateError::NotAuthentic`], a format-3 document whose tag
//!   does not verify and any unauthenticated (format 1 or 2) document, unless
//!   the operator explicitly trusts it ([`Codec::trusting_unauthenticated`]),
//!   which is how older state is upgraded once.
//!
//! Without a passphrase, documents are written in format 2 as before; a format-3
//! document is then read with its checksum only (it cannot be verified), and is
//! never overwritten ([`Purpose::Write`]): that would silently drop its
//! authentication. Format 1 (`{"format": 1, "state": {...}}`, no checksum) is
//! still read. Reading an unknown format version is an error, never a silent
//! reinterpretation.
//!
//! [`gzip`] / [`gunzip_if_compressed`] compress stored documents where space is
//! scarce (the Kubernetes backend's Secrets).

use std::io::{Read, Write};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::auth::{AuthHeader, Authenticator, RecordHasher, Verdict, record_hasher};
use super::{StackState, StateError};
use crate::remedy::{Remedy, suffix};

/// Format written without a state passphrase (checksummed).
pub const FORMAT_VERSION: u32 = 2;

/// Format written with a state passphrase (checksummed and authenticated).
pub const AUTHENTICATED_FORMAT_VERSION: u32 = 3;

/// The oldest version still read.
pub const OLDEST_READABLE_VERSION: u32 = 1;

#[derive(Deserialize)]
struct Envelope<'a> {
    format: u32,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    authentication: Option<AuthHeader>,
    #[serde(borrow)]
    state: &'a RawValue,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serialises a state in format 2 (pretty JSON, stable key order), without
/// authentication: what [`Codec::plain`] writes.
pub fn encode(state: &StackState) -> Result<Vec<u8>, String> {
    Codec::plain().encode(state)
}

fn envelope(format: u32, auth: Option<&AuthHeader>, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(body.len() + 512);
    out.extend_from_slice(b"{\n  \"format\": ");
    out.extend_from_slice(format.to_string().as_bytes());
    out.extend_from_slice(b",\n  \"sha256\": \"");
    out.extend_from_slice(sha256_hex(body).as_bytes());
    out.extend_from_slice(b"\",\n");
    if let Some(auth) = auth {
        out.extend_from_slice(b"  \"authentication\": ");
        out.extend_from_slice(&serde_json::to_vec(auth).map_err(|e| e.to_string())?);
        out.extend_from_slice(b",\n");
    }
    out.extend_from_slice(b"  \"state\": ");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\n}\n");
    Ok(out)
}

/// What a decoded document is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Reading the state.
    Read,
    /// Checking a write against the stored state (inside the backend's atomic
    /// write): the stored document is about to be replaced.
    Write,
}

/// Why a document is not authentic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotAuthentic {
    /// A format without an authentication tag, while a passphrase is set.
    Unauthenticated {
        /// Its format version (1 or 2).
        format: u32,
    },
    /// The tag does not verify with the passphrase.
    Mismatch,
    /// The authentication header is unusable.
    BadHeader(String),
}

impl std::fmt::Display for NotAuthentic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAuthentic::Unauthenticated { format } => write!(
                f,
                "it is format {format} state, which carries no authentication tag, and a state passphrase is set (it was written without the passphrase or by an older version, or replaced by someone who does not know the passphrase)"
            ),
            NotAuthentic::Mismatch => f.write_str(
                "its authentication tag does not verify with the state passphrase (a wrong passphrase, or the state was modified outside this tool or copied from another stack)",
            ),
            NotAuthentic::BadHeader(m) => write!(f, "its authentication header is unusable: {m}"),
        }
    }
}

impl NotAuthentic {
    /// The way out for a stored state of `stack`, as the program words it
    /// ([`Remedy::Reauthenticate`]), after `prefix`; empty without one.
    pub fn hint(&self, prefix: &str, stack: &str) -> String {
        suffix(prefix, &Remedy::Reauthenticate { stack })
    }
}

/// Why a document could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a state document, an unknown format, a checksum mismatch, or a state
    /// of another stack.
    Corrupt(String),
    /// The document is not authentic ([`NotAuthentic`]).
    NotAuthentic(NotAuthentic),
    /// An authenticated document cannot be replaced without the passphrase.
    NeedsPassphrase,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Corrupt(m) => f.write_str(m),
            DecodeError::NotAuthentic(why) => write!(f, "not authentic: {why}"),
            DecodeError::NeedsPassphrase => f.write_str(&needs_passphrase()),
        }
    }
}

/// Why an authenticated state is not written without the passphrase.
fn needs_passphrase() -> String {
    format!(
        "it is authenticated (format 3) and no state passphrase is set{} (writing it without the passphrase would drop its authentication)",
        suffix("; ", &Remedy::SetStatePassphrase)
    )
}

impl DecodeError {
    /// The error for the stored state of `stack` at `location` (never modified).
    pub fn at(self, stack: &str, location: impl Into<String>) -> StateError {
        let location = location.into();
        match self {
            DecodeError::Corrupt(message) => StateError::Corrupt {
                stack: stack.to_owned(),
                location,
                message,
            },
            DecodeError::NotAuthentic(why) => StateError::NotAuthentic {
                stack: stack.to_owned(),
                location,
                message: format!("{why}{}", why.hint("; ", stack)),
            },
            DecodeError::NeedsPassphrase => StateError::Passphrase(format!(
                "refusing to write the state of stack {stack} at {location}: {}",
                needs_passphrase()
            )),
        }
    }
}

/// Encodes and decodes state documents for a backend: plain (format 2) without
/// a passphrase, authenticated (format 3) with one. Cloning shares the
/// derived keys.
#[derive(Clone, Default)]
pub struct Codec {
    auth: Option<Arc<Authenticator>>,
    trust_unauthenticated: bool,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("authenticated", &self.auth.is_some())
            .field("trust_unauthenticated", &self.trust_unauthenticated)
            .finish()
    }
}

impl Codec {
    /// No passphrase: format 2, checksummed only.
    pub fn plain() -> Self {
        Codec::default()
    }

    /// With a passphrase: format 3, every document authenticated.
    pub fn authenticated(auth: Arc<Authenticator>) -> Self {
        Codec {
            auth: Some(auth),
            trust_unauthenticated: false,
        }
    }

    /// Accepts documents whose authenticity cannot be established
    /// (unauthenticated formats, a tag that does not verify, or — without a
    /// passphrase — overwriting an authenticated one). Only for an operator's
    /// explicit, one-time decision (`--trust-unauthenticated`): what is written
    /// afterwards is authenticated again when a passphrase is set.
    pub fn trusting_unauthenticated(mut self) -> Self {
        self.trust_unauthenticated = true;
        self
    }

    /// True when a passphrase is set (documents are authenticated).
    pub fn is_authenticated(&self) -> bool {
        self.auth.is_some()
    }

    /// True for [`Codec::trusting_unauthenticated`].
    pub fn trusts_unauthenticated(&self) -> bool {
        self.trust_unauthenticated
    }

    /// Serialises `state`: format 3 with a passphrase, else format 2.
    pub fn encode(&self, state: &StackState) -> Result<Vec<u8>, String> {
        let body = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
        match &self.auth {
            Some(auth) => {
                let header = auth.sign(&state.stack, &body)?;
                envelope(AUTHENTICATED_FORMAT_VERSION, Some(&header), &body)
            }
            None => envelope(FORMAT_VERSION, None, &body),
        }
    }

    /// Parses a stored document of `stack`: format version, checksum,
    /// authentication (see the module documentation), then the state, which
    /// must be `stack`'s.
    pub fn decode(
        &self,
        bytes: &[u8],
        stack: &str,
        purpose: Purpose,
    ) -> Result<StackState, DecodeError> {
        let corrupt = |m: String| Err(DecodeError::Corrupt(m));
        let env: Envelope<'_> = match serde_json::from_slice(bytes) {
            Ok(env) => env,
            Err(e) => return corrupt(format!("not a state document: {e}")),
        };
        let raw = env.state.get().as_bytes();
        if env.format >= 2 && env.format <= AUTHENTICATED_FORMAT_VERSION {
            let Some(expected) = env.sha256.as_deref() else {
                return corrupt(format!(
                    "format {} state without its sha256 checksum",
                    env.format
                ));
            };
            let actual = sha256_hex(raw);
            if !actual.eq_ignore_ascii_case(expected) {
                return corrupt(format!(
                    "checksum mismatch (recorded sha256 {expected}, content has {actual}): the state was modified or damaged outside this tool"
                ));
            }
        }
        let not_authentic = match (env.format, &env.authentication) {
            (1 | 2, _) => self
                .auth
                .is_some()
                .then_some(NotAuthentic::Unauthenticated { format: env.format }),
            (AUTHENTICATED_FORMAT_VERSION, None) => {
                return corrupt("format 3 state without its authentication header".to_owned());
            }
            (AUTHENTICATED_FORMAT_VERSION, Some(header)) => match &self.auth {
                Some(auth) => match auth.verify(stack, header, raw) {
                    Verdict::Authentic => None,
                    Verdict::Mismatch => Some(NotAuthentic::Mismatch),
                    Verdict::BadHeader(m) => Some(NotAuthentic::BadHeader(m)),
                },
                // Checksum only: it cannot be verified here, and is never replaced.
                None if purpose == Purpose::Write && !self.trust_unauthenticated => {
                    return Err(DecodeError::NeedsPassphrase);
                }
                None => None,
            },
            (other, _) => {
                return corrupt(format!(
                    "state format {other} is not supported by this version (reads {OLDEST_READABLE_VERSION} to {AUTHENTICATED_FORMAT_VERSION}); upgrade the tool"
                ));
            }
        };
        if let Some(why) = not_authentic {
            if !self.trust_unauthenticated {
                return Err(DecodeError::NotAuthentic(why));
            }
            tracing::warn!(stack, reason = %why, "accepting state that is not authentic (trusted explicitly)");
        }
        let state: StackState = match serde_json::from_str(env.state.get()) {
            Ok(state) => state,
            Err(e) => return corrupt(format!("invalid state: {e}")),
        };
        if state.stack != stack {
            return corrupt(format!("it records stack {:?}", state.stack));
        }
        Ok(state)
    }

    /// The hasher of `state`'s recorded hashes: keyed by the passphrase when one
    /// is set, else by the state's lineage ([`super::auth`]).
    pub fn record_hasher(&self, state: &StackState) -> Result<RecordHasher, StateError> {
        record_hasher(self.auth.as_deref(), state)
    }
}

/// Gzip-compresses `bytes`.
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).map_err(|e| e.to_string())?;
    enc.finish().map_err(|e| e.to_string())
}

/// Decompresses gzip data; returns other data unchanged. At most `limit`
/// decompressed bytes are accepted (a guard against decompression bombs).
pub fn gunzip_if_compressed(bytes: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
