//! The `stacks state …` sub-commands as library functions, over any
//! [`StateBackend`]:
//!
//! | command | function |
//! |---|---|
//! | `state list` | [`list`] |
//! | `state show STACK` | [`show`] (JSON, secret outputs redacted) |
//! | `state export STACK FILE [--trust-unauthenticated]` | [`export_to_file`] |
//! | `state import STACK FILE [--force] [--trust-unauthenticated]` | [`import_from_file`] |
//! | `state break-lock STACK` | [`break_lock`] |
//! | `state delete STACK [--force]` | [`delete`] |
//! | `state rotate-passphrase STACK` | [`rotate_passphrase`] |
//! | `state forget-secrets STACK` | [`forget_secrets`] |
//!
//! Import and delete take the stack's lock (so they never race a running `up`)
//! and write through the backend's integrity rules: an import must continue the
//! stored history (same lineage, newer serial) unless forced, and a forced import
//! is still a compare-and-swap against the state it inspected. A state file keeps
//! its secret outputs sealed; it can be read back only with the passphrase of the
//! stack it came from.
//!
//! With a state passphrase the backend's codec authenticates every document
//! ([`preview_core::state::auth`]): an export is authenticated, an import must
//! verify, and a stored state that does not (older, unauthenticated state; a
//! lost passphrase) is refused. The one-time, conscious way out is
//! `--trust-unauthenticated` on a backend opened with
//! [`Codec::trusting_unauthenticated`]: `state export` then writes the state
//! unauthenticated (format 2) for review, and `state import` stores a reviewed
//! file authenticated with the current passphrase, replacing the stored state of
//! the same history even when the serials are equal.
use std::path::Path;
use std::time::Duration;

use preview_core::plan::SECRET_PLACEHOLDER;
use preview_core::remedy::{Remedy, suffix};
use preview_core::secret::SecretString;
use preview_core::state::crypto::{KdfParams, Sealer};
use preview_core::state::format::{Codec, DecodeError, Purpose};
use preview_core::state::{
    Output, StackState, StateBackend, StateError, WriteRule, format, under_lock,
};
use serde::Serialize;
use serde_json::{Value, json};

/// Errors of the `state` sub-commands.
#[derive(Debug, thiserror::Error)]
pub enum StateCmdError {
    /// The backend failed, or refused (corrupt, stale, locked).
    #[error(transparent)]
    State(#[from] StateError),
    /// The stack has no state.
    #[error("stack {stack} has no state in {backend}")]
    NotFound {
        /// Stack.
        stack: String,
        /// Backend description.
        backend: String,
    },
    /// A state file could not be read, written or understood.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
        /// Cause.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The operation would lose information; `--force` overrides.
    #[error("refusing to {action} stack {stack}: {reason}")]
    Refused {
        /// `import`, `delete`.
        action: &'static str,
        /// Stack.
        stack: String,
        /// Why, and how to override.
        reason: String,
    },
}

/// One line of `state list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackSummary {
    /// Stack.
    pub stack: String,
    /// Serial (absent when unreadable).
    pub serial: Option<u64>,
    /// Lineage (absent when unreadable).
    pub lineage: Option<String>,
    /// Recorded resources.
    pub resources: usize,
    /// Outputs.
    pub outputs: usize,
    /// Steps of an interrupted run.
    pub pending: usize,
    /// Whether it has a data key (sealed secrets).
    pub encrypted: bool,
    /// Why it could not be read, if so.
    pub problem: Option<String>,
}

