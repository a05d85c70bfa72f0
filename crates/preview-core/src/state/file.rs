//! Local-file state backend: one JSON document per stack in a directory.
//!
//! `file://DIR` keeps `DIR/<stack>.json` (the state) and `DIR/<stack>.lock`
//! (the lock, created with `O_EXCL`, naming host, pid and start time). Writes go
//! to a temporary file in the same directory, are fsynced, then renamed over the
//! old file, so a crash leaves either the old or the new state, never a mix.
//! A lock whose holder process no longer exists on this host is stale and is
//! taken over; on another host it must be broken explicitly
//! (`stacks state break-lock STACK`).
//!
//! Documents are encoded and decoded by the backend's [`Codec`] (authenticated
//! when a state passphrase is set); the stored document is decoded again inside
//! every write, so one that fails its checksum or its authentication is never
//! overwritten.
//!
//! The read-check-rename of a write runs under an exclusive `flock` on
//! `DIR/.<stack>.write-lock`, so concurrent writers (even without the stack
//! lock) cannot both pass the serial check: exactly one wins per serial.
//!
//! Records (`records`) live in `DIR/<kind>/<name>.json`.

mod records;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;

use super::format::{Codec, Purpose};
use super::{
    StackLock, StackState, StateBackend, StateError, WriteRule, check_stack_name, check_write,
    host_name,
};

/// The file backend.
#[derive(Clone, Debug)]
pub struct FileBackend {
    dir: PathBuf,
    codec: Codec,
}

fn io_err(backend: &FileBackend, message: String, e: std::io::Error) -> StateError {
    StateError::Io {
        backend: backend.describe(),
        message,
        source: Some(Box::new(e)),
    }
}

impl FileBackend {
    /// A backend storing states in `dir` (created on first write), without a
    /// state passphrase ([`Codec::plain`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileBackend {
            dir: dir.into(),
            codec: Codec::plain(),
        }
    }

    /// The same backend reading and writing through `codec`.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self, stack: &str) -> PathBuf {
        self.dir.join(format!("{stack}.json"))
    }

    fn lock_path(&self, stack: &str) -> PathBuf {
        self.dir.join(format!("{stack}.lock"))
    }

    fn read_sync(&self, stack: &str, purpose: Purpose) -> Result<Option<StackState>, StateError> {
        check_stack_name(stack)?;
        let path = self.state_path(stack);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(self, format!("cannot read {}", path.display()), e)),
        };
        self.codec
            .decode(&bytes, stack, purpose)
            .map(Some)
            .map_err(|e| e.at(stack, path.display().to_string()))
    }

    fn write_lock_path(&self, stack: &str) -> PathBuf {
        self.dir.join(format!(".{stack}.write-lock"))
    }

    fn write_sync(&self, state: &StackState, rule: &WriteRule) -> Result<(), StateError> {
        check_stack_name(&state.stack)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| io_err(self, format!("cannot create {}", self.dir.display()), e))?;
        // Serialise writers of this stack (blocking; held for milliseconds).
        let guard = self.write_guard(&state.stack)?;
        let stored = self.read_sync(&state.stack, Purpose::Write)?;
        check_write(stored.as_ref(), state, rule)?;
        let bytes = self.codec.encode(state).map_err(|message| StateError::Io {
            backend: self.describe(),
            message,
            source: None,
        })?;
        let path = self.state_path(&state.stack);
        let tmp = self
            .dir
            .join(format!(".{}.json.tmp-{}", state.stack, std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        let result = write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(self, format!("cannot write {}", path.display()), e)
        });
        drop(guard);
        result
    }
}

