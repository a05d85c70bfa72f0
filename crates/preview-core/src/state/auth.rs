//! State that cannot be forged: whole documents authenticated with a key
//! derived from the state passphrase, and per-stack keys for the hashes of
//! secret bodies.
//!
//! **Documents.** With a passphrase, every state document is written in format 3
//! ([`super::format`]) with an HMAC-SHA256 tag over the exact bytes of the state
//! value. The key is derived in two steps:
//!
//! 1. a **root key**: Argon2id of the passphrase under the parameters and random
//!    salt recorded in the document's `authentication` header (derived once per
//!    process and header, then cached);
//! 2. the stack's **document key**: `HMAC(root, "preview-envs/state-authentication/v1" ‖ stack)`.
//!
//! The tag covers a label with the format version, the stack name, the recorded
//! key-derivation parameters and the state bytes, so a document moved to
//! another stack, a changed cost parameter or any edit of a record, an output or
//! the serial fails verification. These keys are separate from the data key
//! that seals secret outputs ([`super::crypto`]), which is random and only
//! wrapped by the passphrase.
//!
//! What this does not stop: replacing the current document by an *older
//! authentic* document of the same stack (a rollback). Writers still refuse to
//! go back in serial ([`super::check_write`]), and deletes check the live
//! object's ownership label and uid (the planner), so an old document cannot
//! make the engine delete what the stack does not own.
//!
//! **Secret hashes.** A recorded hash of a body that holds secret values
//! ([`Resource::is_secret_path`]: a Secret's `data`/`stringData`, or declared
//! secret paths) is `hmac-sha256:<hex>` under a per-stack key
//! ([`RecordHasher`]), so a reader of the state cannot test guesses of a secret
//! against it. With a passphrase the key is derived from the root key (a state
//! reader without the passphrase cannot compute it); without one it is derived
//! from the state's random lineage, which only stops precomputed and cross-stack
//! comparisons. Either way it is stable across runs of a stack, so a no-op `up`
//! still proves "nothing changed" without a dry-run. Other bodies keep the plain
//! `sha256:` hashes of [`crate::diff`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::crypto::{Kdf, KdfParams, derive_key, kdf_binding, new_kdf};
use super::{StackState, StateError};
use crate::diff::{canonical_json, project, strip_server_fields};
use crate::resource::Resource;
use crate::secret::SecretString;

/// The MAC recorded in [`AuthHeader::algorithm`].
pub const AUTH_ALGORITHM: &str = "hmac-sha256";
/// Prefix of a keyed record hash.
pub const KEYED_HASH_PREFIX: &str = "hmac-sha256:";

const KEY_LEN: usize = 32;
const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = Zeroizing::new([0u8; BLOCK]);
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// Equality of two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `len(s) ‖ s`, so that concatenated fields stay unambiguous.
fn framed(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 8);
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s);
    out
}

/// The `authentication` header of a format-3 document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthHeader {
    /// [`AUTH_ALGORITHM`].
    pub algorithm: String,
    /// How the root key is derived from the passphrase.
    pub kdf: Kdf,
    /// Hex HMAC-SHA256 tag.
    pub tag: String,
}

/// A root key derived from the passphrase under one header.
struct Root(Zeroizing<[u8; KEY_LEN]>);

impl Root {
    fn subkey(&self, label: &str, stack: &str) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(hmac_sha256(
            self.0.as_ref(),
            &[label.as_bytes(), &[0], &framed(stack.as_bytes())],
        ))
    }
}

/// One passphrase and the root keys derived from it, by header.
struct Keyring {
    passphrase: SecretString,
    roots: Mutex<HashMap<String, Arc<Root>>>,
}

impl Keyring {
    fn new(passphrase: SecretString) -> Self {
        Keyring {
            passphrase,
            roots: Mutex::new(HashMap::new()),
        }
    }

    /// The root key for `kdf` (Argon2id once per process and header). The lock
    /// is held while deriving, so concurrent readers derive once.
    fn root(&self, kdf: &Kdf) -> Result<Arc<Root>, String> {
        let binding = kdf_binding(kdf);
        let mut roots = self.roots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(root) = roots.get(&binding) {
            return Ok(root.clone());
        }
        let root = Arc::new(Root(derive_key(kdf, &self.passphrase)?));
        roots.insert(binding, root.clone());
        Ok(root)
    }
}

/// The tag of a document: HMAC under the stack's document key of the format
/// label, the stack, the header's parameters and the exact state bytes.
fn document_tag(root: &Root, stack: &str, kdf: &Kdf, state_bytes: &[u8]) -> [u8; 32] {
    let key = root.subkey("preview-envs/state-authentication/v1", stack);
    hmac_sha256(
        key.as_ref(),
        &[
            b"preview-envs/state-document/v3\0",
            &framed(stack.as_bytes()),
            &framed(kdf_binding(kdf).as_bytes()),
            state_bytes,
        ],
    )
}

