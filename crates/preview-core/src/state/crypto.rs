//! Secret outputs sealed with a per-stack data key.
//!
//! Envelope encryption:
//! - each stack has a random 256-bit **data key**, created when the first secret
//!   is sealed ([`Sealer::open_or_init`]);
//! - every secret output is encrypted with it using **XChaCha20-Poly1305** (an
//!   AEAD; random 192-bit nonce per value), with the stack name and the output
//!   name as associated data, so a sealed value moved to another output or
//!   another stack fails to decrypt;
//! - the data key is stored in the state ([`StackState::encryption`]) **wrapped**
//!   (XChaCha20-Poly1305 again) by a key derived from the passphrase with
//!   **Argon2id** (memory-hard; salt and cost parameters recorded next to it, and
//!   bound to the wrapped key as associated data together with the stack name);
//! - the passphrase comes from `PREVIEW_STATE_PASSPHRASE`, or from the file named
//!   by `PREVIEW_STATE_PASSPHRASE_FILE` ([`passphrase_from_env`]).
//!
//! A wrong passphrase, a tampered value or a tampered wrapped key fails
//! authentication and yields [`StateError::Decrypt`], never garbage. Plain text
//! only exists inside [`SecretString`]s; nothing here logs or prints a value.
//! Rotating the passphrase re-wraps the data key ([`Sealer::rewrap`]); the sealed
//! values do not change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{Output, StackState, StateError};
use crate::secret::SecretString;

/// Environment variable holding the passphrase.
pub const PASSPHRASE_ENV: &str = "PREVIEW_STATE_PASSPHRASE";
/// Environment variable naming a file that holds the passphrase.
pub const PASSPHRASE_FILE_ENV: &str = "PREVIEW_STATE_PASSPHRASE_FILE";
/// Shortest passphrase accepted when a stack's data key is created.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// The cipher name recorded in [`Encryption::cipher`].
pub const CIPHER: &str = "xchacha20poly1305";
/// The KDF name recorded in [`Kdf::algorithm`].
pub const KDF: &str = "argon2id";
/// Prefix of a sealed value (`Output::Secret`): cipher and layout version.
const SEALED_PREFIX: &str = "xc20p1:";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// The stack's wrapped data key and how to unwrap it (stored in the state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// AEAD used for values and for wrapping ([`CIPHER`]).
    pub cipher: String,
    /// How the wrapping key is derived from the passphrase.
    pub kdf: Kdf,
    /// Base64 of nonce ‖ ciphertext ‖ tag of the data key.
    pub wrapped_key: String,
}

/// Key-derivation parameters as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kdf {
    /// [`KDF`].
    pub algorithm: String,
    /// Argon2 version (19 = 0x13).
    pub version: u32,
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Base64 of the random 128-bit salt.
    pub salt: String,
}

