use serde_json::{Value, json};

use super::*;
use crate::ResourceId;
use crate::secret::SecretString;
use crate::state::crypto::KdfParams;
use crate::state::{Output, ResourceRecord};

const PASSPHRASE: &str = "a long enough state passphrase";

fn auth(passphrase: &str) -> Codec {
    Codec::authenticated(Arc::new(Authenticator::with_params(
        SecretString::new(passphrase),
        KdfParams::insecure_for_tests(),
    )))
}

/// A state with a record, an output and a serial worth forging.
fn sample(stack: &str) -> StackState {
    let mut s = StackState::new(stack);
    s.serial = 7;
    let id = ResourceId::kubernetes("v1", "Namespace", None, stack);
    s.resources.insert(
        id.clone(),
        ResourceRecord {
            id,
            depends_on: Vec::new(),
            desired_hash: "sha256:d".into(),
            live_hash: "sha256:l".into(),
            uid: Some("uid-1".into()),
            protect: false,
            imported: false,
        },
    );
    s.outputs
        .insert("dbNamespace".into(), Output::Plain(json!("default")));
    s
}

/// What a forger with write access to the store but without the passphrase
/// can do: edit the state, recompute the checksum, keep (or drop) the rest.
fn forge(doc: &[u8], edit: impl Fn(&mut Value)) -> Vec<u8> {
    let mut env: Value = serde_json::from_slice(doc).expect("json");
    edit(&mut env["state"]);
    let body = serde_json::to_vec_pretty(&env["state"]).expect("state");
    let auth: Option<AuthHeader> = env
        .get("authentication")
        .map(|a| serde_json::from_value(a.clone()).expect("header"));
    let format = env["format"].as_u64().expect("format") as u32;
    envelope(format, auth.as_ref(), &body).expect("envelope")
}

#[test]
fn plain_round_trip_is_format_2() {
    let s = sample("preview-pr-1");
    let bytes = encode(&s).expect("encode");
    let codec = Codec::plain();
    assert_eq!(
        codec
            .decode(&bytes, "preview-pr-1", Purpose::Read)
            .expect("decode"),
        s
    );
    let text = String::from_utf8(bytes).expect("utf8");
    assert!(
        text.starts_with("{\n  \"format\": 2,\n  \"sha256\": \""),
        "{text}"
    );
    assert!(!text.contains("authentication"), "{text}");
    let _: Value = serde_json::from_str(&text).expect("valid JSON");
}

#[test]
fn format_1_is_still_read_without_a_passphrase() {
    let s = StackState::new("preview-pr-1");
    let doc = json!({"format": 1, "state": s});
    let bytes = serde_json::to_vec_pretty(&doc).expect("json");
    assert_eq!(
        Codec::plain()
            .decode(&bytes, "preview-pr-1", Purpose::Write)
            .expect("decode"),
        s
    );
}

#[test]
fn tampering_is_detected_by_the_checksum() {
    let s = sample("preview-pr-1");
    let text = String::from_utf8(encode(&s).expect("encode")).expect("utf8");
    let decode = |t: &str| Codec::plain().decode(t.as_bytes(), "preview-pr-1", Purpose::Read);
    let tampered = text.replace("\"serial\": 7", "\"serial\": 8");
    assert_ne!(tampered, text);
    let err = decode(&tampered).expect_err("tampered");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    // Whitespace inside the state counts too: the checksum is over raw bytes.
    assert!(decode(&text.replace("\"serial\": 7", "\"serial\":7")).is_err());
    // Removing the checksum of a format 2 document is refused.
    let stripped: String = text
        .lines()
        .filter(|l| !l.contains("\"sha256\""))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        decode(&stripped)
            .expect_err("no checksum")
            .to_string()
            .contains("without")
    );
    // Another stack's document is refused.
    let err = Codec::plain()
        .decode(text.as_bytes(), "preview-pr-2", Purpose::Read)
        .expect_err("other stack");
    assert_eq!(
        err,
        DecodeError::Corrupt("it records stack \"preview-pr-1\"".into())
    );
}