/// Lists the stacks of a backend with a summary of each; an unreadable state is
/// listed with its problem instead of failing the listing.
pub async fn list(backend: &dyn StateBackend) -> Result<Vec<StackSummary>, StateCmdError> {
    let mut out = Vec::new();
    for stack in backend.list().await? {
        let summary = match backend.read(&stack).await {
            Ok(Some(s)) => StackSummary {
                stack,
                serial: Some(s.serial),
                lineage: Some(s.lineage.clone()),
                resources: s.resources.len(),
                outputs: s.outputs.len(),
                pending: s.pending.len(),
                encrypted: s.encryption.is_some(),
                problem: None,
            },
            Ok(None) => continue, // deleted while listing
            Err(e @ (StateError::Corrupt { .. } | StateError::NotAuthentic { .. })) => {
                StackSummary {
                    stack,
                    serial: None,
                    lineage: None,
                    resources: 0,
                    outputs: 0,
                    pending: 0,
                    encrypted: false,
                    problem: Some(e.to_string()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        out.push(summary);
    }
    Ok(out)
}

/// The state as JSON for display: every secret output replaced by
/// `[secret]`, the wrapped data key omitted.
pub fn redacted(state: &StackState) -> Value {
    let outputs: serde_json::Map<String, Value> = state
        .outputs
        .iter()
        .map(|(name, out)| {
            let shown = match out {
                Output::Plain(v) => v.clone(),
                Output::Secret(_) => json!(SECRET_PLACEHOLDER),
            };
            (name.clone(), shown)
        })
        .collect();
    let encryption = state.encryption.as_ref().map(|e| {
        json!({
            "cipher": e.cipher,
            "kdf": format!(
                "{} m={} KiB t={} p={}",
                e.kdf.algorithm, e.kdf.memory_kib, e.kdf.iterations, e.kdf.parallelism
            ),
        })
    });
    json!({
        "stack": state.stack,
        "lineage": state.lineage,
        "serial": state.serial,
        "resources": state.resources.values().collect::<Vec<_>>(),
        "outputs": outputs,
        "pending": state.pending,
        "encryption": encryption,
    })
}

async fn read_existing(
    backend: &dyn StateBackend,
    stack: &str,
) -> Result<StackState, StateCmdError> {
    backend
        .read(stack)
        .await?
        .ok_or_else(|| StateCmdError::NotFound {
            stack: stack.to_owned(),
            backend: backend.describe(),
        })
}

/// `state show STACK`: the redacted state ([`redacted`]) plus the backend.
pub async fn show(backend: &dyn StateBackend, stack: &str) -> Result<Value, StateCmdError> {
    let state = read_existing(backend, stack).await?;
    let mut value = redacted(&state);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("backend".into(), json!(backend.describe()));
    }
    Ok(value)
}

/// The stored state of a stack as a document, with its serial: encoded by the
/// backend's codec (authenticated with a passphrase; secret outputs stay
/// sealed), or unauthenticated (format 2) when the backend trusts
/// unauthenticated state: what was not verified is not vouched for.
pub async fn export_bytes(
    backend: &dyn StateBackend,
    stack: &str,
) -> Result<(u64, Vec<u8>), StateCmdError> {
    let state = read_existing(backend, stack).await?;
    let codec = backend.codec();
    let encoded = if codec.trusts_unauthenticated() {
        format::encode(&state)
    } else {
        codec.encode(&state)
    };
    let bytes = encoded.map_err(|message| StateCmdError::File {
        path: "-".into(),
        message: format!("cannot encode the state: {message}"),
        source: None,
    })?;
    Ok((state.serial, bytes))
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Stack.
    pub stack: String,
    /// Serial exported.
    pub serial: u64,
    /// Bytes written.
    pub bytes: usize,
    /// The file is authenticated (format 3).
    pub authenticated: bool,
}

/// `state export STACK FILE`: writes the state to `path` atomically (temporary
/// file, fsync, rename), readable by its owner only (mode 0600).
pub async fn export_to_file(
    backend: &dyn StateBackend,
    stack: &str,
    path: &Path,
) -> Result<ExportReport, StateCmdError> {
    let (serial, bytes) = export_bytes(backend, stack).await?;
    write_private(path, &bytes)?;
    let codec = backend.codec();
    Ok(ExportReport {
        stack: stack.to_owned(),
        serial,
        bytes: bytes.len(),
        authenticated: codec.is_authenticated() && !codec.trusts_unauthenticated(),
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StateCmdError> {
    crate::private_file::write_private_atomic(path, bytes).map_err(|e| StateCmdError::File {
        path: path.display().to_string(),
        message: format!("cannot write: {e}"),
        source: Some(e),
    })
}

/// Options of `state import`.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Replace the stored state even when the file is not a newer state of the
    /// same history (older or equal serial, or another lineage).
    pub force: bool,
    /// How long to wait for the stack's lock (zero: fail fast).
    pub lock_timeout: Duration,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Stack.
    pub stack: String,
    /// Serial now stored.
    pub serial: u64,
    /// Lineage now stored.
    pub lineage: String,
    /// The stored state was forcibly replaced (`--force`).
    pub replaced: bool,
    /// The file was identical to the stored state: nothing was written.
    pub unchanged: bool,
    /// What is stored now is authenticated (a state passphrase is set).
    pub authenticated: bool,
}

/// `state import STACK FILE`.
pub async fn import_from_file(
    backend: &dyn StateBackend,
    stack: &str,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, StateCmdError> {
    let bytes = std::fs::read(path).map_err(|e| StateCmdError::File {
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
        source: Some(e),
    })?;
    import_bytes(backend, stack, &bytes, options)
        .await
        .map_err(|e| match e {
            StateCmdError::File {
                message, source, ..
            } => StateCmdError::File {
                path: path.display().to_string(),
                message,
                source,
            },
            other => other,
        })
}

/// The stack a document names, read without any check (only to word an error).
fn claimed_stack(bytes: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    doc.pointer("/state/stack")?.as_str().map(str::to_owned)
}

/// Imports a state document (as written by [`export_to_file`]): format 1 to 3,
/// the checksum verified, and with a state passphrase the authentication too
/// (an unauthenticated file is refused unless the backend trusts
/// unauthenticated state, `--trust-unauthenticated`).
///
/// - no stored state: the file is stored with its lineage and serial;
/// - same lineage, newer serial: stored as is;
/// - identical to the stored state: nothing is written — unless the backend
///   trusts unauthenticated state: then a file of the same lineage is always
///   stored (with the next serial), which is how older state is upgraded;
/// - older or equal serial, or another lineage: refused unless
///   [`ImportOptions::force`]; then the file's content is stored with a serial
///   above the stored one, provided the stored state did not change meanwhile.
///
/// A corrupt stored state is never replaced here: remove it first with
/// `state delete --force`.
pub async fn import_bytes(
    backend: &dyn StateBackend,
    stack: &str,
    bytes: &[u8],
    options: &ImportOptions,
) -> Result<ImportReport, StateCmdError> {
    if let Some(other) = claimed_stack(bytes).filter(|s| s != stack) {
        return Err(StateCmdError::Refused {
            action: "import",
            stack: stack.to_owned(),
            reason: format!("the file holds the state of stack {other:?}; import it as that stack"),
        });
    }
    let mut imported = decode_file(backend.codec(), stack, bytes)?;
    under_lock(
        backend,
        stack,
        options.lock_timeout,
        import_locked(backend, &mut imported, options),
    )
    .await
}

/// A state file of `stack`, decoded like stored state; an unauthenticated one
/// says how to accept it.
fn decode_file(codec: &Codec, stack: &str, bytes: &[u8]) -> Result<StackState, StateCmdError> {
    let file_error = |message: String| StateCmdError::File {
        path: "-".into(),
        message,
        source: None,
    };
    codec
        .decode(bytes, stack, Purpose::Read)
        .map_err(|e| match e {
            DecodeError::NotAuthentic(why) => file_error(format!(
                "not authentic: {why}{}",
                suffix("; ", &Remedy::ImportReviewedFile)
            )),
            other => file_error(format!("not a valid state file: {other}")),
        })
}

async fn import_locked(
    backend: &dyn StateBackend,
    imported: &mut StackState,
    options: &ImportOptions,
) -> Result<ImportReport, StateCmdError> {
    let stack = imported.stack.clone();
    let refuse = |reason: String| StateCmdError::Refused {
        action: "import",
        stack: stack.clone(),
        reason,
    };
    let authenticated = backend.codec().is_authenticated();
    let upgrade = backend.codec().trusts_unauthenticated();
    let stored = backend.read(&stack).await?;
    let (rule, replaced) = match &stored {
        None => {
            imported.serial = imported.serial.max(1);
            (WriteRule::Newer, false)
        }
        Some(s) if s == &*imported && !upgrade => {
            return Ok(ImportReport {
                stack: stack.clone(),
                serial: s.serial,
                lineage: s.lineage.clone(),
                replaced: false,
                unchanged: true,
                authenticated,
            });
        }
        Some(s) if s.lineage == imported.lineage && imported.serial > s.serial => {
            (WriteRule::Newer, false)
        }
        // The reviewed file replaces the stored state of its own history, which
        // is written again (authenticated) even when nothing else changed.
        Some(s) if upgrade && s.lineage == imported.lineage => {
            imported.serial = s.serial + 1;
            (
                WriteRule::Replace {
                    expected: Some((s.lineage.clone(), s.serial)),
                },
                false,
            )
        }
        Some(s) => {
            let why = if s.lineage != imported.lineage {
                format!(
                    "the file has lineage {}, the stored state {} (another state history)",
                    imported.lineage, s.lineage
                )
            } else {
                format!(
                    "the file has serial {}, the stored state serial {} (the file is not newer)",
                    imported.serial, s.serial
                )
            };
            if !options.force {
                return Err(refuse(format!(
                    "{why}{}",
                    suffix("; ", &Remedy::ForceImport)
                )));
            }
            imported.serial = imported.serial.max(s.serial + 1);
            (
                WriteRule::Replace {
                    expected: Some((s.lineage.clone(), s.serial)),
                },
                true,
            )
        }
    };
    backend.write_with(imported, &rule).await?;
    Ok(ImportReport {
        stack,
        serial: imported.serial,
        lineage: imported.lineage.clone(),
        replaced,
        unchanged: false,
        authenticated,
    })
}

/// `state break-lock STACK`: removes the stack's lock whoever holds it and
/// returns who held it (`None`: it was not locked). Use it only when the holder
/// is known to be dead.
pub async fn break_lock(
    backend: &dyn StateBackend,
    stack: &str,
) -> Result<Option<String>, StateCmdError> {
    Ok(backend.break_lock(stack).await?)
}

/// Options of `state delete`.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// Delete even when resources remain recorded (they become orphans) or the
    /// state is unreadable.
    pub force: bool,
    /// How long to wait for the stack's lock (zero: fail fast).
    pub lock_timeout: Duration,
}

/// What a delete removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeleteReport {
    /// Stack.
    pub stack: String,
    /// Resources that were still recorded (forgotten with `--force`).
    pub forgotten_resources: usize,
    /// The state was unreadable (deleted with `--force`).
    pub was_corrupt: bool,
}

/// `state delete STACK`: removes the stack's state under its lock. Refuses while
/// resources (or interrupted steps) remain recorded — run `destroy` first — or
/// when the state is unreadable, unless [`DeleteOptions::force`].
pub async fn delete(
    backend: &dyn StateBackend,
    stack: &str,
    options: &DeleteOptions,
) -> Result<DeleteReport, StateCmdError> {
    under_lock(
        backend,
        stack,
        options.lock_timeout,
        delete_locked(backend, stack, options),
    )
    .await
}

async fn delete_locked(
    backend: &dyn StateBackend,
    stack: &str,
    options: &DeleteOptions,
) -> Result<DeleteReport, StateCmdError> {
    let refuse = |reason: String| StateCmdError::Refused {
        action: "delete",
        stack: stack.to_owned(),
        reason,
    };
    let (forgotten, was_corrupt) = match backend.read(stack).await {
        Ok(Some(state)) => {
            let remaining = state.resources.len() + state.pending.len();
            if remaining > 0 && !options.force {
                let mut names: Vec<String> = state
                    .resources
                    .keys()
                    .take(5)
                    .map(ToString::to_string)
                    .collect();
                if state.resources.len() > 5 {
                    names.push(format!("… {} more", state.resources.len() - 5));
                }
                return Err(refuse(format!(
                    "it still records {} resource(s) and {} interrupted step(s) ({}){}",
                    state.resources.len(),
                    state.pending.len(),
                    names.join(", "),
                    suffix("; ", &Remedy::DestroyOrForget)
                )));
            }
            (state.resources.len(), false)
        }
        Ok(None) => {
            return Err(StateCmdError::NotFound {
                stack: stack.to_owned(),
                backend: backend.describe(),
            });
        }
        Err(e @ (StateError::Corrupt { .. } | StateError::NotAuthentic { .. }))
            if !options.force =>
        {
            return Err(refuse(format!("{e}{}", suffix("; ", &Remedy::ForceDelete))));
        }
        Err(StateError::Corrupt { .. } | StateError::NotAuthentic { .. }) => (0, true),
        Err(e) => return Err(e.into()),
    };
    backend.delete(stack).await?;
    Ok(DeleteReport {
        stack: stack.to_owned(),
        forgotten_resources: forgotten,
        was_corrupt,
    })
}

/// What a passphrase rotation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotateReport {
    /// Stack.
    pub stack: String,
    /// Serial now stored.
    pub serial: u64,
    /// False when the stack has no data key (nothing sealed).
    pub rotated: bool,
    /// The document was written again, authenticated with the new passphrase.
    pub reauthenticated: bool,
}

/// `state rotate-passphrase STACK`: re-wraps the stack's data key under `new`
/// (fresh salt, default Argon2id cost) and, when the backend authenticates
/// state (opened with the new passphrase, [`Authenticator::rotating_from`] the
/// old one), writes the document authenticated with the new passphrase. Sealed
/// values are unchanged; the state's serial advances by one. Fails without
/// writing if `old` is wrong. Nothing is written when there is neither a data
/// key nor authentication.
///
/// [`Authenticator::rotating_from`]: preview_core::state::auth::Authenticator::rotating_from
pub async fn rotate_passphrase(
    backend: &dyn StateBackend,
    stack: &str,
    old: &SecretString,
    new: &SecretString,
    lock_timeout: Duration,
) -> Result<RotateReport, StateCmdError> {
    let work = async {
        let mut state = read_existing(backend, stack).await?;
        let rotated = state.encryption.is_some();
        let reauthenticated = backend.codec().is_authenticated();
        if !rotated && !reauthenticated {
            return Ok(RotateReport {
                stack: stack.to_owned(),
                serial: state.serial,
                rotated,
                reauthenticated,
            });
        }
        if rotated {
            Sealer::rewrap(&mut state, old, new, KdfParams::default())?;
        }
        state.serial += 1;
        backend.write(&state).await?;
        Ok(RotateReport {
            stack: stack.to_owned(),
            serial: state.serial,
            rotated,
            reauthenticated,
        })
    };
    under_lock(backend, stack, lock_timeout, work).await
}

/// What [`forget_secrets`] removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForgetReport {
    /// Stack.
    pub stack: String,
    /// Secret outputs removed.
    pub removed: Vec<String>,
    /// Serial now stored.
    pub serial: u64,
}

/// `state forget-secrets STACK`: for a lost passphrase. Removes the stack's
/// data key and every sealed output (plain outputs and resources stay); the
/// next `up` seals its secret outputs again under the current passphrase. Stacks
/// referencing these outputs fail until then.
pub async fn forget_secrets(
    backend: &dyn StateBackend,
    stack: &str,
    lock_timeout: Duration,
) -> Result<ForgetReport, StateCmdError> {
    let work = async {
        let mut state = read_existing(backend, stack).await?;
        let removed: Vec<String> = state
            .outputs
            .iter()
            .filter(|(_, o)| matches!(o, Output::Secret(_)))
            .map(|(name, _)| name.clone())
            .collect();
        if removed.is_empty() && state.encryption.is_none() {
            return Ok(ForgetReport {
                stack: stack.to_owned(),
                removed,
                serial: state.serial,
            });
        }
        state.outputs.retain(|_, o| !matches!(o, Output::Secret(_)));
        state.encryption = None;
        state.serial += 1;
        backend.write(&state).await?;
        Ok(ForgetReport {
            stack: stack.to_owned(),
            removed,
            serial: state.serial,
        })
    };
    under_lock(backend, stack, lock_timeout, work).await
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use preview_core::ResourceId;
    use preview_core::state::ResourceRecord;
    use preview_core::state::file::FileBackend;

    use super::*;

    /// A temporary directory removed on drop (this crate has no tempfile).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let n: u64 = rand_u64();
            let p =
                std::env::temp_dir().join(format!("state-cmd-{tag}-{}-{n:x}", std::process::id()));
            std::fs::create_dir_all(&p).expect("mkdir");
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn rand_u64() -> u64 {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(std::time::SystemTime::now())
    }

    fn record(name: &str) -> ResourceRecord {
        ResourceRecord {
            id: ResourceId::kubernetes("v1", "ConfigMap", Some("ns"), name),
            depends_on: Vec::new(),
            desired_hash: "d".into(),
            live_hash: "l".into(),
            uid: None,
            protect: false,
            imported: false,
        }
    }

    /// `state import --force`.
    fn forced_import() -> ImportOptions {
        ImportOptions {
            force: true,
            ..Default::default()
        }
    }

    /// `state delete --force`.
    fn forced_delete() -> DeleteOptions {
        DeleteOptions {
            force: true,
            ..Default::default()
        }
    }

    const CANARY: &str = "canary-Zq8vX3-secret";

    async fn seeded(b: &FileBackend, stack: &str, resources: usize) -> StackState {
        let mut s = StackState::new(stack);
        let sealer = Sealer::open_or_init_with(
            &mut s,
            &SecretString::new("state-cmd test passphrase"),
            KdfParams::insecure_for_tests(),
        )
        .expect("sealer");
        s.outputs.insert(
            "password".into(),
            sealer
                .seal("password", &SecretString::new(CANARY))
                .expect("seal"),
        );
        s.outputs
            .insert("url".into(), Output::Plain(json!("https://x")));
        for i in 0..resources {
            let r = record(&format!("cm-{i}"));
            s.resources.insert(r.id.clone(), r);
        }
        s.serial = 1;
        b.write(&s).await.expect("write");
        s
    }

    #[tokio::test]
    async fn list_and_show_redact_secrets() {
        let dir = TempDir::new("show");
        let b = FileBackend::new(&dir.0);
        seeded(&b, "a", 2).await;
        seeded(&b, "b", 0).await;
        std::fs::write(dir.0.join("c.json"), b"{broken").expect("write");
        let listed = list(&b).await.expect("list");
        let names: Vec<&str> = listed.iter().map(|s| s.stack.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            (listed[0].resources, listed[0].outputs, listed[0].encrypted),
            (2, 2, true)
        );
        assert!(
            listed[2]
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("unreadable"))
        );
        let shown = show(&b, "a").await.expect("show");
        let text = serde_json::to_string_pretty(&shown).expect("json");
        assert_eq!(shown["outputs"]["password"], json!("[secret]"));
        assert_eq!(shown["outputs"]["url"], json!("https://x"));
        assert_eq!(shown["serial"], json!(1));
        assert!(!text.contains(CANARY), "{text}");
        assert!(!text.contains("xc20p1:"), "sealed value shown: {text}");
        assert!(!text.contains("wrappedKey"), "{text}");
        assert!(matches!(
            show(&b, "zzz").await,
            Err(StateCmdError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn export_then_import_into_another_backend_keeps_history() {
        let src_dir = TempDir::new("src");
        let dst_dir = TempDir::new("dst");
        let src = FileBackend::new(&src_dir.0);
        let dst = FileBackend::new(&dst_dir.0);
        let mut original = seeded(&src, "s", 1).await;
        original.serial = 2;
        src.write(&original).await.expect("write 2");
        let file = src_dir.0.join("export.json");
        let report = export_to_file(&src, "s", &file).await.expect("export");
        assert_eq!(report.serial, 2);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let exported = std::fs::read_to_string(&file).expect("read");
        assert!(!exported.contains(CANARY));

        let opts = ImportOptions::default();
        let r = import_from_file(&dst, "s", &file, &opts)
            .await
            .expect("import");
        assert_eq!((r.serial, r.replaced, r.unchanged), (2, false, false));
        assert_eq!(dst.read("s").await.expect("read"), Some(original.clone()));
        // Same file again: nothing to do.
        let again = import_from_file(&dst, "s", &file, &opts)
            .await
            .expect("again");
        assert!(again.unchanged);
        // The imported state keeps working with the engine's serial rule.
        original.serial = 3;
        dst.write(&original).await.expect("next write after import");
        // Now the file is older: refused, then forced.
        let err = import_from_file(&dst, "s", &file, &opts)
            .await
            .expect_err("older");
        assert!(
            err.to_string().contains("not newer") && !err.to_string().contains("--force"),
            "the binary words the way out: {err}"
        );
        assert!(matches!(err, StateCmdError::Refused { .. }), "{err:?}");
        let forced = import_from_file(&dst, "s", &file, &forced_import())
            .await
            .expect("forced");
        assert_eq!((forced.serial, forced.replaced), (4, true));
        // The secret still unseals with the original passphrase.
        let stored = dst.read("s").await.expect("read").expect("some");
        let sealer =
            Sealer::open(&stored, &SecretString::new("state-cmd test passphrase")).expect("open");
        assert_eq!(
            sealer
                .unseal("password", &stored.outputs["password"])
                .expect("unseal")
                .expose(),
            CANARY
        );
    }

    #[tokio::test]
    async fn import_refuses_bad_files_other_stacks_and_other_lineages() {
        let dir = TempDir::new("bad");
        let b = FileBackend::new(&dir.0);
        let file = dir.0.join("x.json");
        std::fs::write(&file, b"not json").expect("write");
        let opts = ImportOptions::default();
        let err = import_from_file(&b, "s", &file, &opts)
            .await
            .expect_err("garbage");
        assert!(
            matches!(&err, StateCmdError::File { path, .. } if path.ends_with("x.json")),
            "{err}"
        );

        // A tampered export: checksum mismatch.
        seeded(&b, "s", 0).await;
        export_to_file(&b, "s", &file).await.expect("export");
        let text = std::fs::read_to_string(&file).expect("read");
        std::fs::write(&file, text.replace("\"serial\": 1", "\"serial\": 9")).expect("tamper");
        let err = import_from_file(&b, "s", &file, &opts)
            .await
            .expect_err("tampered");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");

        // Another stack's file.
        export_to_file(&b, "s", &file).await.expect("export");
        let err = import_from_file(&b, "t", &file, &opts)
            .await
            .expect_err("other stack");
        assert!(
            err.to_string().contains("holds the state of stack \"s\""),
            "{err}"
        );

        // Another lineage: refused unless forced.
        let other = TempDir::new("other");
        let ob = FileBackend::new(&other.0);
        seeded(&ob, "s", 0).await;
        let foreign = other.0.join("f.json");
        export_to_file(&ob, "s", &foreign).await.expect("export");
        let err = import_from_file(&b, "s", &foreign, &opts)
            .await
            .expect_err("lineage");
        assert!(err.to_string().contains("another state history"), "{err}");

        // Locked stack: the import fails fast naming the holder.
        let held = b.lock("s").await.expect("lock");
        let err = import_from_file(&b, "s", &foreign, &forced_import())
            .await
            .expect_err("locked");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        held.release().await.expect("release");
    }

    #[tokio::test]
    async fn delete_refuses_while_resources_remain_unless_forced() {
        let dir = TempDir::new("delete");
        let b = FileBackend::new(&dir.0);
        seeded(&b, "s", 7).await;
        let err = delete(&b, "s", &DeleteOptions::default())
            .await
            .expect_err("resources");
        let text = err.to_string();
        assert!(
            text.contains("7 resource(s)") && !text.contains("stacks destroy"),
            "{text}"
        );
        assert!(text.contains("… 2 more"), "{text}");
        assert!(b.read("s").await.expect("read").is_some());
        let report = delete(&b, "s", &forced_delete()).await.expect("forced");
        assert_eq!(report.forgotten_resources, 7);
        assert!(b.read("s").await.expect("read").is_none());
        assert!(b.lock("s").await.is_ok(), "lock released");

        // An empty state deletes without force; a missing one is NotFound.
        seeded(&b, "e", 0).await;
        delete(&b, "e", &DeleteOptions::default())
            .await
            .expect("empty");
        assert!(matches!(
            delete(&b, "e", &DeleteOptions::default()).await,
            Err(StateCmdError::NotFound { .. })
        ));

        // A corrupt state needs --force.
        std::fs::write(dir.0.join("c.json"), b"{broken").expect("write");
        let err = delete(&b, "c", &DeleteOptions::default())
            .await
            .expect_err("corrupt");
        assert!(matches!(err, StateCmdError::Refused { .. }), "{err:?}");
        assert!(!err.to_string().contains("--force"), "{err}");
        let report = delete(&b, "c", &forced_delete())
            .await
            .expect("forced corrupt");
        assert!(report.was_corrupt);
    }

    #[tokio::test]
    async fn rotate_and_forget_secrets() {
        let dir = TempDir::new("rotate");
        let b = FileBackend::new(&dir.0);
        seeded(&b, "s", 1).await;
        let old = SecretString::new("state-cmd test passphrase");
        let new = SecretString::new("the next passphrase, rotated");
        let err = rotate_passphrase(&b, "s", &new, &new, Duration::ZERO)
            .await
            .expect_err("wrong old passphrase");
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        let r = rotate_passphrase(&b, "s", &old, &new, Duration::ZERO)
            .await
            .expect("rotate");
        assert_eq!((r.serial, r.rotated), (2, true));
        let stored = b.read("s").await.expect("read").expect("some");
        assert!(Sealer::open(&stored, &old).is_err());
        let sealer = Sealer::open(&stored, &new).expect("new passphrase");
        assert_eq!(
            sealer
                .unseal("password", &stored.outputs["password"])
                .expect("unseal")
                .expose(),
            CANARY
        );
        let f = forget_secrets(&b, "s", Duration::ZERO)
            .await
            .expect("forget");
        assert_eq!(
            (f.removed.as_slice(), f.serial),
            (["password".to_owned()].as_slice(), 3)
        );
        let stored = b.read("s").await.expect("read").expect("some");
        assert!(stored.encryption.is_none());
        assert_eq!(stored.outputs.keys().collect::<Vec<_>>(), ["url"]);
        assert_eq!(stored.resources.len(), 1);
        let again = rotate_passphrase(&b, "s", &old, &new, Duration::ZERO)
            .await
            .expect("nothing to rotate");
        assert!(!again.rotated);
    }

    const STATE_PASSPHRASE: &str = "the state passphrase of these tests";

    fn authenticated(passphrase: &str) -> Codec {
        Codec::authenticated(std::sync::Arc::new(
            preview_core::state::auth::Authenticator::with_params(
                SecretString::new(passphrase),
                KdfParams::insecure_for_tests(),
            ),
        ))
    }

    /// Format-2 state written without a passphrase is refused once a passphrase
    /// is set; the error says how to upgrade, and export + import with
    /// `--trust-unauthenticated` stores it authenticated.
    #[tokio::test]
    async fn unauthenticated_state_is_upgraded_consciously() {
        let dir = TempDir::new("upgrade");
        let plain = FileBackend::new(&dir.0);
        let original = seeded(&plain, "s", 2).await;
        let with_passphrase = FileBackend::new(&dir.0).with_codec(authenticated(STATE_PASSPHRASE));
        let err = show(&with_passphrase, "s")
            .await
            .expect_err("unauthenticated");
        let text = err.to_string();
        assert!(
            text.contains(
                "is not authentic: it is format 2 state, which carries no authentication tag"
            ),
            "{text}"
        );
        assert!(
            !text.contains("--trust-unauthenticated"),
            "the binary words the way out: {text}"
        );
        // Nothing else gets through either: import, a plain write.
        let file = dir.0.join("s-export.json");
        let err = export_to_file(&with_passphrase, "s", &file)
            .await
            .expect_err("export without trust");
        assert!(err.to_string().contains("not authentic"), "{err}");
        let mut next = original.clone();
        next.serial = 2;
        assert!(
            with_passphrase.write(&next).await.is_err(),
            "never overwritten"
        );

        // The conscious path: export it (unauthenticated, for review) …
        let trusting = FileBackend::new(&dir.0)
            .with_codec(authenticated(STATE_PASSPHRASE).trusting_unauthenticated());
        let report = export_to_file(&trusting, "s", &file).await.expect("export");
        assert_eq!((report.serial, report.authenticated), (1, false));
        let exported = std::fs::read_to_string(&file).expect("read");
        assert!(exported.starts_with("{\n  \"format\": 2"), "{exported}");
        // … importing it without trust says what to do …
        let err = import_from_file(&with_passphrase, "s", &file, &ImportOptions::default())
            .await
            .expect_err("file not authentic");
        assert!(
            err.to_string().contains("not authentic")
                && !err.to_string().contains("--trust-unauthenticated"),
            "the binary words the way out: {err}"
        );
        // … and with trust it is stored authenticated, at the next serial.
        let r = import_from_file(&trusting, "s", &file, &ImportOptions::default())
            .await
            .expect("import");
        assert_eq!(
            (r.serial, r.replaced, r.unchanged, r.authenticated),
            (2, false, false, true)
        );
        let stored = std::fs::read_to_string(dir.0.join("s.json")).expect("stored");
        assert!(stored.starts_with("{\n  \"format\": 3"), "{stored}");
        let read = with_passphrase
            .read("s")
            .await
            .expect("authentic")
            .expect("some");
        assert_eq!(read.resources, original.resources);
        assert_eq!(read.outputs, original.outputs);
        // Another passphrase does not read it; without one it is read (checksum
        // only) but never overwritten.
        let other = FileBackend::new(&dir.0).with_codec(authenticated("some other passphrase!"));
        assert!(matches!(
            other.read("s").await,
            Err(StateError::NotAuthentic { .. })
        ));
        assert_eq!(plain.read("s").await.expect("read"), Some(read.clone()));
        let mut downgrade = read.clone();
        downgrade.serial += 1;
        let err = plain.write(&downgrade).await.expect_err("no downgrade");
        assert!(
            err.to_string()
                .contains("authenticated (format 3) and no state passphrase is set"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.0.join("s.json")).expect("kept"),
            stored
        );
        // An authenticated export imports into another backend without trust.
        let authenticated_file = dir.0.join("s-authenticated.json");
        let report = export_to_file(&with_passphrase, "s", &authenticated_file)
            .await
            .expect("export");
        assert!(report.authenticated);
        let elsewhere = TempDir::new("upgrade-dst");
        let dst = FileBackend::new(&elsewhere.0).with_codec(authenticated(STATE_PASSPHRASE));
        let r = import_from_file(&dst, "s", &authenticated_file, &ImportOptions::default())
            .await
            .expect("import");
        assert_eq!(r.serial, 2);
    }

    #[tokio::test]
    async fn rotation_reauthenticates_the_document() {
        let dir = TempDir::new("rotate-auth");
        let old = SecretString::new(STATE_PASSPHRASE);
        let new = SecretString::new("the next passphrase, rotated");
        let before = FileBackend::new(&dir.0).with_codec(authenticated(STATE_PASSPHRASE));
        let mut s = StackState::new("s");
        s.serial = 1;
        before.write(&s).await.expect("write");
        let rotating =
            FileBackend::new(&dir.0).with_codec(Codec::authenticated(std::sync::Arc::new(
                preview_core::state::auth::Authenticator::with_params(
                    new.clone(),
                    KdfParams::insecure_for_tests(),
                )
                .rotating_from(old.clone()),
            )));
        let r = rotate_passphrase(&rotating, "s", &old, &new, Duration::ZERO)
            .await
            .expect("rotate");
        assert_eq!((r.serial, r.rotated, r.reauthenticated), (2, false, true));
        let after =
            FileBackend::new(&dir.0).with_codec(authenticated("the next passphrase, rotated"));
        assert_eq!(
            after.read("s").await.expect("new").map(|s| s.serial),
            Some(2)
        );
        let stale = FileBackend::new(&dir.0).with_codec(authenticated(STATE_PASSPHRASE));
        assert!(matches!(
            stale.read("s").await,
            Err(StateError::NotAuthentic { .. })
        ));
    }

    #[tokio::test]
    async fn break_lock_names_the_holder() {
        let dir = TempDir::new("break");
        let b = FileBackend::new(&dir.0);
        assert_eq!(break_lock(&b, "s").await.expect("unlocked"), None);
        let held = b.lock("s").await.expect("lock");
        let holder = break_lock(&b, "s").await.expect("break").expect("holder");
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        let again = b.lock("s").await.expect("relock after break");
        // The broken guard must not remove the new holder's lock.
        held.release().await.expect("release broken");
        assert!(b.lock("s").await.is_err(), "new holder keeps its lock");
        drop(again);
    }
}
