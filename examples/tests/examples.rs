//! The `[[example]]`s, built and run as a user runs them, and what they did
//! checked from outside:
//!
//! - `custom_stack` (a stack defined in code, run by the library's driver) on
//!   the test kit's cluster (real API server and controllers, the node
//!   simulator standing in for the kubelet): `up` creates the namespace,
//!   ConfigMap, Deployment and Service with the engine's ownership labels; a
//!   second `up` changes nothing; `--web-image` updates the Deployment only;
//!   `destroy` removes everything, verified here through the API server and in
//!   the state directory.
//! - `local_files` (a provider of one's own driven by the engine): its run ends
//!   with no file of the stack left and no state.
//!
//! Each example is built with `cargo build` first (so a stale binary is never
//! run), then started from `target/<profile>/examples/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::Api;
use testkit::TestCluster;

/// Builds example `name` and returns its executable.
fn example(name: &str) -> PathBuf {
    // This test runs from target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // `--workspace`, as `scripts/test.sh` runs `cargo test --workspace`: the same
    // feature resolution, so the example `cargo test` already built is fresh
    // and nothing is compiled again.
    build.args(["build", "--quiet", "--workspace", "--example", name]);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("running cargo build --example {name}: {e}"));
    assert!(status.success(), "cargo build --example {name}: {status}");
    let path = profile_dir.join("examples").join(name);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `custom_stack` with `args` on the test cluster, state in `state`.
fn custom_stack(exe: &Path, kubeconfig: &Path, state: &Path, args: &[&str]) -> Output {
    let out = Command::new(exe)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--backend")
        .arg(format!("file://{}", state.display()))
        .args(["--progress", "plain", "--color", "never"])
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("PREVIEW_BACKEND")
        .env_remove("PREVIEW_STATE_PASSPHRASE")
        .env_remove("PREVIEW_STATE_PASSPHRASE_FILE")
        .output()
        .expect("custom_stack runs");
    assert!(
        out.status.success(),
        "custom_stack {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON report ({e}): {}", text(&out.stdout)))
}

const STACK_LABEL: &str = "preview-envs.io/stack";

#[tokio::test]
async fn custom_stack_up_noop_change_destroy_on_the_test_cluster() {
    let exe = example("custom_stack");
    let cluster = TestCluster::shared_with_simulator().await.expect("cluster");
    let client = cluster.client().expect("client");
    let kubeconfig = cluster.kubeconfig_path();
    let state = tempfile::tempdir().expect("state dir");
    let run = |args: &[&str]| custom_stack(&exe, kubeconfig, state.path(), args);

    // The commands of `stacks`, with this program's stack.
    let help = text(&run(&["up", "--help"]).stdout);
    assert!(help.contains("Usage: custom_stack up"), "{help}");
    assert!(
        help.contains("- hello: A greeting page") && !help.contains("preview-"),
        "{help}"
    );
    let rendered = text(&run(&["render", "hello"]).stdout);
    assert!(rendered.contains("kind: Deployment"), "{rendered}");

    let first = json(&run(&["--json", "up", "hello"]));
    assert_eq!(first["stack"], "hello");
    assert_eq!(first["plan"]["summary"]["create"], 4, "{first:#}");
    assert_eq!(
        first["outputs"]["url"],
        "http://web.hello.svc.cluster.local"
    );

    // What the stack created, as the API server has it, owned by the stack.
    let namespace = Api::<Namespace>::all(client.clone())
        .get("hello")
        .await
        .expect("namespace hello");
    let labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get(STACK_LABEL).map(String::as_str), Some("hello"));
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    let config = Api::<ConfigMap>::namespaced(client.clone(), "hello")
        .get("greeting")
        .await
        .expect("ConfigMap hello/greeting");
    assert_eq!(
        config
            .data
            .unwrap_or_default()
            .get("GREETING")
            .map(String::as_str),
        Some("hello from a stack in code")
    );
    let deployments = Api::<Deployment>::namespaced(client.clone(), "hello");
    let web = deployments.get("web").await.expect("Deployment hello/web");
    let ready = web.status.as_ref().and_then(|s| s.ready_replicas);
    assert_eq!(ready, Some(1), "up waited for readiness");
    let image = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone())
    };
    assert_eq!(
        image(&web).as_deref(),
        Some(stacks::config::DEFAULT_NGINX_IMAGE)
    );
    let service = Api::<Service>::namespaced(client.clone(), "hello")
        .get("web")
        .await
        .expect("Service hello/web");
    assert_eq!(
        service
            .metadata
            .labels
            .unwrap_or_default()
            .get(STACK_LABEL)
            .map(String::as_str),
        Some("hello")
    );

    // Nothing changed: no write.
    let again = json(&run(&["--json", "up", "hello"]));
    assert_eq!(again["plan"]["summary"]["create"], 0, "{again:#}");
    assert_eq!(again["plan"]["summary"]["update"], 0, "{again:#}");
    assert_eq!(again["requests"]["writes"], 0, "{again:#}");

    // A new image updates the Deployment alone.
    let other = "docker.io/nginxinc/nginx-unprivileged:1.27";
    let changed = json(&run(&["--json", "up", "hello", "--web-image", other]));
    assert_eq!(changed["plan"]["summary"]["update"], 1, "{changed:#}");
    assert_eq!(changed["plan"]["summary"]["create"], 0, "{changed:#}");
    let web = deployments.get("web").await.expect("Deployment hello/web");
    assert_eq!(image(&web).as_deref(), Some(other));
    let outputs = json(&run(&["--json", "outputs", "hello"]));
    assert_eq!(outputs["image"], other);

    // Destroy, verified by the driver and again here.
    let destroyed = json(&run(&["--json", "destroy", "hello"]));
    assert_eq!(destroyed["verified"], true, "{destroyed:#}");
    assert_eq!(destroyed["stateRemoved"], true, "{destroyed:#}");
    let gone = Api::<Namespace>::all(client.clone()).get_opt("hello").await;
    assert!(
        matches!(gone, Ok(None)),
        "namespace hello is gone: {gone:?}"
    );
    let left = Api::<Deployment>::all(client)
        .list(&kube::api::ListParams::default().labels(&format!("{STACK_LABEL}=hello")))
        .await
        .expect("list");
    assert!(left.items.is_empty(), "nothing of the stack is left");
    let listed = json(&run(&["--json", "state", "list"]));
    assert!(
        !listed.to_string().contains("\"hello\""),
        "no state of hello is left: {listed}"
    );
}

#[test]
fn local_files_runs_to_the_end_and_leaves_nothing() {
    let exe = example("local_files");
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(exe)
        .arg(dir.path())
        .output()
        .expect("local_files runs");
    assert!(
        out.status.success(),
        "local_files: {}\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    for step in ["== first up", "== no-op up", "== change", "== destroy"] {
        assert!(stdout.contains(step), "{step} in:\n{stdout}");
    }
    assert!(stdout.contains("ok: files-demo"), "{stdout}");
    let objects: Vec<_> = std::fs::read_dir(dir.path().join("objects"))
        .expect("objects dir")
        .collect();
    assert!(objects.is_empty(), "no object file left: {objects:?}");
    let state = dir.path().join("state");
    let stack_files: Vec<_> = std::fs::read_dir(&state)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // The state document itself (lock files may stay, empty).
                .filter(|name| name == "files-demo.json")
                .collect()
        })
        .unwrap_or_default();
    assert!(
        stack_files.is_empty(),
        "no state of files-demo left: {stack_files:?}"
    );
}
