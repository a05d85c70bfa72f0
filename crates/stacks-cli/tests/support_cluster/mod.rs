//! Shared set-up for the cluster tests of the `stacks` binary: a real control
//! plane with CRDs, the real cert-manager controller and the node simulator, a
//! real PostgreSQL with the app role, and a runner for the `stacks` binary with a
//! private state directory.
//!
//! The runner sets `PREVIEW_TLS_ISSUER=self-signed`: the base's wildcard
//! Certificate is issued by the real cert-manager from a self-signed Issuer.
//! Let's Encrypt over DNS-01 cannot be tested here (no network, no DNS zone).

#![allow(dead_code, missing_docs)]

pub mod orphans;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::{NodeSimulator, TestCluster, TestPostgres, default_crd_dir, install_crds};
use tokio::sync::OnceCell;

/// The shared cluster (CRDs installed once), PostgreSQL, and one state directory
/// in which `preview-base` is deployed once: the base is cluster-wide (namespace
/// `default`, the gateway), so every test of a binary shares it, as CI does.
pub struct World {
    pub cluster: &'static TestCluster,
    pub pg: &'static TestPostgres,
    pub state: PathBuf,
    _state_dir: tempfile::TempDir,
}

static WORLD: OnceCell<World> = OnceCell::const_new();

pub async fn world() -> &'static World {
    WORLD
        .get_or_init(|| async {
            let cluster = TestCluster::shared().await.expect("cluster");
            install_crds(&cluster.client().expect("client"), &default_crd_dir())
                .await
                .expect("crds");
            cluster.cert_manager().await.expect("cert-manager");
            let simulator = NodeSimulator::shared().await.expect("simulator");
            let pg = TestPostgres::shared().await.expect("postgres");
            // The base's Service `db` leads to this server for the database Jobs
            // the simulator runs (as cluster DNS and kube-proxy would).
            simulator.route_service(
                "db.default.svc.cluster.local:5432",
                &format!("127.0.0.1:{}", pg.port()),
            );
            // `aphiria` is the server's superuser, as POSTGRES_USER is in the
            // official image (the in-cluster executor creates databases as it).
            pg.client()
                .await
                .expect("pg client")
                .batch_execute("DO $$ BEGIN CREATE ROLE aphiria LOGIN SUPERUSER; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
                .await
                .expect("role");
            let dir = tempfile::tempdir().expect("state dir");
            let world = World {
                cluster,
                pg,
                state: dir.path().to_path_buf(),
                _state_dir: dir,
            };
            Stacks::new(&world).ok(&["up", "preview-base"]);
            world
        })
        .await
}

/// Runs the `stacks` binary against the world with its own state directory.
pub struct Stacks {
    pub state: PathBuf,
    kubeconfig: PathBuf,
    /// `PREVIEW_POSTGRES_URL` (direct executor); `None`: in-cluster Jobs.
    pg_url: Option<String>,
    /// `--config-dir` (default: the repository's `config/`).
    config_dir: PathBuf,
    /// `--backend` (default: `file://` the state directory).
    backend: Option<String>,
    /// Words the binary runs under (e.g. `ip netns exec NAME`); empty: none.
    wrapper: Vec<String>,
}

/// The state passphrase of every run (long enough for a new data key).
pub const STATE_PASSPHRASE: &str = "state-passphrase-canary-61c0";

/// Creates namespace `name` (e.g. `preview-state`, where a `kubernetes://`
/// backend keeps its state).
pub async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    namespaces
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                .expect("namespace"),
        )
        .await
        .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
}

pub fn digest(n: u64) -> String {
    format!("{n:064x}")
}

pub fn pr_args(pr: u64) -> Vec<String> {
    vec![
        "--pr".into(),
        pr.to_string(),
        "--web-image".into(),
        format!("ghcr.io/aphiria/web@sha256:{}", digest(pr)),
        "--api-image".into(),
        format!("ghcr.io/aphiria/api@sha256:{}", digest(pr + 1_000_000)),
    ]
}

impl Stacks {
    pub fn new(world: &World) -> Self {
        Stacks {
            state: world.state.clone(),
            kubeconfig: world.cluster.kubeconfig_path().to_path_buf(),
            pg_url: Some(world.pg.url()),
            config_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config"),
            backend: None,
            wrapper: Vec::new(),
        }
    }

    /// A runner keeping state in the backend at `url` (`kubernetes://…`, `postgres://…`).
    pub fn with_backend(self, url: &str) -> Self {
        Stacks {
            backend: Some(url.to_owned()),
            ..self
        }
    }

