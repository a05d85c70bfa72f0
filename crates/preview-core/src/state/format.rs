//! The versioned serialisation of [`StackState`].
//!
//! Format 2 (written since the remote backends exist):
//!
//! ```text
//! {
//!   "format": 2,
//!   "sha256": "<hex SHA-256 of the exact bytes of the state value>",
//!   "state": {...}
//! }
//! ```
//!
//! The checksum covers the raw bytes of the `state` value as stored, so any
//! change to them (a flipped bit, a truncated upload, a hand edit) is detected
//! and the state is refused as corrupt instead of being misread. It detects
//! damage, not a deliberate forger with write access to the store (who could
//! recompute it); secret values have their own authenticated encryption
//! ([`super::crypto`]). Format 1 (`{"format": 1, "state": {...}}`, no checksum)
//! is still read. Reading an unknown format version is an error, never a silent
//! reinterpretation.
//!
//! [`gzip`] / [`gunzip_if_compressed`] compress stored documents where space is
//! scarce (the Kubernetes backend's Secrets).

use std::io::{Read, Write};

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::StackState;

/// Current format version.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest version still read.
pub const OLDEST_READABLE_VERSION: u32 = 1;

#[derive(Deserialize)]
struct Envelope<'a> {
    format: u32,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(borrow)]
    state: &'a RawValue,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serialises a state (pretty JSON, stable key order) in the current format.
pub fn encode(state: &StackState) -> Result<Vec<u8>, String> {
    let body = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(body.len() + 128);
    out.extend_from_slice(b"{\n  \"format\": ");
    out.extend_from_slice(FORMAT_VERSION.to_string().as_bytes());
    out.extend_from_slice(b",\n  \"sha256\": \"");
    out.extend_from_slice(sha256_hex(&body).as_bytes());
    out.extend_from_slice(b"\",\n  \"state\": ");
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\n}\n");
    Ok(out)
}

/// Parses a stored state, checking the format version and (format 2) the checksum.
pub fn decode(bytes: &[u8]) -> Result<StackState, String> {
    let env: Envelope<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a state document: {e}"))?;
    match env.format {
        1 => {}
        2 => {
            let Some(expected) = env.sha256.as_deref() else {
                return Err("format 2 state without its sha256 checksum".into());
            };
            let actual = sha256_hex(env.state.get().as_bytes());
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(format!(
                    "checksum mismatch (recorded sha256 {expected}, content has {actual}): the state was modified or damaged outside this tool"
                ));
            }
        }
        other => {
            return Err(format!(
                "state format {other} is not supported by this version (reads {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}); upgrade the tool"
            ));
        }
    }
    serde_json::from_str(env.state.get()).map_err(|e| format!("invalid state: {e}"))
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
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = StackState::new("preview-pr-1");
        let bytes = encode(&s).expect("encode");
        assert_eq!(decode(&bytes).expect("decode"), s);
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(
            text.starts_with("{\n  \"format\": 2,\n  \"sha256\": \""),
            "{text}"
        );
        let _: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    }

    #[test]
    fn format_1_is_still_read() {
        let s = StackState::new("preview-pr-1");
        let doc = serde_json::json!({"format": 1, "state": s});
        let bytes = serde_json::to_vec_pretty(&doc).expect("json");
        assert_eq!(decode(&bytes).expect("decode"), s);
    }

    #[test]
    fn tampering_is_detected() {
        let mut s = StackState::new("preview-pr-1");
        s.serial = 7;
        let bytes = encode(&s).expect("encode");
        let text = String::from_utf8(bytes).expect("utf8");
        let tampered = text.replace("\"serial\": 7", "\"serial\": 8");
        assert_ne!(tampered, text);
        let err = decode(tampered.as_bytes()).expect_err("tampered");
        assert!(err.contains("checksum mismatch"), "{err}");
        // Whitespace inside the state counts too: the checksum is over raw bytes.
        let reformatted = text.replace("\"serial\": 7", "\"serial\":7");
        assert!(decode(reformatted.as_bytes()).is_err());
        // Removing the checksum of a format 2 document is refused.
        let stripped: String = text
            .lines()
            .filter(|l| !l.contains("\"sha256\""))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            decode(stripped.as_bytes())
                .expect_err("no checksum")
                .contains("without")
        );
    }

    #[test]
    fn unknown_version_is_refused() {
        let err = decode(br#"{"format": 99, "state": {}}"#).expect_err("refused");
        assert!(err.contains("format 99"), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(decode(b"\x00garbage").is_err());
        assert!(decode(b"").is_err());
        assert!(decode(b"{\"format\": 2}").is_err());
    }

    #[test]
    fn gzip_round_trip_and_passthrough() {
        let data = b"hello hello hello hello".repeat(100);
        let z = gzip(&data).expect("gzip");
        assert!(z.len() < data.len());
        assert_eq!(gunzip_if_compressed(&z, 1 << 20).expect("gunzip"), data);
        assert_eq!(gunzip_if_compressed(b"{}", 10).expect("plain"), b"{}");
        assert!(gunzip_if_compressed(&z, 10).is_err(), "limit");
        assert!(gunzip_if_compressed(&[0x1f, 0x8b, 0, 1], 100).is_err());
    }
}