/// Argon2id cost parameters for new data keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 19 MiB, 2 passes, 1 lane: OWASP's recommended Argon2id configuration
    /// (Password Storage Cheat Sheet). Every `stacks` process pays it once or
    /// twice per state it opens, and hundreds of PR stacks run at once; the
    /// 64 MiB × 3 of RFC 9106's second option cost 134 ms and 64 MiB per
    /// derivation, which put 500 processes at once past the memory of a CI
    /// machine. States keep the parameters they were written with.
    fn default() -> Self {
        KdfParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters (8 MiB, 1 pass) for tests that seal many times. **Never**
    /// use them for real state: they make guessing the passphrase cheap.
    pub fn insecure_for_tests() -> Self {
        KdfParams {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// A stack output with its secret unsealed ([`Sealer::reveal`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Revealed {
    /// A plain value.
    Plain(Value),
    /// A secret value (still redacted in `Debug`).
    Secret(SecretString),
}

/// Seals and unseals the secret outputs of one stack with its data key.
pub struct Sealer {
    stack: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("stack", &self.stack)
            .field("key", &"[secret]")
            .finish()
    }
}

fn decrypt_error(stack: &str, what: impl Into<String>) -> StateError {
    StateError::Decrypt {
        stack: stack.to_owned(),
        what: what.into(),
        reason: "wrong passphrase or tampered state".into(),
    }
}

/// `label ‖ len(stack) ‖ stack ‖ len(part) ‖ part`, unambiguous for any strings.
fn associated_data(label: &str, stack: &str, part: &str) -> Vec<u8> {
    let mut ad = Vec::with_capacity(label.len() + stack.len() + part.len() + 16);
    ad.extend_from_slice(label.as_bytes());
    ad.push(0);
    for s in [stack, part] {
        ad.extend_from_slice(&(s.len() as u64).to_be_bytes());
        ad.extend_from_slice(s.as_bytes());
    }
    ad
}

fn seal_bytes(key: &[u8; KEY_LEN], plain: &[u8], ad: &[u8]) -> Result<Vec<u8>, ()> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let nonce = XNonce::from_slice(&nonce_bytes);
    let ct = cipher
        .encrypt(
            nonce,
            Payload {
                msg: plain,
                aad: ad,
            },
        )
        .map_err(|_| ())?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open_bytes(key: &[u8; KEY_LEN], sealed: &[u8], ad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: ad })
        .ok()
        .map(Zeroizing::new)
}

fn derive_wrapping_key(
    stack: &str,
    kdf: &Kdf,
    passphrase: &SecretString,
) -> Result<Zeroizing<[u8; KEY_LEN]>, StateError> {
    derive_key(kdf, passphrase).map_err(|message| StateError::Corrupt {
        stack: stack.to_owned(),
        location: "its encryption settings".into(),
        message,
    })
}

/// Argon2id of `passphrase` under the recorded parameters `kdf` (checked
/// first: a damaged or hostile header cannot ask for absurd work).
pub(super) fn derive_key(
    kdf: &Kdf,
    passphrase: &SecretString,
) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    if kdf.algorithm != KDF || kdf.version != 0x13 {
        return Err(format!(
            "unsupported key derivation {} version {}",
            kdf.algorithm, kdf.version
        ));
    }
    // Bounds keep a damaged state from asking for absurd work.
    if !(8..=4 * 1024 * 1024).contains(&kdf.memory_kib)
        || !(1..=64).contains(&kdf.iterations)
        || !(1..=16).contains(&kdf.parallelism)
    {
        return Err(format!(
            "key derivation parameters out of range (m={} KiB, t={}, p={})",
            kdf.memory_kib, kdf.iterations, kdf.parallelism
        ));
    }
    let salt = B64
        .decode(&kdf.salt)
        .map_err(|_| "the key derivation salt is not base64".to_owned())?;
    let params = Params::new(
        kdf.memory_kib,
        kdf.iterations,
        kdf.parallelism,
        Some(KEY_LEN),
    )
    .map_err(|e| format!("invalid key derivation parameters: {e}"))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.expose().as_bytes(), &salt, out.as_mut())
        .map_err(|e| format!("key derivation failed: {e}"))?;
    Ok(out)
}

/// Fresh Argon2id parameters with a random salt.
pub(super) fn new_kdf(params: KdfParams) -> Kdf {
    let salt: [u8; SALT_LEN] = rand::random();
    Kdf {
        algorithm: KDF.into(),
        version: 0x13,
        memory_kib: params.memory_kib,
        iterations: params.iterations,
        parallelism: params.parallelism,
        salt: B64.encode(salt),
    }
}

/// The recorded parameters as one string (bound into what they protect).
pub(super) fn kdf_binding(kdf: &Kdf) -> String {
    format!(
        "{}/v{}/m{}/t{}/p{}/{}",
        kdf.algorithm, kdf.version, kdf.memory_kib, kdf.iterations, kdf.parallelism, kdf.salt
    )
}

