//! One pull request's whole life, end to end, on the real control plane (node
//! simulator for the kubelet), a real PostgreSQL and the GitHub fake (validated
//! against GitHub's OpenAPI description), driven as the example workflows in
//! `examples/github/` drive the binaries: every step runs the `stacks` and
//! `preview` binaries as processes, from a `PATH` holding them ("Put the tools on
//! PATH"), with the subcommands, arguments and environment of the workflow step it
//! stands for (`KUBECONFIG`, `PREVIEW_BACKEND`, `PREVIEW_DB_PASSWORD`,
//! `GITHUB_TOKEN`, …; no database URL: the per-PR database is made by in-cluster
//! Jobs, as in CI).
//!
//! 0. The operator's set-up: the plan credential is a ServiceAccount
//!    (`lifecycle-plan` in `default`) with a token kubeconfig, named as
//!    `planIdentity` in the checkout's `preview-base.yaml`; `stacks up preview-base`
//!    grants it read and dry-run (`preview-envs-planner`) and makes the API server
//!    refuse its every real write (`preview-envs-plan-only`).
//! 1. An outsider (read role) opens a PR from a fork. `preview-deploy.yml`'s plan
//!    job checks the head, saves the plan with the plan credential (`stacks preview
//!    … --format markdown --out plan.json > plan.md`, every step validated by the
//!    server), posts the plan comment with the plan id and creates the Deployment;
//!    the gate does not approve (fork, author and actor not maintainers).
//! 2. A maintainer approves the run's pending `preview` environment by hand (the
//!    review the fake records); only then does `deploy-reusable.yml` run:
//!    verify-head, the saved plan's id checked against the posted one, `stacks
//!    --json up --pr N --commit SHA --plan plan.json`, Deployment success, the
//!    report comment with the applied plan id. The preview's pods run the built
//!    digests, and the plan credential cannot really write to the preview.
//! 3. The outsider pushes. The old run's deploy stops at `verify-head`, naming both
//!    SHAs; the new run's gate asks for a maintainer again, and its environment is
//!    not approved by the first approval.
//! 4. After the new approval the new saved plan is applied: the preview runs the
//!    new digests and the one PR comment is edited in place (same id, new commit,
//!    digests and applied plan id).
//! 5. The PR merges: `preview-cleanup.yml` destroys the preview (namespace,
//!    database and state gone, verified), marks its Deployments inactive and updates
//!    the comment; `preview-sweep.yml` then finds nothing to do;
//!    `production-deploy.yml` promotes the merged head's tested images, and the
//!    production pods run exactly them.
//! 6. The preview Deployments end `inactive`, the production one `success`.
//!
//! Not run: the health checks (the preview and production URLs are not routable
//! from the test), and the build/publish workflows (the digests are given).
//!
//! The promotion step gets `PREVIEW_DIGITALOCEAN_TOKEN`, which the production stack
//! needs (DNS-01) and `production-deploy.yml` passes, and, unlike the workflow,
//! `PREVIEW_TLS_ISSUER=self-signed` (Let's Encrypt is unreachable from the test).
//! Every `stacks` step gets `PREVIEW_STATE_PASSPHRASE`, as the workflows pass it.

mod support_cluster;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use github_fake::GithubFake;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use preview_core::plan::NOT_VALIDATED;
use preview_github::GithubToken;
use preview_github::github::{GithubClient, RepoSlug, RetryPolicy, ReviewRequest};
use stacks::stack::plan_identity::{DENIED_MESSAGE, PLAN_ONLY_POLICY};
use support_cluster::{STATE_PASSPHRASE, Stacks, World, digest, world};

const PR: u64 = 7301;
/// The plan credential's ServiceAccount (namespace `default`).
const PLAN_SA: &str = "lifecycle-plan";
const PROD_NS: &str = "lifecycle-prod";
const PROD_DB_NS: &str = "lifecycle-prod-db";
const OUTSIDER: &str = "outsider";
const MAINTAINER: &str = "maintainer";
const MAINTAINER_TOKEN: &str = "maintainer-token-not-secret";
const APPROVER_TOKEN: &str = "approver-token-not-secret";
const ACTIONS_TOKEN: &str = "actions-token-not-secret";
const PREVIEW_ENV_ID: u64 = 4242;
const DB_PASSWORD: &str = "db-password-canary-7f3a";
const DOMAIN: &str = "preview.example";

fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(20)
}

fn web(n: u64) -> String {
    format!("ghcr.io/aphiria/web@sha256:{}", digest(n))
}