/// Why a document failed authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The tag verifies with the current passphrase (or, while rotating, the
    /// previous one).
    Authentic,
    /// The header is unusable (unknown algorithm, parameters out of range).
    BadHeader(String),
    /// The tag does not match: edited, moved from another stack, or written
    /// with another passphrase.
    Mismatch,
}

/// Authenticates state documents with keys derived from the state passphrase.
/// Cheap to share ([`Arc`]); caches derived keys.
pub struct Authenticator {
    current: Keyring,
    /// While rotating the passphrase: documents written under the old one
    /// still verify (writes always use the current one).
    previous: Option<Keyring>,
    params: KdfParams,
    /// The header each stack was last verified or written with: its next
    /// document reuses it (one Argon2id per process, stable secret-hash keys).
    pinned: Mutex<HashMap<String, Kdf>>,
    /// The header of the last document verified or written, reused for new
    /// stacks (so a run deriving the base stack's key derives no second one).
    last: Mutex<Option<Kdf>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("passphrase", &"[secret]")
            .field("rotating", &self.previous.is_some())
            .field("params", &self.params)
            .finish()
    }
}

impl Authenticator {
    /// Authenticates with `passphrase`; new headers use the default Argon2id cost.
    pub fn new(passphrase: SecretString) -> Self {
        Self::with_params(passphrase, KdfParams::default())
    }

    /// [`Authenticator::new`] with explicit cost parameters for new headers
    /// ([`KdfParams::insecure_for_tests`] in tests only).
    pub fn with_params(passphrase: SecretString, params: KdfParams) -> Self {
        Authenticator {
            current: Keyring::new(passphrase),
            previous: None,
            params,
            pinned: Mutex::new(HashMap::new()),
            last: Mutex::new(None),
        }
    }

    /// For a passphrase rotation: documents authenticated with `old` are
    /// accepted too; everything written is authenticated with the current one.
    pub fn rotating_from(mut self, old: SecretString) -> Self {
        self.previous = Some(Keyring::new(old));
        self
    }

    fn pin(&self, stack: &str, kdf: &Kdf) {
        self.pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stack.to_owned(), kdf.clone());
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(kdf.clone());
    }

    /// The header `stack`'s next document uses: the one it was last read or
    /// written with, else the last one used, else a fresh one (random salt).
    fn header_for(&self, stack: &str) -> Kdf {
        if let Some(kdf) = self
            .pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stack)
        {
            return kdf.clone();
        }
        let kdf = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| new_kdf(self.params));
        self.pin(stack, &kdf);
        kdf
    }

    /// The header of a new document of `stack` over `state_bytes`.
    pub(crate) fn sign(&self, stack: &str, state_bytes: &[u8]) -> Result<AuthHeader, String> {
        let kdf = self.header_for(stack);
        let root = self.current.root(&kdf)?;
        let tag = document_tag(&root, stack, &kdf, state_bytes);
        Ok(AuthHeader {
            algorithm: AUTH_ALGORITHM.to_owned(),
            kdf,
            tag: hex::encode(tag),
        })
    }

    /// Checks the tag of a document of `stack`.
    pub(crate) fn verify(&self, stack: &str, header: &AuthHeader, state_bytes: &[u8]) -> Verdict {
        if header.algorithm != AUTH_ALGORITHM {
            return Verdict::BadHeader(format!(
                "unsupported authentication algorithm {:?} (expected {AUTH_ALGORITHM})",
                header.algorithm
            ));
        }
        let Ok(recorded) = hex::decode(&header.tag) else {
            return Verdict::Mismatch;
        };
        for ring in std::iter::once(&self.current).chain(self.previous.as_ref()) {
            let root = match ring.root(&header.kdf) {
                Ok(root) => root,
                Err(message) => return Verdict::BadHeader(message),
            };
            let tag = document_tag(&root, stack, &header.kdf, state_bytes);
            if constant_time_eq(&tag, &recorded) {
                self.pin(stack, &header.kdf);
                return Verdict::Authentic;
            }
        }
        Verdict::Mismatch
    }

    /// The secret-hash key of `state`'s stack, from the root key of its header.
    fn record_hasher(&self, state: &StackState) -> Result<RecordHasher, String> {
        let kdf = self.header_for(&state.stack);
        let root = self.current.root(&kdf)?;
        let key = root.subkey("preview-envs/secret-body-hash/v1", &state.stack);
        Ok(RecordHasher {
            key: Zeroizing::new(hmac_sha256(
                key.as_ref(),
                &[&framed(state.lineage.as_bytes())],
            )),
        })
    }
}