impl Sealer {
    /// Opens the stack's data key, creating (and recording in `state`) a new one
    /// with the default [`KdfParams`] when the state has none yet. The caller
    /// must write `state` for a new key to persist.
    pub fn open_or_init(
        state: &mut StackState,
        passphrase: &SecretString,
    ) -> Result<Sealer, StateError> {
        Self::open_or_init_with(state, passphrase, KdfParams::default())
    }

    /// [`Sealer::open_or_init`] with explicit cost parameters for a new key.
    pub fn open_or_init_with(
        state: &mut StackState,
        passphrase: &SecretString,
        params: KdfParams,
    ) -> Result<Sealer, StateError> {
        if state.encryption.is_some() {
            return Self::open(state, passphrase);
        }
        check_new_passphrase(passphrase)?;
        let key = Zeroizing::new(rand::random::<[u8; KEY_LEN]>());
        state.encryption = Some(wrap(&state.stack, &key, passphrase, params)?);
        Ok(Sealer {
            stack: state.stack.clone(),
            key,
        })
    }

    /// Opens the data key of an existing stack (e.g. a referenced stack whose
    /// secret outputs this run needs).
    pub fn open(state: &StackState, passphrase: &SecretString) -> Result<Sealer, StateError> {
        let Some(enc) = &state.encryption else {
            return Err(StateError::Decrypt {
                stack: state.stack.clone(),
                what: "secret outputs".into(),
                reason: "the state has no data key (no secret was ever sealed for this stack)"
                    .into(),
            });
        };
        if enc.cipher != CIPHER {
            return Err(StateError::Corrupt {
                stack: state.stack.clone(),
                location: "its encryption settings".into(),
                message: format!("unsupported cipher {}", enc.cipher),
            });
        }
        let kek = derive_wrapping_key(&state.stack, &enc.kdf, passphrase)?;
        let wrapped = B64
            .decode(&enc.wrapped_key)
            .map_err(|_| decrypt_error(&state.stack, "the data key"))?;
        let ad = associated_data(
            "preview-envs/data-key/v1",
            &state.stack,
            &kdf_binding(&enc.kdf),
        );
        let plain = open_bytes(&kek, &wrapped, &ad)
            .ok_or_else(|| decrypt_error(&state.stack, "the data key"))?;
        let key: [u8; KEY_LEN] = plain
            .as_slice()
            .try_into()
            .map_err(|_| decrypt_error(&state.stack, "the data key"))?;
        Ok(Sealer {
            stack: state.stack.clone(),
            key: Zeroizing::new(key),
        })
    }

    /// Re-wraps the stack's data key under a new passphrase (rotation). Sealed
    /// values stay valid; the caller writes `state`.
    pub fn rewrap(
        state: &mut StackState,
        old: &SecretString,
        new: &SecretString,
        params: KdfParams,
    ) -> Result<(), StateError> {
        check_new_passphrase(new)?;
        let sealer = Self::open(state, old)?;
        state.encryption = Some(wrap(&state.stack, &sealer.key, new, params)?);
        Ok(())
    }

    /// The stack this sealer belongs to.
    pub fn stack(&self) -> &str {
        &self.stack
    }

    /// Encrypts `value` as the secret output `output` of this stack.
    pub fn seal(&self, output: &str, value: &SecretString) -> Result<Output, StateError> {
        let ad = associated_data("preview-envs/secret-output/v1", &self.stack, output);
        let sealed = seal_bytes(&self.key, value.expose().as_bytes(), &ad).map_err(|()| {
            StateError::Decrypt {
                stack: self.stack.clone(),
                what: format!("secret output {output}"),
                reason: "encryption failed".into(),
            }
        })?;
        Ok(Output::Secret(format!(
            "{SEALED_PREFIX}{}",
            B64.encode(sealed)
        )))
    }

