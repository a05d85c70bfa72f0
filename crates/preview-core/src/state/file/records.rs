//! Records of the file backend: `DIR/<kind>/<name>.json` (e.g.
//! `DIR/tested-images/pr-12.json`), beside the stack states and never listed or
//! deleted with them. A swap runs under an exclusive `flock` on
//! `DIR/<kind>/.<name>.write-lock`: it reads the stored bytes, compares them with
//! what the caller read, writes a temporary file, fsyncs it and renames it over
//! the record, so a crash leaves the old or the new record, never a mix.

use std::io::Write;
use std::path::PathBuf;

use super::{FileBackend, io_err};
use crate::state::{StateError, check_record_key};

impl FileBackend {
    fn record_dir(&self, kind: &str) -> PathBuf {
        self.dir().join(kind)
    }

    fn record_path(&self, kind: &str, name: &str) -> PathBuf {
        self.record_dir(kind).join(format!("{name}.json"))
    }

    pub(super) fn read_record_sync(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StateError> {
        check_record_key(kind, name)?;
        let path = self.record_path(kind, name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(self, format!("cannot read {}", path.display()), e)),
        }
    }

    pub(super) fn swap_record_sync(
        &self,
        kind: &str,
        name: &str,
        expected: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), StateError> {
        check_record_key(kind, name)?;
        let dir = self.record_dir(kind);
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_err(self, format!("cannot create {}", dir.display()), e))?;
        let guard_path = dir.join(format!(".{name}.write-lock"));
        let guard = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&guard_path)
            .map_err(|e| io_err(self, format!("cannot open {}", guard_path.display()), e))?;
        guard
            .lock()
            .map_err(|e| io_err(self, format!("cannot lock {}", guard_path.display()), e))?;
        let stored = self.read_record_sync(kind, name)?;
        if stored.as_deref() != expected {
            return Err(StateError::Stale {
                stack: format!("{kind}/{name}"),
                message: "another writer changed the record after it was read".into(),
            });
        }
        let path = self.record_path(kind, name);
        let tmp = dir.join(format!(".{name}.json.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        let result = write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(self, format!("cannot write {}", path.display()), e)
        });
        drop(guard);
        result
    }

    pub(super) fn list_records_sync(
        &self,
        kind: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        check_record_key(kind, "x")?;
        let dir = self.record_dir(kind);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(self, format!("cannot list {}", dir.display()), e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                let name = file.strip_suffix(".json")?;
                check_record_key(kind, name).ok().map(|()| name.to_owned())
            })
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            // A record is never deleted, so one listed is still there.
            if let Some(bytes) = self.read_record_sync(kind, &name)? {
                out.push((name, bytes));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateBackend;

    #[tokio::test]
    async fn swap_is_compare_and_swap_and_records_stay_apart_from_states() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = FileBackend::new(dir.path());
        assert_eq!(
            b.read_record("tested-images", "pr-1").await.expect("read"),
            None
        );
        b.swap_record("tested-images", "pr-1", None, b"one")
            .await
            .expect("create");
        let err = b
            .swap_record("tested-images", "pr-1", None, b"two")
            .await
            .expect_err("exists");
        assert!(matches!(err, StateError::Stale { .. }), "{err}");
        let err = b
            .swap_record("tested-images", "pr-1", Some(b"other"), b"two")
            .await
            .expect_err("moved");
        assert!(matches!(err, StateError::Stale { .. }), "{err}");
        b.swap_record("tested-images", "pr-1", Some(b"one"), b"two")
            .await
            .expect("swap");
        assert_eq!(
            b.read_record("tested-images", "pr-1").await.expect("read"),
            Some(b"two".to_vec())
        );
        assert!(dir.path().join("tested-images/pr-1.json").exists());
        // Not a stack, and not removed with one.
        assert!(b.list().await.expect("list").is_empty());
        b.delete("pr-1").await.expect("delete");
        assert_eq!(
            b.list_records("tested-images").await.expect("list"),
            vec![("pr-1".to_owned(), b"two".to_vec())]
        );
        assert!(b.read_record("tested-images", "../x").await.is_err());
        assert!(b.read_record("Tested", "pr-1").await.is_err());
    }
}
