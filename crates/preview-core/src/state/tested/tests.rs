//! Unit tests of the tested-images record: format, append rules, look-ups.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::state::file::FileBackend;
use crate::state::{StackLock, StackState, WriteRule};

fn image(component: &str, n: u64) -> String {
    format!("registry.example/app/{component}@sha256:{n:064x}")
}

fn images(n: u64) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("api".to_owned(), image("api", n + 1000)),
        ("web".to_owned(), image("web", n)),
    ])
}

fn commit(n: u64) -> String {
    format!("{n:040x}")
}

fn entry(n: u64, commit_n: Option<u64>) -> TestedEntry {
    TestedEntry::now(commit_n.map(commit), images(n), "preview-pr-7", "lin", n)
}

#[test]
fn round_trip_and_layout() {
    let record = TestedRecord {
        pr: 7,
        entries: vec![entry(1, Some(1)), entry(2, None)],
    };
    let bytes = encode(&record).expect("encode");
    assert_eq!(decode(&bytes).expect("decode"), record);
    let text = String::from_utf8(bytes).expect("utf8");
    assert!(
        text.starts_with("{\n  \"format\": 1,\n  \"kind\": \"tested-images\",\n  \"sha256\": \""),
        "{text}"
    );
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let first = &doc["record"]["entries"][0];
    assert_eq!(first["commit"], commit(1));
    assert_eq!(first["images"]["web"], image("web", 1));
    assert_eq!(first["stack"], "preview-pr-7");
    assert!(first["recordedAt"].as_str().expect("time").ends_with('Z'));
    assert!(doc["record"]["entries"][1]["commit"].is_null());
}

#[test]
fn tampering_other_kinds_and_formats_are_refused() {
    let record = TestedRecord {
        pr: 7,
        entries: vec![entry(1, Some(1))],
    };
    let text = String::from_utf8(encode(&record).expect("encode")).expect("utf8");
    // A digest swapped by hand.
    let forged = text.replace(&format!("{:064x}", 1), &format!("{:064x}", 9));
    assert_ne!(forged, text);
    assert!(
        decode(forged.as_bytes())
            .expect_err("forged")
            .contains("checksum mismatch")
    );
    let other = text.replace("\"kind\": \"tested-images\"", "\"kind\": \"plans\"");
    assert!(
        decode(other.as_bytes())
            .expect_err("kind")
            .contains("\"plans\"")
    );
    let future = text.replace("\"format\": 1", "\"format\": 2");
    assert!(
        decode(future.as_bytes())
            .expect_err("format")
            .contains("format 2")
    );
    assert!(decode(b"").is_err());
    assert!(decode(b"{\"format\": 1}").is_err());
}

#[test]
fn entries_must_be_pinned_and_well_formed() {
    let bad_image = {
        let mut e = entry(1, Some(1));
        e.images
            .insert("web".into(), "registry.example/web:latest".into());
        e
    };
    assert!(bad_image.problem().expect("tag").contains("not pinned"));
    let upper = {
        let mut e = entry(1, Some(1));
        e.images
            .insert("web".into(), format!("r/web@sha256:{}", "A".repeat(64)));
        e
    };
    assert!(upper.problem().is_some());
    let short_commit = {
        let mut e = entry(1, None);
        e.commit = Some("abc1234".into());
        e
    };
    assert!(
        short_commit
            .problem()
            .expect("short")
            .contains("full commit")
    );
    let empty = TestedEntry::now(None, BTreeMap::new(), "s", "l", 1);
    assert!(empty.problem().is_some());
    assert_eq!(entry(1, Some(1)).problem(), None);

    // A stored record with such an entry is refused, even with a valid checksum.
    let record = TestedRecord {
        pr: 7,
        entries: vec![entry(1, Some(1)), bad_image],
    };
    let err = decode(&encode(&record).expect("encode")).expect_err("bad entry");
    assert!(err.starts_with("entry 2: image web"), "{err}");
}