    /// Like [`Sealer::seal`], but returns `previous` unchanged when it already
    /// seals the same value, so an unchanged secret does not change the state.
    pub fn seal_keeping(
        &self,
        output: &str,
        value: &SecretString,
        previous: Option<&Output>,
    ) -> Result<Output, StateError> {
        if let Some(prev @ Output::Secret(_)) = previous
            && self.unseal(output, prev).ok().as_ref() == Some(value)
        {
            return Ok(prev.clone());
        }
        self.seal(output, value)
    }

    /// Decrypts the secret output `output` of this stack.
    pub fn unseal(&self, output: &str, sealed: &Output) -> Result<SecretString, StateError> {
        let what = || format!("secret output {output}");
        let Output::Secret(text) = sealed else {
            return Err(StateError::Decrypt {
                stack: self.stack.clone(),
                what: what(),
                reason: "it is a plain output, not a sealed secret".into(),
            });
        };
        let bytes = text
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .ok_or_else(|| decrypt_error(&self.stack, what()))?;
        let ad = associated_data("preview-envs/secret-output/v1", &self.stack, output);
        let plain =
            open_bytes(&self.key, &bytes, &ad).ok_or_else(|| decrypt_error(&self.stack, what()))?;
        let text = std::str::from_utf8(&plain).map_err(|_| decrypt_error(&self.stack, what()))?;
        Ok(SecretString::new(text))
    }

    /// All outputs with their secrets unsealed (stack references).
    pub fn reveal(
        &self,
        outputs: &BTreeMap<String, Output>,
    ) -> Result<BTreeMap<String, Revealed>, StateError> {
        outputs
            .iter()
            .map(|(name, out)| {
                let revealed = match out {
                    Output::Plain(v) => Revealed::Plain(v.clone()),
                    Output::Secret(_) => Revealed::Secret(self.unseal(name, out)?),
                };
                Ok((name.clone(), revealed))
            })
            .collect()
    }
}

/// What the engine seals secret outputs with ([`crate::engine::EngineOptions::sealer`]):
/// the passphrase that opens each stack's data key, and the cost parameters of
/// a key it creates. The passphrase never appears in `Debug`.
#[derive(Clone)]
pub struct StackSealer {
    passphrase: SecretString,
    params: KdfParams,
}

impl std::fmt::Debug for StackSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackSealer")
            .field("passphrase", &self.passphrase)
            .field("params", &self.params)
            .finish()
    }
}

impl StackSealer {
    /// Seals with `passphrase` (new keys with the default [`KdfParams`]).
    pub fn new(passphrase: SecretString) -> Self {
        StackSealer {
            passphrase,
            params: KdfParams::default(),
        }
    }

    /// The same, creating new keys with `params`.
    pub fn with_params(mut self, params: KdfParams) -> Self {
        self.params = params;
        self
    }

    /// The [`Sealer`] of `state`'s stack ([`Sealer::open_or_init_with`]: a
    /// wrong passphrase fails; a stack without a key gets one, recorded in
    /// `state`, when the passphrase is long enough).
    pub fn open(&self, state: &mut StackState) -> Result<Sealer, StateError> {
        Sealer::open_or_init_with(state, &self.passphrase, self.params)
    }
}

fn check_new_passphrase(passphrase: &SecretString) -> Result<(), StateError> {
    let chars = passphrase.expose().chars().count();
    if chars < MIN_PASSPHRASE_CHARS {
        return Err(StateError::Passphrase(format!(
            "too short ({chars} characters) to protect a new data key; use at least {MIN_PASSPHRASE_CHARS} (e.g. `openssl rand -base64 32`)"
        )));
    }
    Ok(())
}

fn wrap(
    stack: &str,
    key: &[u8; KEY_LEN],
    passphrase: &SecretString,
    params: KdfParams,
) -> Result<Encryption, StateError> {
    let kdf = new_kdf(params);
    let kek = derive_wrapping_key(stack, &kdf, passphrase)?;
    let ad = associated_data("preview-envs/data-key/v1", stack, &kdf_binding(&kdf));
    let wrapped = seal_bytes(&kek, key, &ad).map_err(|()| StateError::Decrypt {
        stack: stack.to_owned(),
        what: "the data key".into(),
        reason: "wrapping failed".into(),
    })?;
    Ok(Encryption {
        cipher: CIPHER.into(),
        kdf,
        wrapped_key: B64.encode(wrapped),
    })
}

