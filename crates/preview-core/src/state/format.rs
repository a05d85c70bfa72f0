//! The versioned serialisation of [`StackState`].
//!
//! Stored documents look like `{"format": 1, "state": {...}}`. Reading an
//! unknown format version is an error, never a silent reinterpretation.

use serde::{Deserialize, Serialize};

use super::StackState;

/// Current format version.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Envelope<'a> {
    format: u32,
    state: &'a StackState,
}

#[derive(Deserialize)]
struct EnvelopeOwned {
    format: u32,
    state: serde_json::Value,
}

/// Serialises a state (pretty JSON, stable key order).
pub fn encode(state: &StackState) -> Result<Vec<u8>, String> {
    let mut out = serde_json::to_vec_pretty(&Envelope {
        format: FORMAT_VERSION,
        state,
    })
    .map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// Parses a stored state, checking the format version.
pub fn decode(bytes: &[u8]) -> Result<StackState, String> {
    let env: EnvelopeOwned =
        serde_json::from_slice(bytes).map_err(|e| format!("not a state document: {e}"))?;
    if env.format != FORMAT_VERSION {
        return Err(format!(
            "state format {} is not supported by this version (expects {FORMAT_VERSION})",
            env.format
        ));
    }
    serde_json::from_value(env.state).map_err(|e| format!("invalid state: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = StackState::new("preview-pr-1");
        let bytes = encode(&s).expect("encode");
        assert_eq!(decode(&bytes).expect("decode"), s);
    }

    #[test]
    fn unknown_version_is_refused() {
        let err = decode(br#"{"format": 99, "state": {}}"#).expect_err("refused");
        assert!(err.contains("format 99"), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(decode(b"\x00garbage").is_err());
    }
}
