//! The three state backends against real parts: the file backend in a temp dir,
//! the Kubernetes backend against the test kit's real `kube-apiserver` (v1.20),
//! and the PostgreSQL backend against the kit's real PostgreSQL 15.
//!
//! One conformance suite runs against each backend (round trip, serial and
//! lineage rules, refusal of tampered state, lock contention naming the holder,
//! independent stacks, break-lock, release on drop), followed by concurrency
//! (20 lockers, 20 racing writers, 20 stacks), the secret canary, and
//! backend-specific behaviour: Kubernetes chunking and Lease expiry, PostgreSQL
//! per-stack advisory locks released by the server when a session dies.
//! `authenticity_*`: with a state passphrase, forged documents (a record, an
//! output, the serial, a downgrade to an unauthenticated format) are refused on
//! every backend and never overwritten, and older state is upgraded only with
//! explicit trust.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::future::join_all;
use integration_tests::{create_namespace, fresh_database, poll_until, store_client};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use preview_core::engine::{Engine, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::observe::DryRun;
use preview_core::provider::{Provider, ProviderError, WaitOptions};
use preview_core::secret::SecretString;
use preview_core::state::auth::Authenticator;
use preview_core::state::crypto::KdfParams;
use preview_core::state::crypto::Sealer;
use preview_core::state::file::FileBackend;
use preview_core::state::format::Codec;
use preview_core::state::{
    LockHolder, Output, ResourceRecord, StackLock, StackState, StateBackend, StateError, format,
    lock_with_timeout,
};
use preview_core::{ProviderName, Resource, ResourceId};
use preview_envs::{BackendOptions, open_backend, open_backend_with};
use preview_kubernetes::state::KubeBackend;
use preview_kubernetes::state::lease::{lease_name, micro_ago, now_micro};
use serde_json::json;
use testkit::{TestCluster, TestPostgres};

/// A short lease so that expiry tests take seconds (the default is 20 s).
const TEST_LEASE: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Kube,
    Pg,
}

/// A backend plus what the test needs to reach its raw storage.
struct Fixture {
    kind: Kind,
    backend: Arc<dyn StateBackend>,
    dir: Option<tempfile::TempDir>,
    kube: Option<(kube::Client, String)>,
    pg_url: Option<String>,
}

async fn file_fixture(codec: Codec) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    Fixture {
        kind: Kind::File,
        backend: Arc::new(FileBackend::new(dir.path()).with_codec(codec)),
        dir: Some(dir),
        kube: None,
        pg_url: None,
    }
}

async fn kube_fixture(codec: Codec) -> Fixture {
    let client = store_client().await.expect("cluster client");
    let ns = create_namespace(&client, "state").await.expect("namespace");
    let backend = KubeBackend::new(client.clone(), &ns)
        .with_codec(codec)
        .with_lease_duration(TEST_LEASE)
        .expect("lease duration");
    Fixture {
        kind: Kind::Kube,
        backend: Arc::new(backend),
        dir: None,
        kube: Some((client, ns)),
        pg_url: None,
    }
}

async fn pg_fixture(codec: Codec) -> Fixture {
    let url = fresh_database("state").await.expect("fresh database");
    let options = BackendOptions {
        codec,
        ..BackendOptions::default()
    };
    let backend = open_backend_with(&url, None, &options)
        .await
        .expect("open pg backend");
    Fixture {
        kind: Kind::Pg,
        backend,
        dir: None,
        kube: None,
        pg_url: Some(url),
    }
}

async fn fixture(kind: Kind) -> Fixture {
    fixture_with(kind, Codec::plain()).await
}