/// Who holds a lock, as written into the lock file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Holder {
    host: String,
    pid: u32,
    started: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} since {}",
            self.pid, self.host, self.started
        )
    }
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The lock file: the holder plus a random token of this acquisition (so a
/// guard whose lock was broken and re-taken never removes the new lock).
#[derive(serde::Serialize, serde::Deserialize)]
struct LockFile {
    #[serde(flatten)]
    holder: Holder,
    #[serde(default)]
    token: String,
}

fn read_lock_file(path: &Path) -> Option<LockFile> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn read_holder(path: &Path) -> Option<Holder> {
    read_lock_file(path).map(|f| f.holder)
}

/// A held file lock; removes the lock file on release or drop, if it is still
/// this lock's file (a broken and re-taken lock is left to its new holder).
struct FileLock {
    path: PathBuf,
    token: String,
    released: bool,
}

impl FileLock {
    fn remove(&mut self) -> std::io::Result<()> {
        self.released = true;
        if read_lock_file(&self.path).map(|f| f.token).as_deref() != Some(self.token.as_str()) {
            return Ok(());
        }
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl StackLock for FileLock {
    async fn release(mut self: Box<Self>) -> Result<(), StateError> {
        self.remove().map_err(|e| StateError::Io {
            backend: "file".into(),
            message: format!("cannot remove lock {}", self.path.display()),
            source: Some(Box::new(e)),
        })
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.remove();
        }
    }
}

impl FileBackend {
    fn lock_sync(&self, stack: &str) -> Result<FileLock, StateError> {
        check_stack_name(stack)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| io_err(self, format!("cannot create {}", self.dir.display()), e))?;
        let path = self.lock_path(stack);
        let me = Holder {
            host: host_name(),
            pid: std::process::id(),
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        // The lock file appears with its content in one step (hard link of a
        // complete temporary file), so a competitor never reads an empty lock.
        let nonce: u64 = rand::random();
        let tmp = self
            .dir
            .join(format!(".{stack}.lock.tmp-{}-{nonce:x}", me.pid));
        let token = hex::encode(rand::random::<[u8; 8]>());
        let file = LockFile {
            holder: me.clone(),
            token: token.clone(),
        };
        let body = serde_json::to_vec(&file).map_err(|e| StateError::Io {
            backend: self.describe(),
            message: format!("cannot encode lock holder: {e}"),
            source: None,
        })?;
        let prepare = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()
        };
        prepare().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(self, format!("cannot write lock {}", tmp.display()), e)
        })?;
        let result = self.link_lock(stack, &tmp, &path, &me);
        let _ = std::fs::remove_file(&tmp);
        result.map(|()| FileLock {
            path,
            token,
            released: false,
        })
    }

    fn link_lock(
        &self,
        stack: &str,
        tmp: &Path,
        path: &Path,
        me: &Holder,
    ) -> Result<(), StateError> {
        for _ in 0..2 {
            match std::fs::hard_link(tmp, path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match read_holder(path) {
                        Some(h) if h.host == me.host && !process_alive(h.pid) => {
                            self.remove_if_held_by(stack, &h)?;
                        }
                        Some(h) => {
                            return Err(StateError::Locked {
                                stack: stack.to_owned(),
                                holder: h.to_string(),
                            });
                        }
                        None => {
                            return Err(StateError::Locked {
                                stack: stack.to_owned(),
                                holder: format!("an unreadable lock file {}", path.display()),
                            });
                        }
                    }
                }
                Err(e) => {
                    return Err(io_err(
                        self,
                        format!("cannot create lock {}", path.display()),
                        e,
                    ));
                }
            }
        }
        Err(StateError::Locked {
            stack: stack.to_owned(),
            holder: "a run that took the lock while this one was breaking a stale lock".into(),
        })
    }

    /// Removes the lock file of a dead holder, under the stack's write guard, and
    /// only if it still names that holder (two runs taking over the same stale
    /// lock must not remove each other's fresh lock).
    fn remove_if_held_by(&self, stack: &str, dead: &Holder) -> Result<(), StateError> {
        let guard = self.write_guard(stack)?;
        let path = self.lock_path(stack);
        if read_holder(&path).as_ref() == Some(dead) {
            tracing::warn!(stack, holder = %dead, "taking over the lock of a process that no longer exists");
            let _ = std::fs::remove_file(&path);
        }
        drop(guard);
        Ok(())
    }

    fn write_guard(&self, stack: &str) -> Result<std::fs::File, StateError> {
        let guard_path = self.write_lock_path(stack);
        let guard = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&guard_path)
            .map_err(|e| io_err(self, format!("cannot open {}", guard_path.display()), e))?;
        guard
            .lock()
            .map_err(|e| io_err(self, format!("cannot lock {}", guard_path.display()), e))?;
        Ok(guard)
    }

    fn break_lock_sync(&self, stack: &str) -> Result<Option<String>, StateError> {
        check_stack_name(stack)?;
        let path = self.lock_path(stack);
        let holder = read_holder(&path).map(|h| h.to_string());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(Some(
                holder.unwrap_or_else(|| "an unreadable lock file".into()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(self, "cannot remove lock".into(), e)),
        }
    }
}

#[async_trait]
impl StateBackend for FileBackend {
    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn codec(&self) -> &Codec {
        &self.codec
    }

    async fn read(&self, stack: &str) -> Result<Option<StackState>, StateError> {
        self.read_sync(stack, Purpose::Read)
    }