/// Computes the hashes recorded for a resource ([`super::ResourceRecord`]'s
/// `desired_hash` and `live_hash`): bodies holding secret values get a keyed
/// hash under the stack's key, others the plain `sha256:` hash. Obtain it with
/// [`super::format::Codec::record_hasher`] (which knows whether a passphrase
/// is set); one per stack and run.
#[derive(Clone)]
pub struct RecordHasher {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for RecordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordHasher([secret])")
    }
}

impl RecordHasher {
    /// The key of a stack without a passphrase: derived from the state's
    /// random lineage (and stack name). A reader of the state can compute it.
    pub fn without_passphrase(state: &StackState) -> Self {
        RecordHasher {
            key: Zeroizing::new(hmac_sha256(
                b"preview-envs/secret-body-hash/no-passphrase/v1",
                &[
                    &framed(state.stack.as_bytes()),
                    &framed(state.lineage.as_bytes()),
                ],
            )),
        }
    }

    /// A fixed key, for unit tests of code that takes a hasher (also the
    /// provider crates' tests). Never for real state: anyone can compute it.
    #[doc(hidden)]
    pub fn fixed_for_tests() -> Self {
        RecordHasher {
            key: Zeroizing::new([7; KEY_LEN]),
        }
    }

    /// True when `res`'s recorded hashes are keyed: its body holds secret values.
    pub fn is_keyed(res: &Resource) -> bool {
        res.id.is("", "Secret") || !res.options.secret_paths.is_empty()
    }

    fn hash(&self, res: &Resource, value: &Value) -> String {
        let text = canonical_json(value);
        if Self::is_keyed(res) {
            let mac = hmac_sha256(self.key.as_ref(), &[text.as_bytes()]);
            format!("{KEYED_HASH_PREFIX}{}", hex::encode(mac))
        } else {
            format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
        }
    }

    /// The hash of `res`'s desired body (for other bodies equal to
    /// [`crate::diff::body_hash`]).
    pub fn desired_hash(&self, res: &Resource) -> String {
        self.hash(res, &res.body)
    }

    /// The hash of the live object stripped of server fields and projected onto
    /// `res`'s desired body (for other bodies equal to
    /// [`crate::diff::projection_hash`]).
    pub fn live_hash(&self, live: &Value, res: &Resource) -> String {
        self.hash(res, &project(&strip_server_fields(live), &res.body))
    }
}