/// The passphrase from [`PASSPHRASE_ENV`] or the file named by
/// [`PASSPHRASE_FILE_ENV`]; `Ok(None)` when neither is set.
pub fn passphrase_from_env() -> Result<Option<SecretString>, StateError> {
    passphrase_from(
        std::env::var(PASSPHRASE_ENV).ok(),
        std::env::var_os(PASSPHRASE_FILE_ENV).map(PathBuf::from),
    )
}

/// The passphrase from a value or a file (trailing newlines removed). Setting
/// both, an empty value, or an unreadable file is an error (which never
/// contains the passphrase).
pub fn passphrase_from(
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<SecretString>, StateError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(StateError::Passphrase(format!(
            "both {PASSPHRASE_ENV} and {PASSPHRASE_FILE_ENV} are set; set only one"
        ))),
        (Some(v), None) if v.is_empty() => Err(StateError::Passphrase(format!(
            "{PASSPHRASE_ENV} is set but empty"
        ))),
        (Some(v), None) => Ok(Some(SecretString::new(v))),
        (None, Some(path)) => {
            let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                StateError::Passphrase(format!(
                    "cannot read {PASSPHRASE_FILE_ENV}={}: {e}",
                    path.display()
                ))
            })?);
            let trimmed = text.trim_end_matches(['\n', '\r']);
            if trimmed.is_empty() {
                return Err(StateError::Passphrase(format!(
                    "{PASSPHRASE_FILE_ENV}={} is empty",
                    path.display()
                )));
            }
            Ok(Some(SecretString::new(trimmed)))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> SecretString {
        SecretString::new(s)
    }

    fn fast_state(stack: &str, p: &str) -> (StackState, Sealer) {
        let mut st = StackState::new(stack);
        let sealer = Sealer::open_or_init_with(&mut st, &pass(p), KdfParams::insecure_for_tests())
            .expect("init");
        (st, sealer)
    }

    #[test]
    fn seal_unseal_round_trip_and_reopen() {
        let (st, sealer) = fast_state("s", "correct horse battery");
        let out = sealer.seal("db", &pass("hunter2-canary")).expect("seal");
        let Output::Secret(text) = &out else {
            panic!("not secret")
        };
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            sealer.unseal("db", &out).expect("unseal").expose(),
            "hunter2-canary"
        );
        let again = Sealer::open(&st, &pass("correct horse battery")).expect("reopen");
        assert_eq!(
            again.unseal("db", &out).expect("unseal").expose(),
            "hunter2-canary"
        );
        // Random nonces: sealing twice differs, seal_keeping keeps the old one.
        let other = sealer.seal("db", &pass("hunter2-canary")).expect("seal");
        assert_ne!(other, out);
        let kept = sealer
            .seal_keeping("db", &pass("hunter2-canary"), Some(&out))
            .expect("keep");
        assert_eq!(kept, out);
        let changed = sealer
            .seal_keeping("db", &pass("new-value"), Some(&out))
            .expect("reseal");
        assert_ne!(changed, out);
    }

    #[test]
    fn wrong_passphrase_and_tampering_fail_clearly() {
        let (st, sealer) = fast_state("s", "correct horse battery");
        let err = Sealer::open(&st, &pass("wrong horse battery")).expect_err("wrong");
        assert_eq!(
            err.to_string(),
            "cannot decrypt the data key of stack s: wrong passphrase or tampered state"
        );
        let out = sealer.seal("db", &pass("v")).expect("seal");
        let Output::Secret(text) = &out else {
            panic!("not secret")
        };
        // Flip one byte of the ciphertext.
        let mut raw = B64.decode(&text[SEALED_PREFIX.len()..]).expect("b64");
        raw[30] ^= 1;
        let tampered = Output::Secret(format!("{SEALED_PREFIX}{}", B64.encode(raw)));
        let err = sealer.unseal("db", &tampered).expect_err("tampered");
        assert_eq!(
            err.to_string(),
            "cannot decrypt secret output db of stack s: wrong passphrase or tampered state"
        );
        // Moved to another output name or another stack: refused.
        assert!(sealer.unseal("other", &out).is_err());
        let (_, other_stack) = fast_state("t", "correct horse battery");
        assert!(other_stack.unseal("db", &out).is_err());
        // Tampered KDF parameters or wrapped key: refused.
        let mut st2 = st.clone();
        if let Some(e) = st2.encryption.as_mut() {
            e.kdf.iterations = 2;
        }
        assert!(Sealer::open(&st2, &pass("correct horse battery")).is_err());
        assert!(
            sealer
                .unseal("db", &Output::Secret("plain".into()))
                .is_err()
        );
        assert!(sealer.unseal("db", &Output::Plain(Value::Null)).is_err());
    }

    #[test]
    fn rewrap_keeps_values() {
        let (mut st, sealer) = fast_state("s", "correct horse battery");
        let out = sealer.seal("db", &pass("v1")).expect("seal");
        Sealer::rewrap(
            &mut st,
            &pass("correct horse battery"),
            &pass("a brand new passphrase"),
            KdfParams::insecure_for_tests(),
        )
        .expect("rewrap");
        assert!(Sealer::open(&st, &pass("correct horse battery")).is_err());
        let s2 = Sealer::open(&st, &pass("a brand new passphrase")).expect("open");
        assert_eq!(s2.unseal("db", &out).expect("unseal").expose(), "v1");
    }

    #[test]
    fn short_passphrase_is_refused_for_a_new_key_and_debug_is_redacted() {
        let mut st = StackState::new("s");
        let err = Sealer::open_or_init(&mut st, &pass("hunter2")).expect_err("short");
        assert!(
            err.to_string().contains("too short (7 characters)"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(st.encryption.is_none());
        let (_, sealer) = fast_state("s", "correct horse battery");
        assert_eq!(
            format!("{sealer:?}"),
            "Sealer { stack: \"s\", key: \"[secret]\" }"
        );
    }

    #[test]
    fn default_params_are_memory_hard() {
        let p = KdfParams::default();
        assert!(p.memory_kib >= 19 * 1024 && p.iterations >= 2);
        let mut st = StackState::new("s");
        Sealer::open_or_init(&mut st, &pass("correct horse battery")).expect("init");
        let kdf = &st.encryption.as_ref().expect("enc").kdf;
        assert_eq!(
            (kdf.algorithm.as_str(), kdf.memory_kib),
            ("argon2id", 19456)
        );
        assert_eq!(B64.decode(&kdf.salt).expect("salt").len(), SALT_LEN);
    }

    #[test]
    fn passphrase_sources() {
        assert!(passphrase_from(None, None).expect("none").is_none());
        assert_eq!(
            passphrase_from(Some("abc".into()), None)
                .expect("value")
                .expect("some")
                .expose(),
            "abc"
        );
        assert!(passphrase_from(Some(String::new()), None).is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("p");
        std::fs::write(&f, "from-file-secret\n").expect("write");
        assert_eq!(
            passphrase_from(None, Some(f.clone()))
                .expect("file")
                .expect("some")
                .expose(),
            "from-file-secret"
        );
        let err = passphrase_from(Some("x".into()), Some(f)).expect_err("both");
        assert!(err.to_string().contains("only one"), "{err}");
        let err = passphrase_from(None, Some(dir.path().join("missing"))).expect_err("missing");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn old_states_without_encryption_load() {
        let json = serde_json::json!({
            "stack": "s", "lineage": "l", "serial": 1, "resources": [], "outputs": {}
        });
        let st: StackState = serde_json::from_value(json).expect("old state");
        assert!(st.encryption.is_none());
    }
}