    async fn write_with(&self, state: &StackState, rule: &WriteRule) -> Result<(), StateError> {
        let this = self.clone();
        let state = state.clone();
        let rule = rule.clone();
        tokio::task::spawn_blocking(move || this.write_sync(&state, &rule))
            .await
            .map_err(|e| StateError::Io {
                backend: self.describe(),
                message: format!("state write task failed: {e}"),
                source: None,
            })?
    }

    async fn delete(&self, stack: &str) -> Result<(), StateError> {
        check_stack_name(stack)?;
        match std::fs::remove_file(self.state_path(stack)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(self, "cannot delete state".into(), e)),
        }
    }

    async fn list(&self) -> Result<Vec<String>, StateError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(io_err(
                    self,
                    format!("cannot list {}", self.dir.display()),
                    e,
                ));
            }
        };
        let mut stacks: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stack = name.strip_suffix(".json")?;
                (!stack.starts_with('.')).then(|| stack.to_owned())
            })
            .collect();
        stacks.sort();
        Ok(stacks)
    }

    async fn lock(&self, stack: &str) -> Result<Box<dyn StackLock>, StateError> {
        Ok(Box::new(self.lock_sync(stack)?))
    }

    async fn break_lock(&self, stack: &str) -> Result<Option<String>, StateError> {
        self.break_lock_sync(stack)
    }

    async fn read_record(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.read_record_sync(kind, name)
    }

    async fn swap_record(
        &self,
        kind: &str,
        name: &str,
        expected: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), StateError> {
        let (this, kind, name) = (self.clone(), kind.to_owned(), name.to_owned());
        let (expected, body) = (expected.map(<[u8]>::to_vec), body.to_vec());
        tokio::task::spawn_blocking(move || {
            this.swap_record_sync(&kind, &name, expected.as_deref(), &body)
        })
        .await
        .map_err(|e| StateError::Io {
            backend: self.describe(),
            message: format!("record write task failed: {e}"),
            source: None,
        })?
    }

    async fn list_records(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        self.list_records_sync(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_read_round_trip_and_serial_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = FileBackend::new(dir.path());
        assert!(b.read("s").await.expect("read").is_none());
        let mut s = StackState::new("s");
        s.serial = 1;
        b.write(&s).await.expect("first write");
        assert_eq!(b.read("s").await.expect("read"), Some(s.clone()));
        // Same serial again: stale.
        let err = b.write(&s).await.expect_err("stale");
        assert!(err.to_string().contains("stored serial is 1"), "{err}");
        // Other lineage: refused.
        let mut other = StackState::new("s");
        other.serial = 2;
        assert!(
            b.write(&other)
                .await
                .expect_err("lineage")
                .to_string()
                .contains("lineage")
        );
        s.serial = 2;
        b.write(&s).await.expect("next write");
        assert_eq!(b.list().await.expect("list"), vec!["s".to_owned()]);
    }

    #[tokio::test]
    async fn corrupt_state_is_refused_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = FileBackend::new(dir.path());
        std::fs::write(dir.path().join("s.json"), b"{not json").expect("write");
        let err = b.read("s").await.expect_err("corrupt");
        assert!(err.to_string().contains("unreadable"), "{err}");
        let mut s = StackState::new("s");
        s.serial = 1;
        assert!(
            b.write(&s).await.is_err(),
            "must not overwrite corrupt state"
        );
        assert_eq!(
            std::fs::read(dir.path().join("s.json")).expect("kept"),
            b"{not json"
        );
    }

    #[tokio::test]
    async fn second_lock_names_the_holder_and_stacks_do_not_block_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = FileBackend::new(dir.path());
        let held = b.lock("a").await.expect("lock a");
        let err = b.lock("a").await.err().expect("locked");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        let other = b.lock("b").await.expect("lock b");
        held.release().await.expect("release");
        let again = b.lock("a").await.expect("relock");
        drop(again);
        drop(other);
        assert!(b.lock("a").await.is_ok());
    }

    #[tokio::test]
    async fn stale_lock_of_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = FileBackend::new(dir.path());
        let dead = Holder {
            host: host_name(),
            pid: u32::MAX - 1,
            started: "2026-01-01T00:00:00Z".into(),
        };
        std::fs::write(
            dir.path().join("a.lock"),
            serde_json::to_vec(&dead).expect("json"),
        )
        .expect("write");
        assert!(b.lock("a").await.is_ok());
    }

    #[tokio::test]
    async fn path_like_stack_names_are_rejected() {
        let b = FileBackend::new("/tmp/never-used");
        assert!(b.read("../etc/passwd").await.is_err());
    }
}