    /// The `--backend` URL of this runner.
    pub fn backend_url(&self) -> String {
        self.backend
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.state.display()))
    }

    /// A runner reading stack configs from `dir`.
    pub fn with_config_dir(self, dir: &Path) -> Self {
        Stacks {
            config_dir: dir.to_path_buf(),
            ..self
        }
    }

    /// A runner authenticating with another kubeconfig (e.g. the plan credential's).
    pub fn with_kubeconfig(self, path: &Path) -> Self {
        Stacks {
            kubeconfig: path.to_path_buf(),
            ..self
        }
    }

    /// Without `PREVIEW_POSTGRES_URL`: databases are made by in-cluster Jobs.
    pub fn in_cluster_database(self) -> Self {
        Stacks {
            pg_url: None,
            ..self
        }
    }

    /// A runner on a cluster and PostgreSQL of the test's own (not the shared
    /// world), with state in `backend`.
    pub fn on(kubeconfig: &Path, pg_url: &str, state: &Path, backend: &str) -> Self {
        Stacks {
            state: state.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            pg_url: Some(pg_url.to_owned()),
            config_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config"),
            backend: Some(backend.to_owned()),
            wrapper: Vec::new(),
        }
    }

    /// A runner starting the binary under `words` (`ip netns exec NAME`: inside
    /// a network namespace).
    pub fn wrapped_in(self, words: Vec<String>) -> Self {
        Stacks {
            wrapper: words,
            ..self
        }
    }

    /// A runner with its own (e.g. empty) state directory.
    pub fn with_state(world: &World, state: &Path) -> Self {
        Stacks {
            state: state.to_path_buf(),
            ..Stacks::new(world)
        }
    }

    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        // STACKS_BIN: another build of the binary (e.g. the release one, for load).
        let bin = std::env::var_os("STACKS_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_stacks")),
            PathBuf::from,
        );
        let mut c = match self.wrapper.split_first() {
            Some((program, words)) => {
                let mut c = Command::new(program);
                c.args(words).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--backend")
            .arg(self.backend_url())
            .arg("--config-dir")
            .arg(&self.config_dir)
            .arg("--progress")
            .arg("plain")
            .args(args.iter().map(AsRef::as_ref))
            .env("PREVIEW_DB_PASSWORD", "db-password-canary-7f3a")
            // preview-pr seals its database role's password with it.
            .env("PREVIEW_STATE_PASSPHRASE", STATE_PASSPHRASE)
            .env_remove("PREVIEW_STATE_PASSPHRASE_FILE")
            .env("PREVIEW_DIGITALOCEAN_TOKEN", "dns-token-canary-1b9e")
            .env("PREVIEW_TLS_ISSUER", "self-signed")
            .env_remove("KUBECONFIG")
            .env_remove("PREVIEW_BACKEND")
            .env_remove("PREVIEW_POSTGRES_URL")
            .env_remove("PREVIEW_POSTGRES_URL_FILE")
            .env_remove("GITHUB_SHA")
            .env_remove("PREVIEW_COMMIT_SHA")
            .env_remove("PREVIEW_RECORDS_BACKEND");
        if let Some(url) = &self.pg_url {
            c.env("PREVIEW_POSTGRES_URL", url);
        }
        c
    }

    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Output {
        self.command(args).output().expect("run stacks")
    }

    pub fn ok<S: AsRef<str>>(&self, args: &[S]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "stacks {:?} failed:\n--- stdout\n{}\n--- stderr\n{}",
            args.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Whether PR `pr`'s state records anything (a verified destroy leaves the state
/// itself, with no resource and no output).
#[allow(dead_code)] // not every test file that shares this module uses it
pub fn has_state(world: &World, pr: u64) -> bool {
    let Ok(text) = std::fs::read_to_string(world.state.join(format!("preview-pr-{pr}.json")))
    else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&text).expect("state json");
    let count = |key: &str| match &v["state"][key] {
        serde_json::Value::Array(items) => items.len(),
        serde_json::Value::Object(items) => items.len(),
        _ => 0,
    };
    count("resources") + count("outputs") > 0
}

/// A temporary copy of the repository's `config/*.yaml`, for a test to edit;
/// also returns the repository's `config/`.
#[allow(dead_code)] // not every test file that shares this module uses it
pub fn config_copy() -> (PathBuf, tempfile::TempDir) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let dir = tempfile::tempdir().expect("config dir");
    for entry in std::fs::read_dir(&repo).expect("config/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().expect("name");
            std::fs::copy(&path, dir.path().join(name)).expect("copy");
        }
    }
    (repo, dir)
}

/// A state backend a test runs the binary on: `label` for messages, `url` for `--backend`.
pub struct BackendUnderTest {
    pub label: &'static str,
    pub url: String,
}

/// The three backends, each in a place of its own for `tag` (a directory under
/// the world's state, namespace `<tag>-state`, database `<tag>_state`).
pub async fn backends(world: &World, tag: &str) -> Vec<BackendUnderTest> {
    use k8s_openapi::api::core::v1::Namespace;
    let client = world.cluster.client().expect("client");
    let namespaces: kube::Api<Namespace> = kube::Api::all(client);
    let ns = format!("{tag}-state");
    let _ = namespaces
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("ns"),
        )
        .await;
    let admin = world.pg.client().await.expect("pg");
    let db = format!("{}_state", tag.replace('-', "_"));
    let _ = admin.batch_execute(&format!("CREATE DATABASE {db}")).await;
    let dir = world.state.join(format!("{tag}-file-backend"));
    std::fs::create_dir_all(&dir).expect("dir");
    vec![
        BackendUnderTest {
            label: "file",
            url: format!("file://{}", dir.display()),
        },
        BackendUnderTest {
            label: "kubernetes",
            url: format!("kubernetes://{ns}"),
        },
        BackendUnderTest {
            label: "postgres",
            url: world.pg.url_for(&db),
        },
    ]
}

/// A runner on `url`, with the world's `preview-base` state copied into it
/// (preview-pr reads the base's outputs from its own backend).
pub fn runner_on(world: &World, url: &str) -> Stacks {
    let base = Stacks::new(world);
    let dir = tempfile::tempdir().expect("export dir");
    let export = dir.path().join("preview-base.json");
    base.ok(&[
        "state",
        "export",
        "preview-base",
        &export.display().to_string(),
    ]);
    let stacks = Stacks::new(world).with_backend(url);
    stacks.ok(&[
        "state",
        "import",
        "preview-base",
        &export.display().to_string(),
        "--force",
    ]);
    stacks
}