/// The secret-hash key for `state` under `auth` (a passphrase) or without one.
pub(super) fn record_hasher(
    auth: Option<&Authenticator>,
    state: &StackState,
) -> Result<RecordHasher, StateError> {
    match auth {
        Some(auth) => auth
            .record_hasher(state)
            .map_err(|message| StateError::Passphrase(format!("cannot derive keys: {message}"))),
        None => Ok(RecordHasher::without_passphrase(state)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::diff::{body_hash, projection_hash};

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn hmac_matches_rfc_4231() {
        let case = |key: &[u8], data: &[u8]| hex::encode(hmac_sha256(key, &[data]));
        assert_eq!(
            case(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            case(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            case(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Parts are concatenated.
        assert_eq!(
            hmac_sha256(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"])
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    fn secret(name: &str, value: &str) -> Resource {
        Resource::kubernetes(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "ns"}, "stringData": {"DB_PASSWORD": value}}))
        .expect("valid")
    }

    fn auth(passphrase: &str) -> Authenticator {
        Authenticator::with_params(
            SecretString::new(passphrase),
            KdfParams::insecure_for_tests(),
        )
    }

    #[test]
    fn secret_hashes_are_keyed_per_stack_and_stable_within_one() {
        let a = StackState::new("preview-pr-1");
        let b = StackState::new("preview-pr-2");
        let res = secret("env", "hunter2-canary");
        let plain_hash = body_hash(&res.body);
        for (ha, ha_again, hb) in [
            (
                RecordHasher::without_passphrase(&a),
                RecordHasher::without_passphrase(&a.clone()),
                RecordHasher::without_passphrase(&b),
            ),
            {
                let auth = auth("a long enough state passphrase");
                let ha = record_hasher(Some(&auth), &a).expect("a");
                // Another process: same passphrase and (pinned) header.
                let other = auth_with_header_of(&auth, &a);
                let again = record_hasher(Some(&other), &a).expect("a again");
                (ha, again, record_hasher(Some(&auth), &b).expect("b"))
            },
        ] {
            let h = ha.desired_hash(&res);
            assert!(h.starts_with(KEYED_HASH_PREFIX), "{h}");
            assert!(
                !h.contains(&plain_hash[7..]),
                "a keyed hash is not the plain one"
            );
            assert_eq!(h, ha_again.desired_hash(&res), "stable within a stack");
            assert_ne!(h, hb.desired_hash(&res), "differs between stacks");
            // A different value gives a different hash; the live projection of
            // an equal object gives the same one.
            assert_ne!(h, ha.desired_hash(&secret("env", "hunter3-canary")));
            let mut live = res.body.clone();
            live["metadata"]["uid"] = json!("u-1");
            live["metadata"]["resourceVersion"] = json!("7");
            assert_eq!(ha.live_hash(&live, &res), h);
        }
        // With and without a passphrase the keys differ: the state's lineage
        // alone does not give the passphrase-derived key.
        let auth = auth("a long enough state passphrase");
        assert_ne!(
            record_hasher(Some(&auth), &a)
                .expect("a")
                .desired_hash(&res),
            RecordHasher::without_passphrase(&a).desired_hash(&res)
        );
    }

    /// An authenticator for another process that has read `state`'s document.
    fn auth_with_header_of(first: &Authenticator, state: &StackState) -> Authenticator {
        let header = first.sign(&state.stack, b"{}").expect("sign");
        let other = auth("a long enough state passphrase");
        assert_eq!(
            other.verify(&state.stack, &header, b"{}"),
            Verdict::Authentic
        );
        other
    }

    #[test]
    fn other_bodies_keep_the_plain_hashes() {
        let st = StackState::new("s");
        let cm = Resource::kubernetes(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns"}, "data": {"A": "1"}}))
        .expect("valid");
        let h = RecordHasher::without_passphrase(&st);
        assert_eq!(h.desired_hash(&cm), body_hash(&cm.body));
        assert_eq!(
            h.live_hash(&cm.body, &cm),
            projection_hash(&cm.body, &cm.body)
        );
        // Declared secret paths make any body keyed.
        let mut declared = cm.clone();
        declared.options.secret_paths = vec!["/data/A".into()];
        assert!(h.desired_hash(&declared).starts_with(KEYED_HASH_PREFIX));
        assert_eq!(format!("{h:?}"), "RecordHasher([secret])");
    }

    #[test]
    fn tags_bind_the_stack_the_parameters_and_the_bytes() {
        let auth = auth("a long enough state passphrase");
        let header = auth.sign("s", b"{\"serial\": 1}").expect("sign");
        assert_eq!(
            auth.verify("s", &header, b"{\"serial\": 1}"),
            Verdict::Authentic
        );
        assert_eq!(
            auth.verify("s", &header, b"{\"serial\": 2}"),
            Verdict::Mismatch
        );
        assert_eq!(
            auth.verify("t", &header, b"{\"serial\": 1}"),
            Verdict::Mismatch
        );
        let mut weaker = header.clone();
        weaker.kdf.iterations += 1;
        assert_eq!(
            auth.verify("s", &weaker, b"{\"serial\": 1}"),
            Verdict::Mismatch
        );
        let mut bad = header.clone();
        bad.kdf.memory_kib = 1;
        assert!(matches!(
            auth.verify("s", &bad, b"{\"serial\": 1}"),
            Verdict::BadHeader(_)
        ));
        let mut other_alg = header.clone();
        other_alg.algorithm = "none".into();
        assert!(matches!(
            auth.verify("s", &other_alg, b"{\"serial\": 1}"),
            Verdict::BadHeader(_)
        ));
        // Another passphrase does not verify; while rotating, the old one does.
        let new = Authenticator::with_params(
            SecretString::new("the next passphrase, rotated"),
            KdfParams::insecure_for_tests(),
        );
        assert_eq!(
            new.verify("s", &header, b"{\"serial\": 1}"),
            Verdict::Mismatch
        );
        let rotating = Authenticator::with_params(
            SecretString::new("the next passphrase, rotated"),
            KdfParams::insecure_for_tests(),
        )
        .rotating_from(SecretString::new("a long enough state passphrase"));
        assert_eq!(
            rotating.verify("s", &header, b"{\"serial\": 1}"),
            Verdict::Authentic
        );
        let rewritten = rotating.sign("s", b"{\"serial\": 2}").expect("sign");
        assert_eq!(
            new.verify("s", &rewritten, b"{\"serial\": 2}"),
            Verdict::Authentic
        );
        assert_eq!(
            auth.verify("s", &rewritten, b"{\"serial\": 2}"),
            Verdict::Mismatch
        );
        assert!(!format!("{rotating:?}").contains("rotated"));
    }
}
