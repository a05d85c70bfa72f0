//! Saved plans and the plan credential, on the real control plane (node
//! simulator for the kubelet) and a real PostgreSQL, driven through the
//! `stacks` binary as the example workflows drive it:
//!
//! - `preview --out plan.json` saves the plan with its id; `up --plan
//!   plan.json` applies exactly it, and refuses — before any write, naming
//!   what moved — when the state was written since (a plan older than the
//!   state), a live object was deleted, or the images, the configuration or
//!   the stack instance are not the plan's (a live object another manager
//!   edited is refused by the apply's own dry-run, as a conflict); a truncated
//!   or edited file is refused too.
//! - The plan credential (`testkit:planner`): bound to get/list/watch only, its
//!   dry-runs are forbidden and `preview` falls back to a local diff marked
//!   "not validated by the server"; with `preview-base`'s `planIdentity` its
//!   dry-runs pass, the deployer applies the plan it saved, and the API server
//!   refuses its every real write (the ValidatingAdmissionPolicy's message).

mod support_cluster;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use stacks::stack::plan_identity::{DENIED_MESSAGE, PLAN_ONLY_POLICY};
use support_cluster::{Stacks, digest, pr_args, world};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn web(n: u64) -> String {
    format!("ghcr.io/aphiria/web@sha256:{}", digest(n))
}

/// `args` then `extra`, as owned strings.
fn cmd(args: &[&str], extra: &[String]) -> Vec<String> {
    args.iter()
        .map(|s| (*s).to_owned())
        .chain(extra.iter().cloned())
        .collect()
}

/// The PR's arguments with another web image.
fn pr_args_with_web(pr: u64, image: &str) -> Vec<String> {
    let mut args = pr_args(pr);
    let at = args
        .iter()
        .position(|a| a == "--web-image")
        .expect("--web-image")
        + 1;
    args[at] = image.to_owned();
    args
}

fn save_plan(stacks: &Stacks, args: &[String], file: &Path) -> Value {
    let out = stacks.ok(&cmd(
        &["--json", "preview", "preview-pr"],
        &[args, &["--out".to_owned(), file.display().to_string()]].concat(),
    ));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("plan json");
    assert!(
        text(&out.stderr).contains("saved plan sha256:"),
        "{}",
        text(&out.stderr)
    );
    doc
}

fn apply_plan(stacks: &Stacks, args: &[String], file: &Path) -> std::process::Output {
    stacks.run(&cmd(
        &["--json", "up", "preview-pr"],
        &[args, &["--plan".to_owned(), file.display().to_string()]].concat(),
    ))
}

fn refused(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

fn state_file(stacks: &Stacks, pr: u64) -> PathBuf {
    stacks.state.join(format!("preview-pr-{pr}.json"))
}

async fn namespace_exists(client: &kube::Client, name: &str) -> bool {
    Api::<Namespace>::all(client.clone())
        .get_opt(name)
        .await
        .expect("read namespace")
        .is_some()
}

async fn web_image(client: &kube::Client, pr: u64) -> String {
    let d = Api::<Deployment>::namespaced(client.clone(), &format!("preview-pr-{pr}"))
        .get("web")
        .await
        .expect("web");
    d.spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().find(|c| c.name == "web"))
        .and_then(|c| c.image)
        .expect("web image")
}