#[test]
fn unknown_version_and_garbage_are_refused() {
    let err = Codec::plain()
        .decode(br#"{"format": 99, "state": {}}"#, "s", Purpose::Read)
        .expect_err("refused");
    assert!(err.to_string().contains("format 99"), "{err}");
    for bytes in [&b"\x00garbage"[..], b"", b"{\"format\": 2}"] {
        assert!(Codec::plain().decode(bytes, "s", Purpose::Read).is_err());
        assert!(auth(PASSPHRASE).decode(bytes, "s", Purpose::Read).is_err());
    }
}

#[test]
fn authenticated_round_trip_is_format_3_and_verifies_in_another_process() {
    let s = sample("preview-pr-1");
    let codec = auth(PASSPHRASE);
    let bytes = codec.encode(&s).expect("encode");
    let text = String::from_utf8(bytes.clone()).expect("utf8");
    assert!(
        text.starts_with("{\n  \"format\": 3,\n  \"sha256\": \""),
        "{text}"
    );
    assert!(
        text.contains("\"authentication\": {\"algorithm\":\"hmac-sha256\""),
        "{text}"
    );
    assert!(!text.contains(PASSPHRASE));
    assert_eq!(
        codec
            .decode(&bytes, "preview-pr-1", Purpose::Write)
            .expect("decode"),
        s
    );
    // A fresh process with the same passphrase derives the same key.
    assert_eq!(
        auth(PASSPHRASE)
            .decode(&bytes, "preview-pr-1", Purpose::Read)
            .expect("decode"),
        s
    );
    // Writing it again keeps the header (one key derivation per process).
    let again = String::from_utf8(codec.encode(&s).expect("encode")).expect("utf8");
    assert_eq!(again, text);
}

#[test]
fn forged_records_outputs_and_serials_are_refused_and_named_not_authentic() {
    let s = sample("preview-pr-1");
    let codec = auth(PASSPHRASE);
    let doc = codec.encode(&s).expect("encode");
    let forgeries: Vec<(&str, Vec<u8>)> = vec![
        (
            "a record pointing at a foreign object",
            forge(&doc, |st| {
                st["resources"][0]["id"]["name"] = json!("kube-system");
            }),
        ),
        (
            "a record's uid",
            forge(&doc, |st| st["resources"][0]["uid"] = json!("uid-2")),
        ),
        (
            "an output",
            forge(&doc, |st| {
                st["outputs"]["dbNamespace"]["value"] = json!("victim")
            }),
        ),
        ("the serial", forge(&doc, |st| st["serial"] = json!(8))),
    ];
    for (what, forged) in forgeries {
        let err = codec
            .decode(&forged, "preview-pr-1", Purpose::Read)
            .expect_err(what);
        assert_eq!(
            err,
            DecodeError::NotAuthentic(NotAuthentic::Mismatch),
            "{what}"
        );
        let shown = err
            .at("preview-pr-1", "file:///state/preview-pr-1.json")
            .to_string();
        assert!(
            shown.starts_with(
                "state of stack preview-pr-1 at file:///state/preview-pr-1.json is not authentic: its authentication tag does not verify"
            ),
            "{shown}"
        );
        assert!(shown.ends_with("; it was not modified"), "{shown}");
        // The way out is the program's to word (a Remedy): no flag here.
        assert!(!shown.contains("--"), "{shown}");
    }
    // Without an edit `forge` reproduces the document, which verifies: the
    // refusals above are the edits'.
    assert_eq!(
        codec.decode(&forge(&doc, |_| {}), "preview-pr-1", Purpose::Read),
        Ok(s.clone())
    );
    // A wrong passphrase, or the document moved to another stack: refused.
    assert_eq!(
        auth("another long passphrase").decode(&doc, "preview-pr-1", Purpose::Read),
        Err(DecodeError::NotAuthentic(NotAuthentic::Mismatch))
    );
    let moved = forge(&doc, |st| st["stack"] = json!("preview-pr-2"));
    assert_eq!(
        codec.decode(&moved, "preview-pr-2", Purpose::Read),
        Err(DecodeError::NotAuthentic(NotAuthentic::Mismatch))
    );
    // Dropping the header, or downgrading to format 2, does not help.
    let body = serde_json::to_vec_pretty(&s).expect("state");
    let stripped = envelope(AUTHENTICATED_FORMAT_VERSION, None, &body).expect("env");
    assert!(matches!(
        codec.decode(&stripped, "preview-pr-1", Purpose::Read),
        Err(DecodeError::Corrupt(m)) if m.contains("without its authentication header")
    ));
    let downgraded = envelope(2, None, &body).expect("env");
    assert_eq!(
        codec.decode(&downgraded, "preview-pr-1", Purpose::Read),
        Err(DecodeError::NotAuthentic(NotAuthentic::Unauthenticated {
            format: 2
        }))
    );
}

#[test]
fn unauthenticated_state_is_refused_with_a_passphrase_and_upgrades_when_trusted() {
    let s = sample("preview-pr-1");
    let v1 = serde_json::to_vec_pretty(&json!({"format": 1, "state": s})).expect("json");
    let v2 = encode(&s).expect("encode");
    for (format, doc) in [(1, &v1), (2, &v2)] {
        let err = auth(PASSPHRASE)
            .decode(doc, "preview-pr-1", Purpose::Read)
            .expect_err("unauthenticated");
        assert_eq!(
            err,
            DecodeError::NotAuthentic(NotAuthentic::Unauthenticated { format })
        );
        let shown = err.at("preview-pr-1", "here").to_string();
        assert!(
            shown.contains(&format!(
                "it is format {format} state, which carries no authentication tag"
            )),
            "{shown}"
        );
        assert!(
            shown.ends_with("does not know the passphrase); it was not modified"),
            "the way out is the program's to word: {shown}"
        );
        // The operator's explicit trust reads it, and what is written then is
        // authenticated: it verifies without any trust.
        let trusting = auth(PASSPHRASE).trusting_unauthenticated();
        let read = trusting
            .decode(doc, "preview-pr-1", Purpose::Write)
            .expect("trusted");
        assert_eq!(read, s);
        let upgraded = trusting.encode(&read).expect("encode");
        assert!(upgraded.starts_with(b"{\n  \"format\": 3"));
        assert_eq!(
            auth(PASSPHRASE)
                .decode(&upgraded, "preview-pr-1", Purpose::Read)
                .expect("authentic"),
            s
        );
    }
    // Trust does not skip the checksum.
    let damaged = String::from_utf8(v2)
        .expect("utf8")
        .replace("\"serial\": 7", "\"serial\": 9");
    assert!(matches!(
        auth(PASSPHRASE).trusting_unauthenticated().decode(
            damaged.as_bytes(),
            "preview-pr-1",
            Purpose::Read
        ),
        Err(DecodeError::Corrupt(_))
    ));
}

#[test]
fn without_a_passphrase_authenticated_state_is_read_but_never_overwritten() {
    let s = sample("preview-pr-1");
    let doc = auth(PASSPHRASE).encode(&s).expect("encode");
    let plain = Codec::plain();
    assert_eq!(
        plain
            .decode(&doc, "preview-pr-1", Purpose::Read)
            .expect("read"),
        s
    );
    let err = plain
        .decode(&doc, "preview-pr-1", Purpose::Write)
        .expect_err("write");
    assert_eq!(err, DecodeError::NeedsPassphrase);
    let shown = err.at("preview-pr-1", "here").to_string();
    assert_eq!(
        shown,
        "state passphrase: refusing to write the state of stack preview-pr-1 at here: it is authenticated (format 3) and no state passphrase is set (writing it without the passphrase would drop its authentication)"
    );
    // The checksum still protects against damage.
    let damaged = String::from_utf8(doc.clone())
        .expect("utf8")
        .replace("\"serial\": 7", "\"serial\": 9");
    assert!(
        plain
            .decode(damaged.as_bytes(), "preview-pr-1", Purpose::Read)
            .is_err()
    );
    // An explicit decision may replace it.
    assert!(
        plain
            .trusting_unauthenticated()
            .decode(&doc, "preview-pr-1", Purpose::Write)
            .is_ok()
    );
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