fn api(n: u64) -> String {
    format!("ghcr.io/aphiria/api@sha256:{}", digest(n + 1_000_000))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `preview` binary (crate `cli`), built by cargo as `cargo test --workspace`
/// builds it: a test target of `cli` with the workspace's feature set, so the
/// artifact is the one `cargo test --workspace` uses (a no-op when it is fresh).
fn preview_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let stacks = Path::new(env!("CARGO_BIN_EXE_stacks"));
        let profile_dir = stacks.parent().expect("profile dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut build = Command::new(cargo);
        build
            .args(["build", "--workspace", "--locked", "--test", "workflows"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let out = build
            .output()
            .expect("run cargo build for the preview binary");
        assert!(
            out.status.success(),
            "cargo build of the preview binary failed:\n{}",
            text(&out.stderr)
        );
        let bin = profile_dir.join("preview");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// The runner of the workflow steps: a `tools/` directory on `PATH` with `stacks`
/// and `preview` (`preview sweep` finds `stacks` there), a scratch working
/// directory (`plan.md`), and for each step only the environment the step sets,
/// plus `PREVIEW_CONFIG_DIR` for the checkout's `config/` with production moved
/// aside (the workflows use the default `config`).
struct Runner {
    tools: tempfile::TempDir,
    work: PathBuf,
    config_dir: PathBuf,
    backend: String,
    deploy_kubeconfig: PathBuf,
    plan_kubeconfig: PathBuf,
    github_api: String,
}

/// Which cluster credential a `stacks` step gets as `KUBECONFIG_YAML`.
#[derive(Clone, Copy, Debug)]
enum Credential {
    /// `preview-plan`: read and dry-run only (`planIdentity`).
    Plan,
    /// `preview` / `preview-cleanup` / `production`: the deployer.
    Deploy,
}

impl Runner {
    /// Runs `tool` from `tools/` with only `env` (plus `PATH`, `HOME`, `TMPDIR`).
    fn run(&self, tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.tools.path().to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        // Resolved on the step's PATH, as the runner's shell does.
        let bin = self.tools.path().join(tool);
        Command::new(&bin)
            .env_clear()
            .env("PATH", std::env::join_paths(paths).expect("PATH"))
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("TMPDIR", std::env::temp_dir())
            .current_dir(&self.work)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
    }

    fn ok(&self, tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self.run(tool, args, env);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    /// A `stacks` step: `KUBECONFIG` from the environment's `KUBECONFIG_YAML`, the
    /// backend and the database password from its secrets.
    fn stacks(&self, credential: Credential, args: &[&str]) -> Output {
        self.stacks_with(credential, args, &[])
    }

    /// [`Self::stacks`] with the step's other secrets.
    fn stacks_with(&self, credential: Credential, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let kubeconfig = match credential {
            Credential::Plan => &self.plan_kubeconfig,
            Credential::Deploy => &self.deploy_kubeconfig,
        };
        let kubeconfig = kubeconfig.to_string_lossy().into_owned();
        let config_dir = self.config_dir.to_string_lossy().into_owned();
        let mut env = vec![
            ("KUBECONFIG", kubeconfig.as_str()),
            ("PREVIEW_BACKEND", self.backend.as_str()),
            ("PREVIEW_DB_PASSWORD", DB_PASSWORD),
            ("PREVIEW_STATE_PASSPHRASE", STATE_PASSPHRASE),
            // The checkout's `config/` (production moved aside, see below).
            ("PREVIEW_CONFIG_DIR", config_dir.as_str()),
        ];
        env.extend_from_slice(extra);
        self.run("stacks", args, &env)
    }

    fn stacks_ok(&self, credential: Credential, args: &[&str]) -> Output {
        let out = self.stacks(credential, args);
        assert!(
            out.status.success(),
            "stacks {args:?} ({credential:?}) failed:\n--- stdout\n{}\n--- stderr\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    /// A `preview` step with the job's `GITHUB_TOKEN`.
    fn preview(&self, args: &[&str]) -> Output {
        self.run("preview", args, &self.github_env(&[]))
    }

    fn preview_ok(&self, args: &[&str]) -> Output {
        self.ok("preview", args, &self.github_env(&[]))
    }

    /// `preview verify-head` of the PR against `sha`.
    fn verify_head(&self, repo: &str, sha: &str) -> Output {
        let pr = PR.to_string();
        self.preview(&["verify-head", "--repo", repo, "--pr", &pr, "--sha", sha])
    }

    /// `preview deployment status` of Deployment `id` as `state`, with `extra`
    /// arguments (e.g. `--environment-url`) and the run's log URL.
    fn deployment_status(&self, repo: &str, id: &str, state: &str, extra: &[&str], log_url: &str) {
        let mut args = vec![
            "deployment",
            "status",
            "--repo",
            repo,
            "--id",
            id,
            "--state",
            state,
        ];
        args.extend_from_slice(extra);
        args.extend(["--log-url", log_url]);
        self.preview_ok(&args);
    }

    /// `preview comment` on the PR for `run`'s commit and digests, with `plan.md`,
    /// the run's log URL, `status` and the `extra` arguments (plan id, URLs, message).
    fn run_comment(&self, fake: &GithubFake, run: &Run, status: &str, extra: &[&str]) {
        let repo = fake.repo();
        let pr = PR.to_string();
        let url = run.url(fake);
        let mut args = vec![
            "comment",
            "--repo",
            &repo,
            "--pr",
            &pr,
            "--status",
            status,
            "--sha",
            &run.head_sha,
            "--web-digest",
            &run.web,
            "--api-digest",
            &run.api,
            "--plan-file",
            "plan.md",
            "--log-url",
            &url,
        ];
        args.extend_from_slice(extra);
        self.preview_ok(&args);
    }

    /// The `planId` of the saved plan `plan.json` (`jq -r .planId plan.json`).
    fn saved_plan_id(&self) -> String {
        let saved: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.work.join("plan.json")).expect("plan.json"),
        )
        .expect("plan.json is JSON");
        saved["planId"].as_str().unwrap_or_default().to_owned()
    }

    fn github_env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("GITHUB_TOKEN", ACTIONS_TOKEN),
            ("GITHUB_API_URL", self.github_api.as_str()),
            ("GITHUB_SERVER_URL", "https://github.com"),
        ];
        env.extend_from_slice(extra);
        env
    }
}

/// The repository's configs, with production moved out of the way of the shared
/// `preview-base` (its own namespaces, gateway and GatewayClass), as
/// `cluster_promotion.rs` does, and the plan credential's ServiceAccount as
/// `preview-base`'s `planIdentity`.
fn config_dir() -> tempfile::TempDir {
    let (repo, dir) = support_cluster::config_copy();
    let production = std::fs::read_to_string(repo.join("production.yaml")).expect("production");
    let moved = production
        .replace("namespace: aphiria\n", &format!("namespace: {PROD_NS}\n"))
        .replace(
            "  namespace: default\n",
            &format!("  namespace: {PROD_DB_NS}\n"),
        )
        .replace("  name: gateway\n", "  name: lifecycle-gateway\n")
        .replace(
            "  namespace: nginx-gateway\n",
            "  namespace: lifecycle-gateway\n",
        )
        .replace("  className: nginx\n", "  className: nginx-lifecycle\n");
    for needle in [
        format!("namespace: {PROD_NS}\n"),
        PROD_DB_NS.to_owned(),
        "name: lifecycle-gateway".to_owned(),
        "className: nginx-lifecycle".to_owned(),
    ] {
        assert!(
            moved.contains(&needle),
            "production.yaml changed shape: {needle}"
        );
    }
    std::fs::write(dir.path().join("production.yaml"), moved).expect("write");
    let base = std::fs::read_to_string(repo.join("preview-base.yaml")).expect("preview-base");
    assert!(
        !base.contains("\nplanIdentity:"),
        "preview-base.yaml sets planIdentity"
    );
    let base = format!(
        "{base}\nplanIdentity:\n  kind: ServiceAccount\n  name: {PLAN_SA}\n  namespace: default\n"
    );
    std::fs::write(dir.path().join("preview-base.yaml"), base).expect("write");
    dir
}

/// The plan identity: a ServiceAccount and a kubeconfig with a token for it. Its
/// rights (the `preview-plan` scope of SECRETS.md) come from `preview-base`'s
/// `planIdentity` alone.
async fn plan_kubeconfig(world: &World, dir: &Path) -> PathBuf {
    let client = world.cluster.client().expect("client");
    let name = PLAN_SA;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    sas.create(
        &pp,
        &serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("sa"),
    )
    .await
    .expect("create the plan ServiceAccount");
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {"audiences": [], "expirationSeconds": 7200}
    }))
    .expect("token request");
    let token = sas
        .create_token_request(name, &pp, &request)
        .await
        .expect("token for the plan ServiceAccount")
        .status
        .expect("token status")
        .token;
    // The admin kubeconfig names the server and its CA; only the user changes.
    let admin = std::fs::read_to_string(world.cluster.kubeconfig_path()).expect("kubeconfig");
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&admin).expect("kubeconfig yaml");
    let users = doc
        .get_mut("users")
        .and_then(serde_yaml_ng::Value::as_sequence_mut)
        .expect("users");
    users.truncate(1);
    users[0] =
        serde_yaml_ng::from_str(&format!("name: {name}\nuser:\n  token: {token}\n")).expect("user");
    for context in doc
        .get_mut("contexts")
        .and_then(serde_yaml_ng::Value::as_sequence_mut)
        .expect("contexts")
    {
        context["context"]["user"] = name.into();
    }
    let path = dir.join("plan.kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&doc).expect("yaml")).expect("write");
    path
}