/// The repository's configs, with `edit` applied to `<stack>.yaml`.
fn config_dir_with(stack: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let dir = tempfile::tempdir().expect("config dir");
    for entry in std::fs::read_dir(&repo).expect("config/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let file = dir.path().join(format!("{stack}.yaml"));
    let edited = edit(std::fs::read_to_string(&file).expect("read"));
    std::fs::write(&file, edited).expect("write");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_applied_exactly_and_a_plan_older_than_the_state_is_refused() {
    const PR: u64 = 701;
    let world = world().await;
    let stacks = Stacks::new(world);
    let client = world.cluster.client().expect("client");
    let dir = tempfile::tempdir().expect("dir");
    let first = dir.path().join("first.json");

    // A plan made before the stack has any state.
    let shown = save_plan(&stacks, &pr_args(PR), &first);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&first).expect("plan file")).expect("json");
    let id = shown["planId"].as_str().expect("planId").to_owned();
    assert_eq!(saved["planId"], json!(id), "the id shown is the file's");
    assert_eq!(saved["format"], json!("preview-envs/saved-plan"));
    assert_eq!(saved["formatVersion"], json!(1));
    assert_eq!(saved["stack"], json!(format!("preview-pr-{PR}")));
    assert_eq!(saved["meta"]["pr"], json!(PR));
    assert_eq!(saved["basis"]["state"]["exists"], json!(false));
    assert!(
        saved["meta"]["images"]
            .as_object()
            .expect("images")
            .values()
            .any(|i| i == &json!(web(PR))),
        "{}",
        saved["meta"]["images"]
    );
    assert!(
        saved["basis"]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .all(|r| r["action"] == json!("create") && r["desiredHash"].is_string()),
        "every step is a create with its desired hash"
    );
    let canary = "db-password-canary-7f3a";
    assert!(
        !std::fs::read_to_string(&first)
            .expect("plan")
            .contains(canary),
        "the saved plan holds no secret"
    );
    assert!(!namespace_exists(&client, &format!("preview-pr-{PR}")).await);

    // Applied exactly: the report names the plan.
    let out = apply_plan(&stacks, &pr_args(PR), &first);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["planId"], json!(id));
    assert!(text(&out.stderr).contains(&format!("applied saved plan {id}")));
    assert_eq!(web_image(&client, PR).await, web(PR));

    // The same file again: the stack has a state now.
    let err = refused(&apply_plan(&stacks, &pr_args(PR), &first));
    assert!(
        err.contains("the stack had no state when planned; it now has one"),
        "{err}"
    );

    // A plan of a change, then another run writes the state: the plan is older.
    let second = dir.path().join("second.json");
    save_plan(&stacks, &pr_args_with_web(PR, &web(PR + 50)), &second);
    stacks.ok(&cmd(
        &["up", "preview-pr"],
        &pr_args_with_web(PR, &web(PR + 60)),
    ));
    let before = std::fs::read(state_file(&stacks, PR)).expect("state");
    let err = refused(&apply_plan(
        &stacks,
        &pr_args_with_web(PR, &web(PR + 50)),
        &second,
    ));
    assert!(err.contains("the plan is older than the state"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(
        std::fs::read(state_file(&stacks, PR)).expect("state"),
        before,
        "a refused plan wrote the state"
    );
    assert_eq!(web_image(&client, PR).await, web(PR + 60));

    // A fresh plan of the same change applies.
    let third = dir.path().join("third.json");
    save_plan(&stacks, &pr_args_with_web(PR, &web(PR + 50)), &third);
    let out = apply_plan(&stacks, &pr_args_with_web(PR, &web(PR + 50)), &third);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(web_image(&client, PR).await, web(PR + 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_object_changed_since_the_plan_is_named_and_nothing_is_written() {
    const PR: u64 = 702;
    let world = world().await;
    let stacks = Stacks::new(world);
    let client = world.cluster.client().expect("client");
    stacks.ok(&cmd(&["up", "preview-pr"], &pr_args(PR)));
    let dir = tempfile::tempdir().expect("dir");
    let plan = dir.path().join("plan.json");
    let changed = pr_args_with_web(PR, &web(PR + 50));
    save_plan(&stacks, &changed, &plan);

    // An edit by another field manager of a field the stack manages: the
    // apply's own dry-run refuses it (a conflict), before any write.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &format!("preview-pr-{PR}"));
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("edit");
    let before = std::fs::read(state_file(&stacks, PR)).expect("state");
    let err = refused(&apply_plan(&stacks, &changed, &plan));
    assert!(
        err.contains("the saved plan cannot be applied: planning it again under the lock fails (nothing was changed)")
            && err.contains("has fields owned by other field managers: .spec.replicas"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(state_file(&stacks, PR)).expect("state"),
        before
    );
    let live = deployments.get("web").await.expect("web");
    assert_eq!(live.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert_eq!(web_image(&client, PR).await, web(PR), "not applied");

    // Deleted since the plan: the saved plan's update would now be a create.
    deployments
        .delete("web", &kube::api::DeleteParams::default())
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(30);
    while deployments.get_opt("web").await.expect("read").is_some() {
        assert!(Instant::now() < deadline, "web is not gone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = refused(&apply_plan(&stacks, &changed, &plan));
    assert!(
        err.contains(&format!(
            "Deployment preview-pr-{PR}/web: the live object changed since the plan (it was deleted)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Deployment preview-pr-{PR}/web: planned to be updated, would now be created"
        )),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(
        std::fs::read(state_file(&stacks, PR)).expect("state"),
        before,
        "a refused plan wrote the state"
    );
    assert!(
        deployments.get_opt("web").await.expect("read").is_none(),
        "a refused plan recreated web"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plans_are_refused_before_anything_happens() {
    const PR: u64 = 703;
    let world = world().await;
    let stacks = Stacks::new(world);
    let client = world.cluster.client().expect("client");
    let dir = tempfile::tempdir().expect("dir");
    let plan = dir.path().join("plan.json");
    save_plan(&stacks, &pr_args(PR), &plan);
    let content = std::fs::read_to_string(&plan).expect("plan");
    let id = serde_json::from_str::<Value>(&content).expect("json")["planId"]
        .as_str()
        .expect("id")
        .to_owned();

    // A plan for another stack instance.
    let err = refused(&apply_plan(&stacks, &pr_args(PR + 1), &plan));
    assert!(
        err.contains(&format!(
            "saved plan {id} is for stack preview-pr-{PR} (PR {PR}), not for stack preview-pr-{}",
            PR + 1
        )),
        "{err}"
    );
    let err = refused(&stacks.run(&["up", "preview-base", "--plan", &plan.display().to_string()]));
    assert!(err.contains("not for stack preview-base"), "{err}");

    // Other images than planned.
    let err = refused(&apply_plan(
        &stacks,
        &pr_args_with_web(PR, &web(PR + 9)),
        &plan,
    ));
    assert!(
        err.contains(&format!(
            "image Deployment/preview-pr-{PR}/web/web: {} → {}",
            web(PR),
            web(PR + 9)
        )),
        "{err}"
    );

    // Another configuration.
    let configs = config_dir_with("preview-pr", |yaml| {
        assert!(
            yaml.contains("logLevel: debug\n"),
            "preview-pr.yaml changed shape"
        );
        yaml.replace("logLevel: debug\n", "logLevel: warning\n")
    });
    let err = refused(&apply_plan(
        &Stacks::new(world).with_config_dir(configs.path()),
        &pr_args(PR),
        &plan,
    ));
    assert!(
        err.contains("config: the stack's configuration changed"),
        "{err}"
    );

    // A truncated file, an edited one, and one that is not a saved plan.
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &content[..content.len() / 3]).expect("write");
    let err = refused(&apply_plan(&stacks, &pr_args(PR), &truncated));
    assert!(
        err.contains(&format!(
            "{} is not a complete saved plan",
            truncated.display()
        )),
        "{err}"
    );
    let edited = dir.path().join("edited.json");
    let mut doc: Value = serde_json::from_str(&content).expect("json");
    doc["plan"]["steps"][0]["action"] = json!("no-op");
    std::fs::write(&edited, doc.to_string()).expect("write");
    let err = refused(&apply_plan(&stacks, &pr_args(PR), &edited));
    assert!(
        err.contains(&format!("{} was edited or corrupted", edited.display())),
        "{err}"
    );
    assert!(err.contains(&format!("not to its plan id {id}")), "{err}");
    let rendering = dir.path().join("rendering.json");
    std::fs::write(
        &rendering,
        stacks
            .ok(&cmd(&["--json", "preview", "preview-pr"], &pr_args(PR)))
            .stdout,
    )
    .expect("write");
    let err = refused(&apply_plan(&stacks, &pr_args(PR), &rendering));
    assert!(err.contains("not a saved plan of format"), "{err}");

    // None of it created anything or wrote any state.
    assert!(!namespace_exists(&client, &format!("preview-pr-{PR}")).await);
    assert!(!state_file(&stacks, PR).exists());
    // The plan itself still applies.
    let out = apply_plan(&stacks, &pr_args(PR), &plan);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Waits until `write` is refused by the admission policy (it is enforced
/// once the API server has loaded it, within seconds); its message.
async fn refused_by_policy<F, Fut>(write: F) -> String
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match write().await {
            Err(kube::Error::Api(status)) if status.message.contains(PLAN_ONLY_POLICY) => {
                assert_eq!(status.code, 403, "{status:?}");
                return status.message.clone();
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "the plan identity's write was not refused by the policy: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_credential_can_only_plan() {
    const PR: u64 = 705;
    let world = world().await;
    let admin = world.cluster.client().expect("client");
    let deployer = Stacks::new(world);
    let planner_kubeconfig = world.cluster.planner_kubeconfig_path().to_path_buf();
    let planner = Stacks::new(world).with_kubeconfig(&planner_kubeconfig);
    deployer.ok(&cmd(&["up", "preview-pr"], &pr_args(PR)));
    let changed = pr_args_with_web(PR, &web(PR + 50));
    let ns = format!("preview-pr-{PR}");

    // Without any RBAC the plan credential cannot even read: a clear failure.
    let out = planner.run(&cmd(&["preview", "preview-pr"], &changed));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("403"), "{}", text(&out.stderr));

    // Bound to get/list/watch only (what SECRETS.md used to give it): the
    // dry-run of the changed Deployment is forbidden, and the plan falls back
    // to a local diff marked as not validated by the server.
    let read_only = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "test-planner-read-only"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "test-planner-read-only"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "test-planner-read-only"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": testkit::PLANNER_USER}],
    });
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(read_only).expect("role"),
        )
        .await
        .expect("create role");
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin.clone());
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(binding).expect("binding"),
        )
        .await
        .expect("create binding");
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = planner.run(&cmd(&["preview", "preview-pr"], &changed));
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let plan_text = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        plan_text.contains(&format!("~ Deployment {ns}/web")),
        "{plan_text}"
    );
    assert!(
        plan_text.contains("! not validated by the server (dry-run forbidden: ")
            && plan_text.contains("cannot patch resource \"deployments\""),
        "{plan_text}"
    );
    assert!(
        plan_text.contains(&web(PR + 50)),
        "the local diff shows the image: {plan_text}"
    );
    let doc: Value = serde_json::from_slice(
        &planner
            .ok(&cmd(&["--json", "preview", "preview-pr"], &changed))
            .stdout,
    )
    .expect("json");
    let unvalidated: Vec<&Value> = doc["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["serverValidated"] == json!(false))
        .collect();
    assert_eq!(unvalidated.len(), 1, "{doc}");
    assert_eq!(unvalidated[0]["resource"]["name"], json!("web"));

    // preview-base with `planIdentity`: RBAC for dry-runs, and the policy.
    let configs = config_dir_with("preview-base", |yaml| {
        format!(
            "{yaml}\nplanIdentity:\n  kind: User\n  name: {}\n",
            testkit::PLANNER_USER
        )
    });
    let base = Stacks::new(world).with_config_dir(configs.path());
    let out = base.ok(&["up", "preview-base"]);
    let up_text = text(&out.stdout);
    for object in [
        "+ ClusterRole preview-envs-planner",
        "+ ClusterRoleBinding preview-envs-planner",
        "+ ValidatingAdmissionPolicy preview-envs-plan-only",
        "+ ValidatingAdmissionPolicyBinding preview-envs-plan-only",
    ] {
        assert!(up_text.contains(object), "{object}: {up_text}");
    }

    // Real writes by the plan identity are refused by the API server itself,
    // once it has loaded the policy (its status then reports the generation).
    let policies: Api<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy> =
        Api::all(admin.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let policy = policies.get(PLAN_ONLY_POLICY).await.expect("policy");
        if policy
            .status
            .and_then(|s| s.observed_generation)
            .is_some_and(|g| g >= 1)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the policy was never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let planner_client = world.cluster.planner_client().expect("planner client");
    let config_maps: Api<ConfigMap> = Api::namespaced(planner_client.clone(), &ns);
    let probe = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("config map")
    };
    let attempt = std::sync::atomic::AtomicUsize::new(0);
    let message = refused_by_policy(|| {
        let config_maps = config_maps.clone();
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let probe = probe(&format!("planner-probe-{n}"));
        async move {
            config_maps
                .create(&PostParams::default(), &probe)
                .await
                .map(|_| ())
        }
    })
    .await;
    assert!(message.contains(DENIED_MESSAGE), "{message}");
    // From then on every write is refused at once.
    let planner_deployments: Api<Deployment> = Api::namespaced(planner_client.clone(), &ns);
    let err = planner_deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect_err("a real patch by the plan identity is refused");
    let kube::Error::Api(status) = &err else {
        panic!("expected an API error, got {err}");
    };
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status.message.contains(PLAN_ONLY_POLICY) && status.message.contains(DENIED_MESSAGE),
        "{}",
        status.message
    );
    let err = config_maps
        .create(&PostParams::default(), &probe("planner-probe-again"))
        .await
        .expect_err("a real create by the plan identity is refused");
    assert!(err.to_string().contains(DENIED_MESSAGE), "{err}");
    // Its dry-runs pass (create, and a server-side apply).
    config_maps
        .create(
            &PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            &probe("planner-dry-run"),
        )
        .await
        .expect("a dry-run create by the plan identity passes");
    planner_deployments
        .patch(
            "web",
            &PatchParams::apply("planner-probe").dry_run(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"replicas": 1},
            })),
        )
        .await
        .expect("a dry-run apply by the plan identity passes");
    let admin_config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &ns);
    for name in ["planner-dry-run", "planner-probe-again"] {
        assert!(
            admin_config_maps
                .get_opt(name)
                .await
                .expect("read")
                .is_none(),
            "{name} was written"
        );
    }
    let web_replicas = Api::<Deployment>::namespaced(admin.clone(), &ns)
        .get("web")
        .await
        .expect("web")
        .spec
        .and_then(|s| s.replicas);
    assert_eq!(web_replicas, Some(1), "the refused patch changed nothing");
    // Probes created before the API server enforced the policy (if any).
    let before_enforced = attempt.load(std::sync::atomic::Ordering::SeqCst) - 1;
    for n in 0..before_enforced {
        let _ = admin_config_maps
            .delete(&format!("planner-probe-{n}"), &Default::default())
            .await;
    }

    // Now the plan credential's plan is validated by the server, and the
    // deployer applies exactly the plan it saved.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("plan.json");
    let shown = save_plan(&planner, &changed, &file);
    assert!(
        shown["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .all(|s| s.get("serverValidated").is_none()),
        "{shown}"
    );
    let out = apply_plan(&deployer, &changed, &file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["planId"], shown["planId"]);
    assert_eq!(web_image(&admin, PR).await, web(PR + 50));
}