#[test]
fn commit_and_digest_checks() {
    assert!(check_commit(&commit(5)).is_ok());
    assert!(check_commit(&"a".repeat(64)).is_ok());
    for bad in ["", "abc", &"A".repeat(40), &"g".repeat(40), &"a".repeat(41)] {
        assert!(check_commit(bad).is_err(), "{bad}");
    }
    assert_eq!(pinned_problem(&image("web", 3)), None);
    assert!(pinned_problem("web@sha256:abc").is_some());
    assert!(pinned_problem(&format!("@sha256:{}", "a".repeat(64))).is_some());
    assert!(pinned_problem(&format!("w eb@sha256:{}", "a".repeat(64))).is_some());
}

/// A file backend that counts record writes.
struct Counting {
    inner: FileBackend,
    swaps: AtomicUsize,
}

#[async_trait]
impl StateBackend for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn codec(&self) -> &crate::state::format::Codec {
        self.inner.codec()
    }
    async fn read(&self, stack: &str) -> Result<Option<StackState>, StateError> {
        self.inner.read(stack).await
    }
    async fn write_with(&self, state: &StackState, rule: &WriteRule) -> Result<(), StateError> {
        self.inner.write_with(state, rule).await
    }
    async fn delete(&self, stack: &str) -> Result<(), StateError> {
        self.inner.delete(stack).await
    }
    async fn list(&self) -> Result<Vec<String>, StateError> {
        self.inner.list().await
    }
    async fn lock(&self, stack: &str) -> Result<Box<dyn StackLock>, StateError> {
        self.inner.lock(stack).await
    }
    async fn break_lock(&self, stack: &str) -> Result<Option<String>, StateError> {
        self.inner.break_lock(stack).await
    }
    async fn read_record(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.inner.read_record(kind, name).await
    }
    async fn swap_record(
        &self,
        kind: &str,
        name: &str,
        expected: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), StateError> {
        self.swaps.fetch_add(1, Ordering::SeqCst);
        self.inner.swap_record(kind, name, expected, body).await
    }
    async fn list_records(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        self.inner.list_records(kind).await
    }
}

#[tokio::test]
async fn append_keeps_a_history_and_skips_an_unchanged_test() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Counting {
        inner: FileBackend::new(dir.path()),
        swaps: AtomicUsize::new(0),
    };
    assert_eq!(read(&b, 7).await.expect("read"), None);
    assert_eq!(
        append(&b, 7, entry(1, Some(1))).await.expect("first"),
        Appended::Added(1)
    );
    // The same commit and images again (a no-op `up`): nothing is written.
    assert_eq!(
        append(&b, 7, entry(1, Some(1))).await.expect("again"),
        Appended::Unchanged
    );
    assert_eq!(b.swaps.load(Ordering::SeqCst), 1);
    // Same images, new commit; then new images.
    assert_eq!(
        append(&b, 7, entry(1, Some(2))).await.expect("commit"),
        Appended::Added(2)
    );
    assert_eq!(
        append(&b, 7, entry(3, Some(3))).await.expect("images"),
        Appended::Added(3)
    );
    // Going back to an earlier test is a new entry: history is never rewritten.
    assert_eq!(
        append(&b, 7, entry(1, Some(1))).await.expect("back"),
        Appended::Added(4)
    );
    let record = read(&b, 7).await.expect("read").expect("present");
    let commits: Vec<String> = record
        .entries
        .iter()
        .map(TestedEntry::short_commit)
        .collect();
    assert_eq!(
        commits,
        [1, 2, 3, 1].map(|n| commit(n)[..12].to_owned()).to_vec()
    );
    assert_eq!(record.latest().expect("latest").images, images(1));
    assert_eq!(b.swaps.load(Ordering::SeqCst), 4);
    // Another PR is another record; the stack list is untouched.
    append(&b, 8, entry(5, Some(5))).await.expect("pr 8");
    let prs: Vec<u64> = all(&b).await.expect("all").iter().map(|r| r.pr).collect();
    assert_eq!(prs, [7, 8]);
    assert!(b.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn bad_entries_are_refused_before_any_write_and_damage_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = FileBackend::new(dir.path());
    let mut bad = entry(1, Some(1));
    bad.images.insert("web".into(), "web:1".into());
    let err = append(&b, 7, bad).await.expect_err("refused");
    assert!(err.to_string().contains("refusing to record"), "{err}");
    assert!(!dir.path().join("tested-images").exists());

    append(&b, 7, entry(1, Some(1))).await.expect("append");
    let path = dir.path().join("tested-images/pr-7.json");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("\"serial\": 1", "\"serial\": 2")).expect("damage");
    let err = read(&b, 7).await.expect_err("damaged");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    // An append does not overwrite a damaged record.
    assert!(append(&b, 7, entry(2, Some(2))).await.is_err());
    assert!(
        std::fs::read_to_string(&path)
            .expect("kept")
            .contains("\"serial\": 2")
    );

    // A record stored under another PR's name is refused.
    let moved = dir.path().join("tested-images/pr-9.json");
    std::fs::write(&moved, text).expect("copy");
    let err = read(&b, 9).await.expect_err("moved");
    assert!(err.to_string().contains("records pull request 7"), "{err}");
}