/// The plan credential, from the preview's side: a real create or patch with its
/// kubeconfig is refused by the API server with `preview-envs-plan-only`'s message
/// (after the policy is loaded: a probe ConfigMap that got through before is
/// removed), and the refused patch changed nothing.
async fn plan_credential_cannot_write(admin: &kube::Client, kubeconfig: &Path, ns: &str) {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).expect("plan kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("plan kubeconfig");
    let planner = kube::Client::try_from(config).expect("plan client");
    let refused = |err: kube::Error| match err {
        kube::Error::Api(status)
            if status.code == 403 && status.message.contains(PLAN_ONLY_POLICY) =>
        {
            assert!(
                status.message.contains(DENIED_MESSAGE),
                "{}",
                status.message
            );
        }
        other => panic!("not refused by {PLAN_ONLY_POLICY}: {other}"),
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(planner.clone(), ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let probe: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "plan-credential-probe"}
        }))
        .expect("config map");
        match config_maps.create(&PostParams::default(), &probe).await {
            Err(kube::Error::Api(status)) if status.message.contains(PLAN_ONLY_POLICY) => {
                refused(kube::Error::Api(status));
                break;
            }
            other => {
                // Not yet enforced: the write went through, or its name is taken.
                let _ = Api::<ConfigMap>::namespaced(admin.clone(), ns)
                    .delete("plan-credential-probe", &Default::default())
                    .await;
                assert!(
                    std::time::Instant::now() < deadline,
                    "the plan credential's write was not refused: {other:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(planner, ns);
    let before = Api::<Deployment>::namespaced(admin.clone(), ns)
        .get("web")
        .await
        .expect("web");
    refused(
        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
            )
            .await
            .expect_err("a real patch by the plan credential is refused"),
    );
    let after = Api::<Deployment>::namespaced(admin.clone(), ns)
        .get("web")
        .await
        .expect("web");
    assert_eq!(
        before.metadata.resource_version, after.metadata.resource_version,
        "the refused patch changed the preview"
    );
}

/// The app images of a namespace's Deployments' pod templates and of its running
/// pods' `imageID`s.
async fn app_images(client: &kube::Client, ns: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let app = |i: &str| i.starts_with("ghcr.io/aphiria/");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut templates = BTreeSet::new();
    for d in deployments
        .list(&ListParams::default())
        .await
        .expect("deployments")
        .items
    {
        let spec = d.spec.expect("spec").template.spec.expect("pod spec");
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            if let Some(image) = c.image.as_deref().filter(|i| app(i)) {
                templates.insert(image.to_owned());
            }
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut running = BTreeSet::new();
    for pod in pods.list(&ListParams::default()).await.expect("pods").items {
        let Some(status) = pod.status else { continue };
        if status.phase.as_deref() != Some("Running") {
            continue;
        }
        for c in status.container_statuses.iter().flatten() {
            if app(&c.image_id) {
                running.insert(c.image_id.clone());
            }
        }
    }
    (templates, running)
}

/// Waits (up to a minute) until the namespace's running pods report exactly
/// `images` (a rollout replaces the old pods).
async fn assert_runs(client: &kube::Client, ns: &str, images: &BTreeSet<String>) {
    let mut last = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..60 {
        last = app_images(client, ns).await;
        if &last.0 == images && &last.1 == images {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!(
        "{ns}: templates {:?}, running {:?}, expected {images:?}",
        last.0, last.1
    );
}

async fn namespace_exists(client: &kube::Client, name: &str) -> bool {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .get_opt(name)
        .await
        .expect("get namespace")
        .is_some()
}

async fn database_exists(world: &World) -> bool {
    let pg = world.pg.client().await.expect("pg");
    pg.query_opt(
        "SELECT 1 FROM pg_database WHERE datname = $1",
        &[&format!("aphiria_pr_{PR}")],
    )
    .await
    .expect("query")
    .is_some()
}

/// Whether a maintainer approved run `run`'s `preview` environment: the only thing
/// that lets GitHub start the run's deploy job.
fn approved_by_maintainer(fake: &GithubFake, run: u64) -> bool {
    fake.reviews().iter().any(|r| {
        r.run_id == run
            && r.state == "approved"
            && r.by == MAINTAINER
            && r.environment_ids.contains(&PREVIEW_ENV_ID)
    })
}

/// A maintainer approves the run's pending `preview` environment by hand (the
/// "Review deployments" button: the same API call with the maintainer's token).
async fn maintainer_approves(fake: &GithubFake, run: u64) {
    let client = GithubClient::new(
        &fake.base_url(),
        GithubToken::new(MAINTAINER_TOKEN),
        RetryPolicy::fast(),
    )
    .expect("client");
    let repo: RepoSlug = fake.repo().parse().expect("repo");
    let pending = client
        .pending_deployments(&repo, run)
        .await
        .expect("pending deployments");
    let ids: Vec<u64> = pending
        .iter()
        .filter(|p| p.environment.name.as_deref() == Some("preview"))
        .filter_map(|p| p.environment.id)
        .collect();
    assert_eq!(ids, [PREVIEW_ENV_ID], "run {run} waits on `preview`");
    assert!(pending.iter().all(|p| p.current_user_can_approve));
    client
        .review_pending_deployments(
            &repo,
            run,
            &ReviewRequest {
                environment_ids: ids,
                state: "approved",
                comment: "Reviewed the plan.",
            },
        )
        .await
        .expect("approve");
}

/// One `preview-deploy.yml` run (`validate` passed): its inputs.
struct Run {
    id: u64,
    head_sha: String,
    web: String,
    api: String,
}

impl Run {
    /// Run `id` for commit `n`: its head SHA and its web and API images.
    fn of_commit(id: u64, n: u8) -> Self {
        Run {
            id,
            head_sha: sha(n),
            web: web(n.into()),
            api: api(n.into()),
        }
    }

    fn url(&self, fake: &GithubFake) -> String {
        format!(
            "https://github.com/{}/actions/runs/{}",
            fake.repo(),
            self.id
        )
    }
}

/// The `plan` job's GitHub steps after the plan: the comment (with the plan id)
/// and the Deployment (queued). Returns the Deployment id.
fn plan_comment_and_deployment(r: &Runner, fake: &GithubFake, run: &Run, plan_id: &str) -> u64 {
    let repo = fake.repo();
    let pr = PR.to_string();
    let url = run.url(fake);
    r.run_comment(
        fake,
        run,
        "pending",
        &[
            "--plan-id",
            plan_id,
            "--message",
            "Plan ready. Deploying needs approval of the `preview` environment: automatic for maintainers, manual for everyone else.",
        ],
    );
    let out = r.preview_ok(&[
        "deployment",
        "create",
        "--repo",
        &repo,
        "--pr",
        &pr,
        "--sha",
        &run.head_sha,
    ]);
    let id = text(&out.stdout).trim().to_owned();
    r.deployment_status(&repo, &id, "queued", &[], &url);
    id.parse().expect("deployment id")
}

/// A new run: its `preview` environment waits on a maintainer, and its `plan` job
/// checks the head (`verify-head`) and runs the plan step
/// ([`plan_before_approval`]). Returns plan.md and the plan id.
fn plan_job(r: &Runner, fake: &GithubFake, run: &Run) -> (String, String) {
    fake.add_pending_environment(run.id, PREVIEW_ENV_ID, "preview", 0, &[MAINTAINER]);
    let head = r.verify_head(&fake.repo(), &run.head_sha);
    assert!(head.status.success(), "verify-head: {}", text(&head.stderr));
    plan_before_approval(r, run)
}

/// The `plan` job's plan step, with the plan credential only: `stacks preview …
/// --format markdown --out plan.json > plan.md`, then `jq -r .planId plan.json`.
/// Asserts the plan succeeded and the API server validated every step (no step
/// fell back to a local diff). Returns plan.md and the plan id.
fn plan_before_approval(r: &Runner, run: &Run) -> (String, String) {
    let pr = PR.to_string();
    let out = r.stacks_ok(
        Credential::Plan,
        &[
            "preview",
            "preview-pr",
            "--pr",
            &pr,
            "--web-image",
            &run.web,
            "--api-image",
            &run.api,
            "--format",
            "markdown",
            "--out",
            "plan.json",
        ],
    );
    let plan_md = text(&out.stdout);
    std::fs::write(r.work.join("plan.md"), &plan_md).expect("plan.md");
    assert!(
        !plan_md.contains(NOT_VALIDATED) && !text(&out.stderr).contains(NOT_VALIDATED),
        "the plan credential's dry-runs were refused:\n{plan_md}\n{}",
        text(&out.stderr)
    );
    let id = r.saved_plan_id();
    let hex = id.strip_prefix("sha256:").unwrap_or_default();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "plan.json has no plan id: {id:?}"
    );
    (plan_md, id)
}

/// The `gate` job; returns its JSON report.
fn gate(r: &Runner, fake: &GithubFake, run: &Run) -> serde_json::Value {
    let repo = fake.repo();
    let pr = PR.to_string();
    let run_id = run.id.to_string();
    let out = r.ok(
        "preview",
        &[
            "gate",
            "--repo",
            &repo,
            "--pr",
            &pr,
            "--run-id",
            &run_id,
            "--environment",
            "preview",
            "--sha",
            &run.head_sha,
            "--triggering-actor",
            OUTSIDER,
            "--timeout",
            "300s",
            "--json",
        ],
        &r.github_env(&[("PREVIEW_APPROVER_TOKEN", APPROVER_TOKEN)]),
    );
    serde_json::from_slice(&out.stdout).expect("gate json")
}

/// `deploy-reusable.yml` for a preview (but its health check), applying the saved
/// plan `plan.json` posted as `plan_id`, and the `report` job's comment. `Ok`: the
/// `stacks --json up` output and the applied plan id. `Err`: `verify-head` stopped
/// the job before `stacks up` (its stderr), after the "Deployment failed" step and
/// the failure comment (with the posted plan id) ran.
fn deploy(
    r: &Runner,
    fake: &GithubFake,
    run: &Run,
    deployment: u64,
    plan_id: &str,
) -> Result<(Output, String), String> {
    let repo = fake.repo();
    let pr = PR.to_string();
    let id = deployment.to_string();
    let url = run.url(fake);
    let web_url = format!("https://{PR}.pr.{DOMAIN}");
    let api_url = format!("https://{PR}.pr-api.{DOMAIN}");
    r.deployment_status(&repo, &id, "in_progress", &[], &url);
    let head = r.verify_head(&repo, &run.head_sha);
    if !head.status.success() {
        r.deployment_status(&repo, &id, "failure", &[], &url);
        r.run_comment(
            fake,
            run,
            "failure",
            &[
                "--plan-id",
                plan_id,
                "--message",
                "Deployment result: failure. See the workflow run for the failing step (a saved plan that no longer matches is refused, naming what moved).",
            ],
        );
        return Err(text(&head.stderr));
    }
    // The file must be the plan that was posted for review.
    assert_eq!(
        r.saved_plan_id(),
        plan_id,
        "the saved plan is not the reviewed plan"
    );
    let up = r.stacks_ok(
        Credential::Deploy,
        &[
            "--json",
            "up",
            "preview-pr",
            "--web-image",
            &run.web,
            "--api-image",
            &run.api,
            "--pr",
            &pr,
            "--commit",
            &run.head_sha,
            "--plan",
            "plan.json",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&up.stdout).expect("up json");
    let applied = report["planId"].as_str().unwrap_or_default().to_owned();
    // (Health check: the preview URLs are not routable from the test.)
    r.deployment_status(
        &repo,
        &id,
        "success",
        &["--environment-url", &web_url],
        &url,
    );
    // The `report` job.
    r.run_comment(
        fake,
        run,
        "success",
        &[
            "--web-url",
            &web_url,
            "--api-url",
            &api_url,
            "--plan-id",
            &applied,
            "--message",
            "Deployed and healthy: the saved plan shown below was applied.",
        ],
    );
    Ok((up, applied))
}

/// The one preview comment (the gate's own comment carries another marker).
fn preview_comment(fake: &GithubFake) -> github_fake::Comment {
    let comments: Vec<_> = fake
        .comments(PR)
        .into_iter()
        .filter(|c| c.body.contains(preview_github::comment::PR_COMMENT_MARKER))
        .collect();
    assert_eq!(comments.len(), 1, "one preview comment: {comments:?}");
    comments.into_iter().next().expect("comment")
}

/// The gate's own comment ("a maintainer must approve").
fn gate_comment(fake: &GithubFake) -> String {
    let comments: Vec<_> = fake
        .comments(PR)
        .into_iter()
        .filter(|c| c.body.contains(preview_github::gate::GATE_COMMENT_MARKER))
        .collect();
    assert_eq!(comments.len(), 1, "one gate comment: {comments:?}");
    comments[0].body.clone()
}

/// Reviews of pending deployments sent by anyone (approvals and rejections).
fn approvals_sent(fake: &GithubFake) -> usize {
    fake.requests()
        .iter()
        .filter(|q| q.method == "POST" && q.path.ends_with("/pending_deployments"))
        .count()
}

fn last_state(fake: &GithubFake, deployment: u64) -> String {
    fake.statuses(deployment)
        .last()
        .map(|s| s.state.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsiders_pr_from_first_plan_to_production() {
    let world = world().await;
    let client = world.cluster.client().expect("client");
    let work = tempfile::tempdir().expect("work dir");
    let configs = config_dir();
    let fake = GithubFake::start()
        .await
        .expect("github-fake (set PREVIEW_GITHUB_OPENAPI outside the main checkout)");
    // The operator's set-up: the plan credential's ServiceAccount, named as
    // `planIdentity`, gets its rights from `stacks up preview-base` alone.
    let plan_kubeconfig = plan_kubeconfig(world, work.path()).await;
    let out = Stacks::new(world)
        .with_config_dir(configs.path())
        .ok(&["up", "preview-base"]);
    for object in [
        "+ ClusterRole preview-envs-planner",
        "+ ClusterRoleBinding preview-envs-planner",
        "+ ValidatingAdmissionPolicy preview-envs-plan-only",
        "+ ValidatingAdmissionPolicyBinding preview-envs-plan-only",
    ] {
        assert!(
            text(&out.stdout).contains(object),
            "{object}: {}",
            text(&out.stdout)
        );
    }
    let tools = tempfile::tempdir().expect("tools dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_stacks"), tools.path().join("stacks"))
        .expect("tools/stacks");
    std::os::unix::fs::symlink(preview_bin(), tools.path().join("preview")).expect("tools/preview");
    let r = Runner {
        tools,
        work: work.path().to_path_buf(),
        config_dir: configs.path().to_path_buf(),
        backend: format!("file://{}", world.state.display()),
        deploy_kubeconfig: world.cluster.kubeconfig_path().to_path_buf(),
        plan_kubeconfig,
        github_api: fake.base_url(),
    };
    // Production's database Jobs reach the kit's PostgreSQL through production's
    // Service `db` (as cluster DNS and kube-proxy would): the workflow gives
    // `stacks promote` no database URL.
    testkit::NodeSimulator::shared()
        .await
        .expect("simulator")
        .route_service(
            &format!("db.{PROD_DB_NS}.svc.cluster.local:5432"),
            &format!("127.0.0.1:{}", world.pg.port()),
        );
    // Production's PostgreSQL goes into an existing namespace, as an operator makes it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": PROD_DB_NS}}))
                .expect("namespace"),
        )
        .await
        .expect("create the production database namespace");

    let repo = fake.repo();
    let pr = PR.to_string();
    fake.add_token(MAINTAINER_TOKEN, MAINTAINER);
    fake.add_token(APPROVER_TOKEN, "preview-approver");
    fake.set_role(MAINTAINER, "maintain");
    fake.set_role("preview-approver", "admin");
    fake.set_role(OUTSIDER, "read");
    fake.add_pull(PR, OUTSIDER, &sha(1));
    fake.set_pull_head_repo(PR, &format!("{OUTSIDER}/site"));

    // ── 1. The outsider's first commit: plan before approval, plan credential. ──
    let run1 = Run::of_commit(9001, 1);
    let (plan_md, plan1) = plan_job(&r, &fake, &run1);
    assert!(plan_md.contains(&format!("preview-pr-{PR}")), "{plan_md}");
    // A plan made nothing.
    assert!(!namespace_exists(&client, &format!("preview-pr-{PR}")).await);
    let d1 = plan_comment_and_deployment(&r, &fake, &run1, &plan1);
    let comment = preview_comment(&fake);
    assert!(
        comment.body.contains(&sha(1)) && comment.body.contains(&web(1)),
        "{}",
        comment.body
    );
    assert!(
        comment.body.contains(&format!("| 🧾 Plan | `{plan1}` |")),
        "the plan comment shows the plan id: {}",
        comment.body
    );
    let first_comment = comment.clone();

    // The gate does not approve: a fork, an author and an actor without maintain.
    let report = gate(&r, &fake, &run1);
    assert_eq!(report["decision"], "manual_approval_required", "{report}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("fork"), "{reason}");
    assert!(reason.contains(OUTSIDER), "{reason}");
    assert!(
        fake.reviews().is_empty(),
        "the gate approved: {:?}",
        fake.reviews()
    );
    assert_eq!(approvals_sent(&fake), 0, "the gate tried to approve");
    assert!(
        gate_comment(&fake).contains(&sha(1)),
        "{}",
        gate_comment(&fake)
    );
    assert!(!approved_by_maintainer(&fake, run1.id));

    // ── 2. A maintainer approves by hand; the deploy job runs. ──
    maintainer_approves(&fake, run1.id).await;
    assert!(approved_by_maintainer(&fake, run1.id));
    let (up, applied) = deploy(&r, &fake, &run1, d1, &plan1).expect("the head is the built commit");
    assert_eq!(applied, plan1, "the reviewed plan is the one applied");
    assert!(
        text(&up.stderr).contains(&format!("recorded the tested images of preview-pr-{PR}")),
        "{}",
        text(&up.stderr)
    );
    let preview_ns = format!("preview-pr-{PR}");
    assert_runs(&client, &preview_ns, &[web(1), api(1)].into()).await;
    assert!(database_exists(world).await);
    let comment = preview_comment(&fake);
    assert_eq!(
        comment.id, first_comment.id,
        "the comment is edited in place"
    );
    assert!(
        comment
            .body
            .contains(&format!("| 🧾 Plan applied | `{plan1}` |")),
        "{}",
        comment.body
    );
    assert_eq!(last_state(&fake, d1), "success");
    plan_credential_cannot_write(&client, &r.plan_kubeconfig, &preview_ns).await;

    // ── 3. The outsider pushes: the old run is stale, the new one needs approval. ──
    fake.set_pull_head(PR, &sha(2));
    // The old run's deploy job again (a re-run, or an approval given late) stops at
    // `verify-head`, naming both commits, before `stacks up`.
    let err = deploy(&r, &fake, &run1, d1, &plan1).expect_err("verify-head passed a moved head");
    assert!(err.contains(&sha(1)) && err.contains(&sha(2)), "{err}");
    assert_eq!(last_state(&fake, d1), "failure");
    assert_runs(&client, &preview_ns, &[web(1), api(1)].into()).await;
    let run2 = Run::of_commit(9002, 2);
    let (plan_md, plan2) = plan_job(&r, &fake, &run2);
    assert!(
        plan_md.contains(&digest(2)),
        "the plan shows the new digest: {plan_md}"
    );
    assert_ne!(plan2, plan1);
    let d2 = plan_comment_and_deployment(&r, &fake, &run2, &plan2);
    let comment = preview_comment(&fake);
    assert!(
        comment.body.contains(&format!("| 🧾 Plan | `{plan2}` |")),
        "{}",
        comment.body
    );
    let report = gate(&r, &fake, &run2);
    assert_eq!(report["decision"], "manual_approval_required", "{report}");
    assert_eq!(report["sha"], sha(2));
    assert_eq!(
        approvals_sent(&fake),
        1,
        "only the maintainer's approval of run 1"
    );
    assert!(
        gate_comment(&fake).contains(&sha(2)),
        "{}",
        gate_comment(&fake)
    );
    // The first approval does not carry over to the new commit's run.
    assert!(!approved_by_maintainer(&fake, run2.id));
    assert_runs(&client, &preview_ns, &[web(1), api(1)].into()).await;

    // ── 4. Approved again: the preview is updated, the comment edited in place. ──
    maintainer_approves(&fake, run2.id).await;
    assert!(approved_by_maintainer(&fake, run2.id));
    let (_, applied) = deploy(&r, &fake, &run2, d2, &plan2).expect("the head is the built commit");
    assert_eq!(applied, plan2, "the new reviewed plan is the one applied");
    assert_runs(&client, &preview_ns, &[web(2), api(2)].into()).await;
    let comment = preview_comment(&fake);
    assert_eq!(
        comment.id, first_comment.id,
        "the comment is edited in place"
    );
    assert_ne!(comment.body, first_comment.body);
    assert!(
        comment.body.contains(&sha(2)) && comment.body.contains(&web(2)),
        "{}",
        comment.body
    );
    // The old commit and plan are gone from it (the old digests only in the plan's diff).
    assert!(!comment.body.contains(&sha(1)), "{}", comment.body);
    assert!(!comment.body.contains(&plan1), "{}", comment.body);
    assert!(
        comment
            .body
            .contains(&format!("| 🧾 Plan applied | `{plan2}` |")),
        "the final comment shows the applied plan id: {}",
        comment.body
    );
    assert!(
        comment
            .body
            .contains(&format!("| 📦 Web image | `{}` |", web(2))),
        "{}",
        comment.body
    );

    // ── 5. Merged: cleanup, sweep, promotion. ──
    fake.close_pull(PR, true);
    // preview-cleanup.yml
    let cleanup = || {
        r.stacks_ok(
            Credential::Deploy,
            &[
                "destroy",
                "preview-pr",
                "--pr",
                &pr,
                "--lock-timeout",
                "15m",
            ],
        )
    };
    cleanup();
    assert!(
        !namespace_exists(&client, &preview_ns).await,
        "namespace left"
    );
    assert!(!database_exists(world).await, "database left");
    assert!(!support_cluster::has_state(world, PR), "state left");
    // A re-run of cleanup (or a second `closed` event) finds nothing and succeeds.
    cleanup();
    let url = format!("https://github.com/{repo}/actions/runs/9003");
    r.preview_ok(&[
        "deployment",
        "deactivate",
        "--repo",
        &repo,
        "--environment",
        &preview_ns,
    ]);
    r.preview_ok(&[
        "comment",
        "--repo",
        &repo,
        "--pr",
        &pr,
        "--status",
        "destroyed",
        "--if-exists",
        "--log-url",
        &url,
        "--message",
        &format!(
            "The PR was closed: namespace `preview-pr-{PR}`, its database and its state are gone."
        ),
    ]);
    let comment = preview_comment(&fake);
    assert_eq!(comment.id, first_comment.id);
    assert!(
        comment.body.contains("its state are gone"),
        "{}",
        comment.body
    );

    // preview-sweep.yml (scheduled): nothing left to destroy.
    let kubeconfig = r.deploy_kubeconfig.to_string_lossy().into_owned();
    let config_dir = r.config_dir.to_string_lossy().into_owned();
    let out = r.ok(
        "preview",
        &["sweep", "--repo", &repo, "--lock-timeout", "10m", "--json"],
        &r.github_env(&[
            ("KUBECONFIG", &kubeconfig),
            ("PREVIEW_BACKEND", &r.backend),
            ("PREVIEW_DB_PASSWORD", DB_PASSWORD),
            ("PREVIEW_STATE_PASSPHRASE", STATE_PASSPHRASE),
            ("PREVIEW_CONFIG_DIR", &config_dir),
        ]),
    );
    let sweep: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sweep json");
    assert_eq!(sweep["summary"]["destroyed"], 0, "{sweep}");
    assert_eq!(sweep["summary"]["would_destroy"], 0, "{sweep}");
    assert!(
        sweep["stacks"]
            .as_array()
            .is_some_and(|s| s.iter().all(|v| v["pr"] != PR)),
        "{sweep}"
    );
    assert!(
        sweep["empty"]
            .as_array()
            .is_some_and(|s| !s.contains(&serde_json::json!(preview_ns))),
        "the destroyed preview's state is removed, so the sweep no longer lists it: {sweep}"
    );

    // production-deploy.yml: the merged PR's head, which must have been tested.
    let github = GithubClient::new(
        &fake.base_url(),
        GithubToken::new(ACTIONS_TOKEN),
        RetryPolicy::fast(),
    )
    .expect("client");
    let pull = github
        .get_pull(&repo.parse().expect("repo"), PR)
        .await
        .expect("the merged PR");
    assert_eq!(pull.merged, Some(true));
    let merged_head = pull.head.sha;
    assert_eq!(merged_head, sha(2));
    let out = r.preview_ok(&[
        "deployment",
        "create",
        "--repo",
        &repo,
        "--environment",
        "production",
        "--production",
        "--sha",
        &merged_head,
    ]);
    let d3: u64 = text(&out.stdout).trim().parse().expect("deployment id");
    let d3s = d3.to_string();
    let url = format!("https://github.com/{repo}/actions/runs/9004");
    r.deployment_status(&repo, &d3s, "in_progress", &[], &url);
    let out = r.stacks_with(
        Credential::Deploy,
        &["promote", "--from-pr", &pr, "--from-sha", &merged_head],
        &[
            ("PREVIEW_DIGITALOCEAN_TOKEN", "dns-token-canary-1b9e"),
            // Let's Encrypt is unreachable from the test: production's wildcard
            // Certificate is issued by the real cert-manager from a self-signed Issuer.
            ("PREVIEW_TLS_ISSUER", "self-signed"),
        ],
    );
    assert!(out.status.success(), "promote:\n{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("promoting the images tested by preview-pr-{PR}")),
        "{}",
        text(&out.stderr)
    );
    r.deployment_status(
        &repo,
        &d3s,
        "success",
        &["--environment-url", "https://www.example"],
        &url,
    );
    // Production runs exactly what the preview last tested.
    assert_runs(&client, PROD_NS, &[web(2), api(2)].into()).await;

    // ── 6. The GitHub Deployments' last statuses. ──
    let deployments = fake.deployments();
    let preview_ids: Vec<u64> = deployments
        .iter()
        .filter(|d| d.environment == preview_ns)
        .map(|d| d.id)
        .collect();
    assert_eq!(preview_ids, [d1, d2]);
    for id in preview_ids {
        assert_eq!(last_state(&fake, id), "inactive", "preview deployment {id}");
    }
    let production: Vec<_> = deployments
        .iter()
        .filter(|d| d.environment == "production")
        .collect();
    assert_eq!(production.len(), 1);
    assert_eq!(production[0].id, d3);
    assert_eq!(production[0].sha, sha(2));
    assert!(production[0].production_environment);
    assert_eq!(last_state(&fake, d3), "success");
    fake.assert_no_violations();
}