async fn fixture_with(kind: Kind, codec: Codec) -> Fixture {
    match kind {
        Kind::File => file_fixture(codec).await,
        Kind::Kube => kube_fixture(codec).await,
        Kind::Pg => pg_fixture(codec).await,
    }
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

impl Fixture {
    /// The bytes as stored (file content, Secret data, PG row as text).
    async fn raw(&self, stack: &str) -> Vec<u8> {
        match self.kind {
            Kind::File => {
                let dir = self.dir.as_ref().expect("dir");
                std::fs::read(dir.path().join(format!("{stack}.json"))).expect("state file")
            }
            Kind::Kube => {
                let (client, ns) = self.kube.as_ref().expect("kube");
                let api: Api<Secret> = Api::namespaced(client.clone(), ns);
                let mut out = Vec::new();
                let list = api.list(&ListParams::default()).await.expect("list");
                for s in list.items {
                    out.extend(serde_json::to_vec(&s).expect("json"));
                    for ByteString(b) in s.data.unwrap_or_default().values() {
                        out.extend_from_slice(b);
                        out.extend(format::gunzip_if_compressed(b, 1 << 30).unwrap_or_default());
                    }
                }
                out
            }
            Kind::Pg => {
                let client = pg_client(self.pg_url.as_deref().expect("url")).await;
                let row = client
                    .query_one(
                        "SELECT t::text, t.body FROM preview_envs_state t WHERE stack = $1",
                        &[&stack],
                    )
                    .await
                    .expect("row");
                let mut out = row.get::<_, String>(0).into_bytes();
                out.extend(row.get::<_, Vec<u8>>(1));
                out
            }
        }
    }

    /// Changes the stored serial behind the backend's back (checksum not updated).
    async fn tamper(&self, stack: &str) {
        self.rewrite(stack, |bytes: &[u8]| -> Vec<u8> {
            let text = String::from_utf8(bytes.to_vec()).expect("utf8");
            let edited = text.replacen("\"serial\": 1", "\"serial\": 5", 1);
            assert_ne!(edited, text, "nothing to tamper with");
            edited.into_bytes()
        })
        .await;
    }

    /// The same storage opened with another codec (another run: with or
    /// without the passphrase, trusting or not).
    async fn reopen(&self, codec: Codec) -> Arc<dyn StateBackend> {
        match self.kind {
            Kind::File => {
                Arc::new(FileBackend::new(self.dir.as_ref().expect("dir").path()).with_codec(codec))
            }
            Kind::Kube => {
                let (client, ns) = self.kube.as_ref().expect("kube");
                Arc::new(
                    KubeBackend::new(client.clone(), ns)
                        .with_codec(codec)
                        .with_lease_duration(TEST_LEASE)
                        .expect("lease"),
                )
            }
            Kind::Pg => {
                let options = BackendOptions {
                    codec,
                    ..BackendOptions::default()
                };
                open_backend_with(self.pg_url.as_deref().expect("url"), None, &options)
                    .await
                    .expect("open")
            }
        }
    }

    /// The stored document (decompressed), as the backend keeps it.
    async fn document(&self, stack: &str) -> Vec<u8> {
        let captured = std::sync::Mutex::new(Vec::new());
        self.rewrite(stack, |bytes| {
            *captured.lock().expect("lock") = bytes.to_vec();
            bytes.to_vec()
        })
        .await;
        captured.into_inner().expect("lock")
    }

    /// Replaces the stored document of `stack` by `edit(document)`, behind the
    /// backend's back (what someone with write access to the store can do).
    async fn rewrite(&self, stack: &str, edit: impl Fn(&[u8]) -> Vec<u8>) {
        match self.kind {
            Kind::File => {
                let path = self
                    .dir
                    .as_ref()
                    .expect("dir")
                    .path()
                    .join(format!("{stack}.json"));
                let bytes = std::fs::read(&path).expect("read");
                std::fs::write(&path, edit(&bytes)).expect("write");
            }
            Kind::Kube => {
                let (client, ns) = self.kube.as_ref().expect("kube");
                let api: Api<Secret> = Api::namespaced(client.clone(), ns);
                let name = KubeBackend::secret_name(stack);
                let mut secret = api.get(&name).await.expect("secret");
                let data = secret.data.as_mut().expect("data");
                let ByteString(zipped) = data.get("state").expect("state key").clone();
                let plain = format::gunzip_if_compressed(&zipped, 1 << 30).expect("gunzip");
                data.insert(
                    "state".into(),
                    ByteString(format::gzip(&edit(&plain)).expect("gzip")),
                );
                api.replace(&name, &PostParams::default(), &secret)
                    .await
                    .expect("replace");
            }
            Kind::Pg => {
                let client = pg_client(self.pg_url.as_deref().expect("url")).await;
                let body: Vec<u8> = client
                    .query_one(
                        "SELECT body FROM preview_envs_state WHERE stack = $1",
                        &[&stack],
                    )
                    .await
                    .expect("row")
                    .get(0);
                client
                    .execute(
                        "UPDATE preview_envs_state SET body = $2 WHERE stack = $1",
                        &[&stack, &edit(&body)],
                    )
                    .await
                    .expect("update");
            }
        }
    }
}

fn state(stack: &str, serial: u64) -> StackState {
    let mut s = StackState::new(stack);
    s.serial = serial;
    s.outputs.insert(
        "url".into(),
        Output::Plain(json!(format!("https://{stack}.example"))),
    );
    s
}

fn me() -> String {
    format!("pid {} on ", std::process::id())
}

fn locked_holder(r: Result<Box<dyn StackLock>, StateError>) -> String {
    match r {
        Err(StateError::Locked { holder, .. }) => holder,
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("expected Locked, got the lock"),
    }
}

/// Polls until `stack` can be locked again (drop releases in the background).
async fn lock_within(b: &dyn StateBackend, stack: &str, bound: Duration) -> Box<dyn StackLock> {
    lock_with_timeout(b, stack, bound)
        .await
        .unwrap_or_else(|e| panic!("lock {stack} within {bound:?}: {e}"))
}

async fn conformance(kind: Kind) {
    let fx = fixture(kind).await;
    let b = fx.backend.as_ref();

    // Round trip.
    assert!(b.read("stack-a").await.expect("read").is_none());
    assert!(b.list().await.expect("list").is_empty());
    let mut a = state("stack-a", 1);
    b.write(&a).await.expect("first write");
    assert_eq!(b.read("stack-a").await.expect("read"), Some(a.clone()));
    a.serial = 2;
    a.outputs.insert("n".into(), Output::Plain(json!(2)));
    b.write(&a).await.expect("second write");
    assert_eq!(b.read("stack-a").await.expect("read"), Some(a.clone()));

    // Serial and lineage rules.
    let err = b.write(&a).await.expect_err("same serial");
    assert!(matches!(err, StateError::Stale { .. }), "{err}");
    assert!(err.to_string().contains("stored serial is 2"), "{err}");
    let mut skip = a.clone();
    skip.serial = 4;
    assert!(matches!(
        b.write(&skip).await,
        Err(StateError::Stale { .. })
    ));
    let mut foreign = state("stack-a", 3);
    foreign.lineage = "another-lineage".into();
    let err = b.write(&foreign).await.expect_err("lineage");
    assert!(err.to_string().contains("lineage"), "{err}");
    assert!(matches!(
        b.write(&state("stack-new", 2)).await,
        Err(StateError::Stale { .. })
    ));
    assert_eq!(
        b.read("stack-a").await.expect("read"),
        Some(a.clone()),
        "unchanged"
    );

    // Tampered state: refused on read and write, never overwritten.
    let t = state("stack-t", 1);
    b.write(&t).await.expect("write t");
    fx.tamper("stack-t").await;
    let before = fx.raw("stack-t").await;
    let err = b.read("stack-t").await.expect_err("corrupt");
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    let mut t2 = t.clone();
    t2.serial = 2;
    assert!(matches!(
        b.write(&t2).await,
        Err(StateError::Corrupt { .. })
    ));
    assert!(b.write(&StackState::new("stack-t")).await.is_err());
    assert_eq!(
        fx.raw("stack-t").await,
        before,
        "corrupt state left untouched"
    );

    // Listing and deleting.
    assert_eq!(b.list().await.expect("list"), ["stack-a", "stack-t"]);
    b.delete("stack-t").await.expect("delete");
    assert!(b.read("stack-t").await.expect("read").is_none());
    assert_eq!(b.list().await.expect("list"), ["stack-a"]);

    // Lock contention names the holder; other stacks are independent.
    let held = b.lock("stack-a").await.expect("lock a");
    let holder = locked_holder(b.lock("stack-a").await);
    assert!(
        holder.contains(&me()) && holder.contains(" since "),
        "{holder}"
    );
    let err = lock_with_timeout(b, "stack-a", Duration::ZERO)
        .await
        .err()
        .expect("fail fast");
    // The way out (break-lock) is the binary's to word: the library names it
    // by type.
    assert!(err.is_locked(), "{err}");
    assert!(!err.to_string().contains("break-lock"), "{err}");
    let began = Instant::now();
    let holder = locked_holder(lock_with_timeout(b, "stack-a", Duration::from_secs(1)).await);
    assert!(
        began.elapsed() >= Duration::from_millis(900),
        "waited {:?}",
        began.elapsed()
    );
    assert!(
        holder.contains("(waited 1s)") && holder.contains(&me()),
        "{holder}"
    );
    let other = b
        .lock("stack-b")
        .await
        .expect("another stack is not blocked");
    held.release().await.expect("release");
    let again = b.lock("stack-a").await.expect("relock after release");
    again.release().await.expect("release");
    other.release().await.expect("release b");

    // Released on drop (asynchronously for the remote backends).
    drop(b.lock("stack-a").await.expect("lock"));
    lock_within(b, "stack-a", Duration::from_secs(10))
        .await
        .release()
        .await
        .expect("release");

    // Break-lock removes a live holder's lock and names it.
    assert_eq!(b.break_lock("stack-a").await.expect("not locked"), None);
    let victim = b.lock("stack-a").await.expect("lock");
    let broken = b
        .break_lock("stack-a")
        .await
        .expect("break")
        .expect("holder");
    assert!(broken.contains(&me()), "{broken}");
    let taken = lock_within(b, "stack-a", Duration::from_secs(10)).await;
    if kind != Kind::File {
        poll_until(Duration::from_secs(15), || victim.is_lost())
            .await
            .expect("the broken holder notices");
    }
    victim
        .release()
        .await
        .expect("releasing a broken lock is harmless");
    let holder = locked_holder(b.lock("stack-a").await);
    assert!(
        holder.contains(&me()),
        "the new holder keeps its lock: {holder}"
    );
    taken.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_file() {
    conformance(Kind::File).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_kubernetes() {
    conformance(Kind::Kube).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_postgres() {
    conformance(Kind::Pg).await;
}

/// 20 lockers → one winner; 20 writers per serial → one success each; 20 stacks.
async fn concurrency(kind: Kind) {
    let fx = fixture(kind).await;
    // Racing writers use separate backends (separate connections for PostgreSQL).
    let mut writers: Vec<Arc<dyn StateBackend>> = Vec::new();
    for _ in 0..20 {
        writers.push(match kind {
            Kind::Pg => open_backend(fx.pg_url.as_deref().expect("url"), None)
                .await
                .expect("open"),
            _ => fx.backend.clone(),
        });
    }

    let attempts = join_all((0..20).map(|i| {
        let b = writers[i].clone();
        async move { b.lock("hot").await }
    }))
    .await;
    let winners = attempts.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one of 20 lockers wins");
    for r in &attempts {
        if let Err(e) = r {
            assert!(matches!(e, StateError::Locked { .. }), "{e}");
            assert!(e.to_string().contains(&me()), "{e}");
        }
    }
    for r in attempts.into_iter().flatten() {
        r.release().await.expect("release");
    }

    let base = state("hot", 1);
    for serial in 1..=3u64 {
        let results = join_all((0..20).map(|i| {
            let b = writers[i].clone();
            let mut s = base.clone();
            s.serial = serial;
            s.outputs.insert("writer".into(), Output::Plain(json!(i)));
            async move { b.write(&s).await }
        }))
        .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            ok, 1,
            "serial {serial}: exactly one of 20 writers succeeds: {results:?}"
        );
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, StateError::Stale { .. }), "{e}");
            }
        }
        let stored = fx.backend.read("hot").await.expect("read").expect("some");
        assert_eq!(stored.serial, serial);
    }

    let results = join_all((0..20).map(|i| {
        let b = fx.backend.clone();
        async move {
            let stack = format!("parallel-{i}");
            let lock = b.lock(&stack).await?;
            b.write(&state(&stack, 1)).await?;
            let read = b.read(&stack).await?;
            lock.release().await?;
            Ok::<_, StateError>(read)
        }
    }))
    .await;
    for (i, r) in results.into_iter().enumerate() {
        let read = r.unwrap_or_else(|e| panic!("stack parallel-{i}: {e}"));
        assert_eq!(read.map(|s| s.serial), Some(1));
    }
    assert_eq!(fx.backend.list().await.expect("list").len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_file() {
    concurrency(Kind::File).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_kubernetes() {
    concurrency(Kind::Kube).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_postgres() {
    concurrency(Kind::Pg).await;
}

/// The canary and the forms in which it could leak.
const CANARY: &str = "canary-7Hq2 \"pw\" /x?y=z&ü";

fn canary_forms() -> Vec<(&'static str, String)> {
    let json = serde_json::to_string(CANARY).expect("json");
    let url: String = CANARY
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    vec![
        ("plain", CANARY.to_owned()),
        (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(CANARY),
        ),
        ("json", json.trim_matches('"').to_owned()),
        ("url", url),
    ]
}

fn assert_no_canary(what: &str, haystack: &[u8]) {
    let text = String::from_utf8_lossy(haystack);
    for (form, needle) in canary_forms() {
        assert!(
            !text.contains(&needle),
            "{form} form of the canary found in {what}"
        );
    }
}

async fn canary(kind: Kind) {
    let fx = fixture(kind).await;
    let b = fx.backend.as_ref();
    let pass = SecretString::new("a long enough test passphrase");
    let mut s = StackState::new("canary");
    let sealer = Sealer::open_or_init(&mut s, &pass).expect("sealer");
    s.outputs.insert(
        "db_password".into(),
        sealer
            .seal("db_password", &SecretString::new(CANARY))
            .expect("seal"),
    );
    s.serial = 1;
    b.write(&s).await.expect("write");

    assert_no_canary("the raw stored state", &fx.raw("canary").await);
    let stored = b.read("canary").await.expect("read").expect("some");
    assert_no_canary("Debug of the state", format!("{stored:?}").as_bytes());
    assert_no_canary("Debug of the sealer", format!("{sealer:?}").as_bytes());
    let shown = stacks::state_cmd::show(b, "canary").await.expect("show");
    assert_no_canary(
        "state show",
        serde_json::to_string(&shown).expect("json").as_bytes(),
    );
    let (_, exported) = stacks::state_cmd::export_bytes(b, "canary")
        .await
        .expect("export");
    assert_no_canary("state export", &exported);

    // Errors: stale write, wrong passphrase, tampered value.
    let err = b.write(&stored).await.expect_err("stale");
    assert_no_canary("a stale-write error", format!("{err} {err:?}").as_bytes());
    let err =
        Sealer::open(&stored, &SecretString::new("the wrong passphrase!!")).expect_err("wrong");
    assert_eq!(
        err.to_string(),
        "cannot decrypt the data key of stack canary: wrong passphrase or tampered state"
    );
    let Output::Secret(sealed) = &stored.outputs["db_password"] else {
        panic!("not sealed")
    };
    let mut tampered = sealed.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = Output::Secret(String::from_utf8(tampered).expect("utf8"));
    let err = sealer
        .unseal("db_password", &tampered)
        .expect_err("tampered");
    assert_eq!(
        err.to_string(),
        "cannot decrypt secret output db_password of stack canary: wrong passphrase or tampered state"
    );
    assert_no_canary("decrypt errors", format!("{err:?}").as_bytes());

    // A referencing stack reads the output with the referenced stack's key.
    let reader = Sealer::open(&stored, &pass).expect("open referenced stack");
    let revealed = reader.reveal(&stored.outputs).expect("reveal");
    assert_no_canary(
        "Debug of revealed outputs",
        format!("{revealed:?}").as_bytes(),
    );
    assert_eq!(
        reader
            .unseal("db_password", &stored.outputs["db_password"])
            .expect("unseal")
            .expose(),
        CANARY
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_file() {
    canary(Kind::File).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_kubernetes() {
    canary(Kind::Kube).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_postgres() {
    canary(Kind::Pg).await;
}

const STATE_PASSPHRASE: &str = "state-backends test passphrase";

/// A codec with the test passphrase (cheap key derivation: tests only).
fn authenticated(passphrase: &str) -> Codec {
    Codec::authenticated(Arc::new(Authenticator::with_params(
        SecretString::new(passphrase),
        KdfParams::insecure_for_tests(),
    )))
}

/// What a forger with write access to the store, but without the passphrase,
/// does: edits the state and recomputes the checksum, keeping the rest of the
/// document (or dropping the authentication, with `format: 2`).
fn forged(doc: &[u8], format_version: u32, edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut env: serde_json::Value = serde_json::from_slice(doc).expect("document");
    edit(&mut env["state"]);
    let body = serde_json::to_string_pretty(&env["state"]).expect("state");
    let auth = match (format_version, env.get("authentication")) {
        (3, Some(a)) => format!(
            "  \"authentication\": {},\n",
            serde_json::to_string(a).expect("header")
        ),
        _ => String::new(),
    };
    format!(
        "{{\n  \"format\": {format_version},\n  \"sha256\": \"{}\",\n{auth}  \"state\": {body}\n}}\n",
        format::sha256_hex(body.as_bytes())
    )
    .into_bytes()
}

fn state_with_record(stack: &str, serial: u64) -> StackState {
    let mut s = state(stack, serial);
    let id = preview_core::ResourceId::kubernetes("v1", "Namespace", None, stack);
    s.resources.insert(
        id.clone(),
        ResourceRecord {
            id,
            depends_on: Vec::new(),
            desired_hash: "sha256:d".into(),
            live_hash: "sha256:l".into(),
            uid: Some("uid-of-our-namespace".into()),
            protect: false,
            imported: false,
        },
    );
    s
}

async fn authenticity(kind: Kind) {
    let fx = fixture_with(kind, authenticated(STATE_PASSPHRASE)).await;
    let b = fx.backend.as_ref();
    let a = state_with_record("trust-a", 1);
    b.write(&a).await.expect("write");
    let doc = fx.document("trust-a").await;
    let text = String::from_utf8(doc.clone()).expect("utf8");
    assert!(text.starts_with("{\n  \"format\": 3,"), "{text}");
    assert!(text.contains("\"authentication\": {\"algorithm\":\"hmac-sha256\""));
    assert!(!text.contains(STATE_PASSPHRASE));
    assert_eq!(b.read("trust-a").await.expect("read"), Some(a.clone()));
    // Another run with the same passphrase reads it.
    let again = fx.reopen(authenticated(STATE_PASSPHRASE)).await;
    assert_eq!(again.read("trust-a").await.expect("read"), Some(a.clone()));

    let forgeries: Vec<(&str, Vec<u8>)> = vec![
        (
            "a record pointing at another namespace",
            forged(&doc, 3, |st| {
                st["resources"][0]["id"]["name"] = json!("kube-system");
            }),
        ),
        (
            "a record's uid",
            forged(&doc, 3, |st| {
                st["resources"][0]["uid"] = json!("a-foreign-uid")
            }),
        ),
        (
            "an output",
            forged(&doc, 3, |st| {
                st["outputs"]["url"]["value"] = json!("https://evil")
            }),
        ),
        ("the serial", forged(&doc, 3, |st| st["serial"] = json!(7))),
        (
            "a downgrade to unauthenticated format 2",
            forged(&doc, 2, |_| {}),
        ),
    ];
    // The forger's helper itself is faithful: unedited, the document verifies.
    assert_eq!(forged(&doc, 3, |_| {}), doc);
    let mut next = a.clone();
    next.serial = 2;
    for (what, bytes) in forgeries {
        fx.rewrite("trust-a", |_| bytes.clone()).await;
        let err = b.read("trust-a").await.expect_err(what);
        assert!(
            matches!(err, StateError::NotAuthentic { .. }),
            "{what}: {err}"
        );
        let shown = err.to_string();
        assert!(
            shown.starts_with("state of stack trust-a at ")
                && shown.contains(" is not authentic: ")
                && shown.ends_with("; it was not modified"),
            "{what}: {shown}"
        );
        assert!(
            !shown.contains("--trust-unauthenticated"),
            "{what}: {shown}"
        );
        // A write is refused too, and leaves the forged document in place.
        let err = b.write(&next).await.expect_err(what);
        assert!(
            matches!(err, StateError::NotAuthentic { .. }),
            "{what}: {err}"
        );
        assert_eq!(fx.document("trust-a").await, bytes, "{what}: overwritten");
        fx.rewrite("trust-a", |_| doc.clone()).await;
    }
    assert_eq!(b.read("trust-a").await.expect("restored"), Some(a.clone()));

    // Without a passphrase the authenticated state is read (checksum only) but
    // never overwritten: that would drop its authentication.
    let plain = fx.reopen(Codec::plain()).await;
    assert_eq!(plain.read("trust-a").await.expect("read"), Some(a.clone()));
    let err = plain.write(&next).await.expect_err("downgrade");
    assert!(
        err.to_string()
            .contains("authenticated (format 3) and no state passphrase is set"),
        "{err}"
    );
    assert_eq!(fx.document("trust-a").await, doc);

    // Older (unauthenticated) state: refused with the way out, upgraded only
    // with explicit trust, then authenticated.
    let old = state_with_record("trust-b", 1);
    plain.write(&old).await.expect("plain write");
    assert!(
        String::from_utf8(fx.document("trust-b").await)
            .expect("utf8")
            .starts_with("{\n  \"format\": 2,")
    );
    let err = b.read("trust-b").await.expect_err("unauthenticated");
    assert!(
        err.to_string()
            .contains("it is format 2 state, which carries no authentication tag"),
        "{err}"
    );
    let trusting = fx
        .reopen(authenticated(STATE_PASSPHRASE).trusting_unauthenticated())
        .await;
    let file = tempfile::tempdir().expect("tempdir");
    let path = file.path().join("trust-b.json");
    stacks::state_cmd::export_to_file(trusting.as_ref(), "trust-b", &path)
        .await
        .expect("export");
    let report = stacks::state_cmd::import_from_file(
        trusting.as_ref(),
        "trust-b",
        &path,
        &stacks::state_cmd::ImportOptions::default(),
    )
    .await
    .expect("import");
    assert_eq!((report.serial, report.authenticated), (2, true));
    assert!(
        String::from_utf8(fx.document("trust-b").await)
            .expect("utf8")
            .starts_with("{\n  \"format\": 3,")
    );
    let upgraded = b.read("trust-b").await.expect("authentic").expect("some");
    assert_eq!(upgraded.resources, old.resources);
    // Another passphrase does not read it.
    let other = fx.reopen(authenticated("another state passphrase")).await;
    assert!(matches!(
        other.read("trust-b").await,
        Err(StateError::NotAuthentic { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticity_file() {
    authenticity(Kind::File).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticity_kubernetes() {
    authenticity(Kind::Kube).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticity_postgres() {
    authenticity(Kind::Pg).await;
}

fn big_state(stack: &str, serial: u64, random_bytes: usize) -> StackState {
    let mut s = state(stack, serial);
    let noise: Vec<u8> = (0..random_bytes).map(|_| rand::random::<u8>()).collect();
    s.outputs.insert(
        "blob".into(),
        Output::Plain(json!(
            base64::engine::general_purpose::STANDARD.encode(noise)
        )),
    );
    s
}

async fn secret_names(client: &kube::Client, ns: &str) -> Vec<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut names: Vec<String> = api
        .list(&ListParams::default().labels("preview-envs.io/stack=big"))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_chunks_a_state_over_one_mebibyte() {
    let fx = kube_fixture(Codec::plain()).await;
    let (client, ns) = fx.kube.clone().expect("kube");
    let b = fx.backend.as_ref();
    // ~2 MiB of base64 noise: over 1 MiB even compressed.
    let big = big_state("big", 1, 1536 * 1024);
    assert!(format::encode(&big).expect("encode").len() > 2 * 1024 * 1024);
    b.write(&big).await.expect("write big");
    let names = secret_names(&client, &ns).await;
    assert!(names.len() >= 3, "main + at least 2 chunks: {names:?}");
    assert!(names.contains(&"preview-state-big".to_owned()));
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let main = api.get("preview-state-big").await.expect("main");
    assert_eq!(main.type_.as_deref(), Some("preview-envs.io/state"));
    let data = main.data.expect("data");
    assert!(data.contains_key("index") && !data.contains_key("state"));
    let index: serde_json::Value = serde_json::from_slice(&data["index"].0).expect("index");
    let generation = index["generation"].as_str().expect("generation").to_owned();
    assert_eq!(index["chunks"].as_u64(), Some(names.len() as u64 - 1));
    assert!(
        names.iter().all(|n| n == "preview-state-big"
            || n.starts_with(&format!("preview-state-big-{generation}-")))
    );
    assert_eq!(b.read("big").await.expect("read"), Some(big.clone()));

    // Next generation (still big): old chunks are deleted after the flip.
    let big2 = big_state("big", 2, 1200 * 1024);
    let mut big2 = big2;
    big2.lineage = big.lineage.clone();
    b.write(&big2).await.expect("write big 2");
    let names2 = secret_names(&client, &ns).await;
    assert!(
        !names2.iter().any(|n| n.contains(&generation)),
        "old generation gone: {names2:?}"
    );
    assert_eq!(b.read("big").await.expect("read"), Some(big2.clone()));

    // Back to a small state: inline again, no chunk left.
    let mut small = state("big", 3);
    small.lineage = big.lineage.clone();
    b.write(&small).await.expect("write small");
    assert_eq!(secret_names(&client, &ns).await, ["preview-state-big"]);
    assert_eq!(b.read("big").await.expect("read"), Some(small));

    // A missing chunk is corruption, not an empty state.
    let mut big4 = big_state("big", 4, 1536 * 1024);
    big4.lineage = big.lineage.clone();
    b.write(&big4).await.expect("write big 4");
    let victim = secret_names(&client, &ns)
        .await
        .into_iter()
        .find(|n| n.ends_with("-1"))
        .expect("a second chunk");
    api.delete(&victim, &Default::default())
        .await
        .expect("delete chunk");
    let err = b.read("big").await.expect_err("missing chunk");
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    b.delete("big").await.expect("delete");
    assert!(secret_names(&client, &ns).await.is_empty());
}

fn fake_lease(stack: &str, host: &str, pid: u32, renewed_ago: Duration) -> Lease {
    let holder = LockHolder {
        host: host.into(),
        pid,
        started: "2026-01-01T00:00:00Z".into(),
        token: "feedface".into(),
    };
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(stack)),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(serde_json::to_string(&holder).expect("json")),
            lease_duration_seconds: Some(20),
            acquire_time: Some(micro_ago(renewed_ago)),
            renew_time: Some(micro_ago(renewed_ago)),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_lease_fields_renewal_and_dead_holders() {
    let fx = kube_fixture(Codec::plain()).await;
    let (client, ns) = fx.kube.clone().expect("kube");
    let b = fx.backend.as_ref();
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);

    // The Lease as the v1.20 API server stored it, and its renewal.
    let held = b.lock("s").await.expect("lock");
    let lease = leases.get(&lease_name("s")).await.expect("lease");
    let spec = lease.spec.clone().expect("spec");
    let holder: LockHolder = serde_json::from_str(spec.holder_identity.as_deref().expect("holder"))
        .expect("json holder");
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(spec.lease_duration_seconds, Some(3));
    let labels = lease.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("preview-envs.io/stack").map(String::as_str),
        Some("s")
    );
    let first = spec.renew_time.clone().expect("renewTime");
    tokio::time::sleep(TEST_LEASE + Duration::from_millis(500)).await;
    let renewed = leases.get(&lease_name("s")).await.expect("lease");
    let later = renewed.spec.and_then(|s| s.renew_time).expect("renewTime");
    assert!(later.0 > first.0, "renewed: {first:?} → {later:?}");
    assert!(
        locked_holder(b.lock("s").await).contains(&me()),
        "still held after its duration"
    );
    held.release().await.expect("release");
    assert!(
        leases
            .get_opt(&lease_name("s"))
            .await
            .expect("get")
            .is_none(),
        "release deletes it"
    );

    // A live foreign holder is named; an expired one is taken over.
    leases
        .create(
            &PostParams::default(),
            &fake_lease("live", "ghost-host", 4242, Duration::ZERO),
        )
        .await
        .expect("fake live lease");
    let holder = locked_holder(b.lock("live").await);
    assert!(
        holder.starts_with("pid 4242 on ghost-host since 2026-01-01T00:00:00Z"),
        "{holder}"
    );
    assert!(holder.contains("expires in"), "{holder}");
    leases
        .create(
            &PostParams::default(),
            &fake_lease("dead", "ghost-host", 4242, Duration::from_secs(3600)),
        )
        .await
        .expect("fake dead lease");
    let taken = b
        .lock("dead")
        .await
        .expect("an expired lease is taken over");
    let spec = leases
        .get(&lease_name("dead"))
        .await
        .expect("lease")
        .spec
        .expect("spec");
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(
        spec.holder_identity
            .expect("holder")
            .contains(&format!("\"pid\":{}", std::process::id()))
    );
    taken.release().await.expect("release");
    assert!(now_micro().0 > spec.renew_time.expect("renew").0);
}

/// Takes a lock in a runtime that is then shut down without releasing it: the
/// renewal (or the database session) dies as with a crashed process.
fn lock_and_crash<F, Fut>(open: F, stack: &str)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Arc<dyn StateBackend>>,
{
    let stack = stack.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let b = open().await;
            let lock = b.lock(&stack).await.expect("lock in the doomed runtime");
            std::mem::forget(lock);
            std::mem::forget(b);
        });
        rt.shutdown_background();
    })
    .join()
    .expect("thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_lock_of_a_crashed_holder_expires() {
    let fx = kube_fixture(Codec::plain()).await;
    let (_, ns) = fx.kube.clone().expect("kube");
    let config = TestCluster::shared()
        .await
        .expect("cluster")
        .config()
        .clone();
    lock_and_crash(
        move || async move {
            let client = kube::Client::try_from(config).expect("client");
            let b = KubeBackend::new(client, &ns)
                .with_lease_duration(TEST_LEASE)
                .expect("lease");
            Arc::new(b) as Arc<dyn StateBackend>
        },
        "crashed",
    );
    let b = fx.backend.as_ref();
    assert!(locked_holder(b.lock("crashed").await).contains(&me()));
    let began = Instant::now();
    let lock = lock_within(b, "crashed", Duration::from_secs(20)).await;
    let waited = began.elapsed();
    assert!(
        waited <= TEST_LEASE + Duration::from_secs(3),
        "expired after {waited:?}"
    );
    lock.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lock_of_a_dead_session_is_released_by_the_server() {
    let fx = pg_fixture(Codec::plain()).await;
    let url = fx.pg_url.clone().expect("url");
    lock_and_crash(
        move || async move { open_backend(&url, None).await.expect("open") },
        "crashed",
    );
    // The dead process's socket closed, so the server ended its session and
    // dropped its advisory lock: no break-lock, no expiry wait.
    let b = fx.backend.as_ref();
    let began = Instant::now();
    let lock = lock_within(b, "crashed", Duration::from_secs(30)).await;
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "released after {:?}",
        began.elapsed()
    );
    // Its holder record is stale but harmless: the new holder overwrote it.
    let holder = locked_holder(b.lock("crashed").await);
    assert!(
        holder.contains(&me()) && holder.contains("PostgreSQL session"),
        "{holder}"
    );
    lock.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_advisory_locks_are_per_stack_and_name_the_holder() {
    let fx = pg_fixture(Codec::plain()).await;
    let b = fx.backend.as_ref();
    let client = pg_client(fx.pg_url.as_deref().expect("url")).await;
    let a = b.lock("a").await.expect("lock a");
    let c = b.lock("c").await.expect("lock c concurrently");
    let rows = client
        .query(
            // This fixture's database only: other tests share the server.
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .expect("pg_locks");
    let mut sessions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    sessions.sort_unstable();
    sessions.dedup();
    assert_eq!(
        sessions.len(),
        2,
        "two stacks, two sessions, two keys: {rows:?}"
    );
    let recorded = client
        .query(
            "SELECT stack, host, pid FROM preview_envs_locks ORDER BY stack",
            &[],
        )
        .await
        .expect("holder rows");
    let recorded: Vec<(String, i64)> = recorded.iter().map(|r| (r.get(0), r.get(2))).collect();
    let pid = i64::from(std::process::id());
    assert_eq!(recorded, [("a".to_owned(), pid), ("c".to_owned(), pid)]);
    let holder = locked_holder(b.lock("a").await);
    assert!(
        holder.contains(&me()) && holder.contains("PostgreSQL session"),
        "{holder}"
    );
    a.release().await.expect("release a");
    c.release().await.expect("release c");
    let left = client
        .query_one("SELECT count(*) FROM preview_envs_locks", &[])
        .await
        .expect("count")
        .get::<_, i64>(0);
    assert_eq!(left, 0, "release removes the holder records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_urls_never_show_a_password() {
    let pg = TestPostgres::shared().await.expect("postgres");
    // The test server trusts local connections: the password is ignored.
    let url = format!(
        "postgres://postgres:s3cr3t-canary-pw@127.0.0.1:{}/postgres",
        pg.port()
    );
    let b = open_backend(&url, None).await.expect("open");
    assert_eq!(
        b.describe(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );
    // Nothing listens on port 1: a connection error.
    let err = open_backend("postgresql://u:s3cr3t-canary-pw@127.0.0.1:1/db", None)
        .await
        .err()
        .expect("refused");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("postgres://u@127.0.0.1:1/db"), "{text}");
    let err = open_backend("redis://x", None)
        .await
        .err()
        .expect("unknown");
    assert!(err.to_string().contains("file://DIR"), "{err}");
    let client = store_client().await.expect("cluster client");
    let ns = create_namespace(&client, "url").await.expect("namespace");
    let k = open_backend(&format!("kubernetes://{ns}"), Some(&client))
        .await
        .expect("kube");
    assert_eq!(k.describe(), format!("kubernetes://{ns}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_never_touches_a_foreign_secret() {
    let fx = kube_fixture(Codec::plain()).await;
    let (client, ns) = fx.kube.clone().expect("kube");
    let api: Api<Secret> = Api::namespaced(client, &ns);
    let foreign = Secret {
        metadata: ObjectMeta {
            name: Some(KubeBackend::secret_name("foreign")),
            ..Default::default()
        },
        string_data: Some([("password".to_owned(), "not ours".to_owned())].into()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &foreign)
        .await
        .expect("create foreign secret");
    let b = fx.backend.as_ref();
    let err = b.read("foreign").await.expect_err("not a state secret");
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    assert!(matches!(
        b.write(&state("foreign", 1)).await,
        Err(StateError::Corrupt { .. })
    ));
    let err = b.delete("foreign").await.expect_err("not deleted");
    assert!(err.to_string().contains("not a state Secret"), "{err}");
    let kept = api.get("preview-state-foreign").await.expect("still there");
    assert_eq!(kept.type_.as_deref(), Some("Opaque"));
}

/// Resources of the `memory` provider: kept in a map (what the engine needs
/// from a provider to run `up` and a verified `destroy`, without a cluster).
#[derive(Default)]
struct MemoryProvider {
    objects: std::sync::Mutex<std::collections::BTreeMap<ResourceId, serde_json::Value>>,
}

impl MemoryProvider {
    fn objects(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<ResourceId, serde_json::Value>> {
        self.objects.lock().expect("lock")
    }
}

#[async_trait::async_trait]
impl Provider for MemoryProvider {
    async fn read(&self, id: &ResourceId) -> Result<Option<serde_json::Value>, ProviderError> {
        Ok(self.objects().get(id).cloned())
    }
    async fn dry_run(&self, resource: &Resource, _force: bool) -> Result<DryRun, ProviderError> {
        Ok(DryRun::Accepted {
            object: resource.body.clone(),
        })
    }
    async fn apply(
        &self,
        resource: &Resource,
        _force: bool,
    ) -> Result<serde_json::Value, ProviderError> {
        self.objects()
            .insert(resource.id.clone(), resource.body.clone());
        Ok(resource.body.clone())
    }
    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        self.objects().remove(id);
        Ok(())
    }
    async fn wait_ready(
        &self,
        resource: &Resource,
        _opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<serde_json::Value, ProviderError> {
        Ok(resource.body.clone())
    }
    async fn wait_gone(
        &self,
        _id: &ResourceId,
        _opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn list_owned(
        &self,
        stack: &str,
        _kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError> {
        Ok(self
            .objects()
            .iter()
            .filter(|(_, v)| {
                v.pointer("/metadata/labels/preview-envs.io~1stack") == Some(&json!(stack))
            })
            .map(|(id, _)| id.clone())
            .collect())
    }
}

fn memory_resource(stack: &str, name: &str) -> Resource {
    Resource {
        id: ResourceId {
            provider: ProviderName::new("memory").expect("name"),
            api_version: "memory.example/v1".into(),
            kind: "Thing".into(),
            namespace: None,
            name: name.into(),
        },
        body: json!({"metadata": {"labels": {"preview-envs.io/stack": stack}}, "value": name}),
        depends_on: Default::default(),
        options: Default::default(),
    }
}

/// A verified destroy removes the stack's state (the backend's records, such as
/// tested images, stay); with `keep_state` the emptied state stays; a destroy
/// that finds something left keeps the state and names it.
async fn destroy_removes_state(kind: Kind) {
    let fx = fixture(kind).await;
    let provider = Arc::new(MemoryProvider::default());
    let engine = |keep_state: bool| {
        Engine::new(
            Providers::new().with(ProviderName::new("memory").expect("name"), provider.clone()),
            fx.backend.clone(),
            EventSink::none(),
            EngineOptions {
                keep_state,
                ..EngineOptions::default()
            },
        )
    };
    let record = b"{\"tested\": \"sha256:abc\"}";
    fx.backend
        .swap_record("tested", "preview-pr-1", None, record)
        .await
        .expect("record");
    for (stack, keep) in [("gone-1", false), ("kept-1", true)] {
        let graph = DesiredGraph::new(stack, vec![memory_resource(stack, &format!("{stack}-a"))])
            .expect("graph");
        engine(keep)
            .up(
                &graph,
                [("url".to_owned(), Output::Plain(json!("x")))].into(),
            )
            .await
            .expect("up");
        assert!(fx.backend.read(stack).await.expect("read").is_some());
        let report = engine(keep).destroy(stack).await.expect("destroy");
        assert_eq!(report.plan.summary().delete, 1, "{kind:?} {stack}");
        let after = fx.backend.read(stack).await.expect("read");
        if keep {
            let state = after.expect("kept state");
            assert!(
                state.resources.is_empty() && state.outputs.is_empty() && state.pending.is_empty()
            );
        } else {
            assert!(after.is_none(), "{kind:?}: the state of {stack} is left");
            assert!(
                !fx.backend
                    .list()
                    .await
                    .expect("list")
                    .contains(&stack.to_owned())
            );
        }
    }
    assert_eq!(
        fx.backend
            .read_record("tested", "preview-pr-1")
            .await
            .expect("read record")
            .as_deref(),
        Some(&record[..]),
        "{kind:?}: the tested-image record must survive destroys"
    );
    // Something left: a foreign run re-created an object of the stack behind its back.
    let stack = "left-1";
    let graph = DesiredGraph::new(stack, vec![memory_resource(stack, "left-a")]).expect("graph");
    engine(false)
        .up(&graph, Default::default())
        .await
        .expect("up");
    let stray = memory_resource(stack, "left-stray");
    provider
        .objects()
        .insert(stray.id.clone(), stray.body.clone());
    let err = engine(false).destroy(stack).await.expect_err("residue");
    assert!(err.to_string().contains("left-stray"), "{err}");
    assert!(
        fx.backend.read(stack).await.expect("read").is_some(),
        "{kind:?}: an unverified destroy must keep the state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_state_file() {
    destroy_removes_state(Kind::File).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_state_kubernetes() {
    destroy_removes_state(Kind::Kube).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_state_postgres() {
    destroy_removes_state(Kind::Pg).await;
}