#[tokio::test]
async fn concurrent_appends_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b: Arc<dyn StateBackend> = Arc::new(FileBackend::new(dir.path()));
    let tasks: Vec<_> = (0..6u64)
        .map(|n| {
            let b = b.clone();
            tokio::spawn(async move { append(b.as_ref(), 7, entry(n, Some(n))).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(
            t.await.expect("join").expect("append"),
            Appended::Added(_)
        ));
    }
    let record = read(b.as_ref(), 7).await.expect("read").expect("present");
    let mut serials: Vec<u64> = record.entries.iter().map(|e| e.serial).collect();
    serials.sort_unstable();
    assert_eq!(serials, (0..6).collect::<Vec<_>>());
}

fn at(mut e: TestedEntry, time: &str) -> TestedEntry {
    e.recorded_at = time.to_owned();
    e
}

#[test]
fn look_ups_by_commit_and_images() {
    let records = vec![
        TestedRecord {
            pr: 7,
            entries: vec![
                at(entry(1, Some(0xabc1)), "2026-01-01T00:00:00Z"),
                at(entry(2, Some(0xabc2)), "2026-01-02T00:00:00Z"),
            ],
        },
        TestedRecord {
            pr: 8,
            entries: vec![at(entry(3, Some(0xabc1)), "2026-01-03T00:00:00Z")],
        },
    ];
    // The same commit tested in two PRs: the later test wins.
    let found = find_commit(&records, &commit(0xabc1))
        .expect("unambiguous")
        .expect("found");
    assert_eq!((found.pr, found.entry.images.clone()), (8, images(3)));
    // A prefix shared by two commits is ambiguous; a unique prefix works.
    let shared = &commit(0xabc1)[..38];
    let err = find_commit(&records, shared).expect_err("ambiguous");
    assert!(err.contains("ambiguous"), "{err}");
    let found = find_commit(&records, &commit(0xabc2))
        .expect("ok")
        .expect("found");
    assert_eq!(found.pr, 7);
    let mut distinct = records.clone();
    let mut e = entry(4, None);
    e.commit = Some(format!("fedcba9{}", "0".repeat(33)));
    distinct[1].entries.push(e);
    let found = find_commit(&distinct, "fedcba9")
        .expect("unique prefix")
        .expect("found");
    assert_eq!((found.pr, found.entry.serial), (8, 4));
    assert_eq!(find_commit(&records, &commit(0xdead)).expect("ok"), None);

    assert_eq!(find_images(&records, &images(2)).map(|f| f.pr), Some(7));
    assert_eq!(find_images(&records, &images(9)), None);
    // A pair never tested together is not found, although each image was tested.
    let mixed = BTreeMap::from([
        ("api".to_owned(), images(1)["api"].clone()),
        ("web".to_owned(), images(2)["web"].clone()),
    ]);
    assert_eq!(find_images(&records, &mixed), None);
    assert!(ever_tested(&records, &images(1)["api"]));
    assert!(!ever_tested(&records, &image("web", 77)));
    assert_eq!(
        records[0]
            .latest_for_commit(&commit(0xabc1))
            .map(|e| e.serial),
        Some(1)
    );
}
