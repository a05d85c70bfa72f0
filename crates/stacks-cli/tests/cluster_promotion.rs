//! Promotion of what was tested, on the real control plane (node simulator for
//! the kubelet) and a real PostgreSQL, driven through the `stacks` binary as the
//! example workflows drive it:
//! `up preview-pr --commit C` records the images it ran (a repeated no-op `up`
//! writes nothing) → `destroy` keeps the record → `promote --from-pr N` deploys
//! production with exactly those digests: the Deployments' pod templates name
//! them and the pods report them as their `imageID`s. `--from-sha` and the
//! `--from preview-pr-N` alias find the same images, and so does `--image KEY=REF`
//! per key (mixed with the aliases); images no preview ran are
//! refused, and `--untested` puts a visible `UNTESTED:` line into the text,
//! Markdown and JSON plans.

mod support_cluster;

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use support_cluster::{Stacks, digest, pr_args, world};

const PR: u64 = 612;
const PROD_NS: &str = "aphiria-prod";

fn commit(n: u64) -> String {
    format!("{n:040x}")
}

fn web(pr: u64) -> String {
    format!("ghcr.io/aphiria/web@sha256:{}", digest(pr))
}

fn api(pr: u64) -> String {
    format!("ghcr.io/aphiria/api@sha256:{}", digest(pr + 1_000_000))
}

/// The repository's configs, with production moved out of the way of the shared
/// `preview-base` (its own namespaces, gateway and GatewayClass).
fn config_dir() -> tempfile::TempDir {
    let (repo, dir) = support_cluster::config_copy();
    let production = std::fs::read_to_string(repo.join("production.yaml")).expect("production");
    let moved = production
        .replace("namespace: aphiria\n", &format!("namespace: {PROD_NS}\n"))
        .replace("  namespace: default\n", "  namespace: aphiria-prod-db\n")
        .replace("  name: gateway\n", "  name: prod-gateway\n")
        .replace(
            "  namespace: nginx-gateway\n",
            "  namespace: prod-gateway\n",
        )
        .replace("  className: nginx\n", "  className: nginx-prod\n");
    for needle in [
        "namespace: aphiria-prod\n",
        "aphiria-prod-db",
        "name: prod-gateway",
        "className: nginx-prod",
    ] {
        assert!(
            moved.contains(needle),
            "production.yaml changed shape: {needle}"
        );
    }
    std::fs::write(dir.path().join("production.yaml"), moved).expect("write");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn record_file(stacks: &Stacks) -> std::path::PathBuf {
    stacks.state.join(format!("tested-images/pr-{PR}.json"))
}

/// The images of the Deployments' pod templates, and of their pods' `imageID`s.
async fn production_images(client: &kube::Client) -> (BTreeSet<String>, BTreeSet<String>) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), PROD_NS);
    let mut templates = BTreeSet::new();
    for name in ["web", "api"] {
        let d = deployments.get(name).await.expect("deployment");
        let spec = d.spec.expect("spec").template.spec.expect("pod spec");
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            templates.insert(c.image.clone().expect("image"));
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), PROD_NS);
    let mut running = BTreeSet::new();
    for pod in pods.list(&ListParams::default()).await.expect("pods").items {
        let status = pod.status.expect("status");
        if status.phase.as_deref() != Some("Running") {
            continue;
        }
        for c in status.container_statuses.iter().flatten() {
            running.insert(c.image_id.clone());
        }
    }
    (templates, running)
}

/// Only the application's images (not nginx or PostgreSQL).
fn app_images(all: &BTreeSet<String>) -> BTreeSet<String> {
    all.iter()
        .filter(|i| i.starts_with("ghcr.io/aphiria/"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_runs_exactly_what_a_destroyed_preview_tested() {
    let world = world().await;
    let configs = config_dir();
    let stacks = Stacks::new(world).with_config_dir(configs.path());
    let client = world.cluster.client().expect("client");
    // Production's PostgreSQL goes into an existing namespace (`default` in the
    // real config, taken here by preview-base's server), as an operator creates it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "aphiria-prod-db"}}))
                .expect("namespace"),
        )
        .await
        .expect("create the database namespace");

    // A preview deployed from commit C: its images are recorded as tested.
    let mut up = vec![
        "--json".to_owned(),
        "up".to_owned(),
        "preview-pr".to_owned(),
    ];
    up.extend(pr_args(PR));
    let with_commit = [up.clone(), vec!["--commit".into(), commit(1)]].concat();
    let out = stacks.ok(&with_commit);
    assert!(
        text(&out.stderr).contains(&format!("recorded the tested images of preview-pr-{PR}")),
        "{}",
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["tested"]["recorded"], true);
    assert_eq!(report["tested"]["commit"], commit(1));
    let recorded = std::fs::read(record_file(&stacks)).expect("record file");
    let doc: serde_json::Value = serde_json::from_slice(&recorded).expect("record json");
    let entry = &doc["record"]["entries"][0];
    assert_eq!(entry["images"]["web"], web(PR));
    assert_eq!(entry["images"]["api"], api(PR));
    assert_eq!(entry["commit"], commit(1));
    assert_eq!(entry["stack"], format!("preview-pr-{PR}"));

    // The same run again changes nothing: no cluster write, no record write.
    let out = stacks.ok(&with_commit);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(again["requests"]["writes"], 0, "{again}");
    assert_eq!(again["tested"]["recorded"], false);
    assert_eq!(
        std::fs::read(record_file(&stacks)).expect("record"),
        recorded,
        "a no-op up rewrote the record"
    );

    // A bad commit is refused before anything happens.
    let bad = [up.clone(), vec!["--commit".into(), "not-a-sha".into()]].concat();
    let out = stacks.run(&bad);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--commit (PREVIEW_COMMIT_SHA) not-a-sha"),
        "{}",
        text(&out.stderr)
    );

    // Cleanup destroys the preview; the record stays.
    stacks.ok(&["destroy", "preview-pr", "--pr", &PR.to_string()]);
    assert_eq!(
        std::fs::read(record_file(&stacks)).expect("record kept"),
        recorded
    );
    // The verified destroy removed the preview's state, outputs included.
    let outputs = stacks.run(&["--json", "outputs", "preview-pr", "--pr", &PR.to_string()]);
    assert!(!outputs.status.success(), "destroy removed the state");
    assert!(
        text(&outputs.stderr).contains("has no state"),
        "{}",
        text(&outputs.stderr)
    );

    // Images no preview ran are refused; the plan of --untested says so.
    let other_web = format!("ghcr.io/aphiria/web@sha256:{}", digest(7_777));
    let untested = [
        "promote",
        "--web-image",
        &other_web,
        "--api-image",
        &api(PR),
    ];
    let out = stacks.run(&untested);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refusing to promote images no successful preview ran")
            && err.contains(&format!("web {other_web} was never recorded"))
            && err.contains("--untested"),
        "{err}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), PROD_NS);
    assert!(
        deployments.get_opt("web").await.expect("get").is_none(),
        "a refused promotion deployed something"
    );
    // Each image tested, but not together: refused as well.
    let mixed = stacks.run(&["promote", "--web-image", &web(PR), "--api-image", &api(1)]);
    assert!(!mixed.status.success());
    let with_untested = |format: &str| {
        let mut a: Vec<String> = untested.iter().map(|s| (*s).to_owned()).collect();
        a.extend(["--untested", "--preview", "--format", format].map(str::to_owned));
        stacks.ok(&a)
    };
    let note = format!(
        "UNTESTED: api {} and web {other_web} were not recorded by any successful preview",
        api(PR)
    );
    let plan = text(&with_untested("text").stdout);
    assert!(plan.contains(&format!("  ! {note}")), "{plan}");
    let md = text(&with_untested("markdown").stdout);
    assert!(md.contains(&format!("> [!WARNING]\n> {note}")), "{md}");
    let json: serde_json::Value =
        serde_json::from_slice(&with_untested("json").stdout).expect("json plan");
    assert!(
        json["notes"][0]
            .as_str()
            .is_some_and(|n| n.starts_with(&note)),
        "{json}"
    );
    assert_eq!(json["stack"], "production");

    // After the preview is gone, promote deploys production with its images.
    let plan: serde_json::Value = serde_json::from_slice(
        &stacks
            .ok(&[
                "promote",
                "--from-pr",
                &PR.to_string(),
                "--preview",
                "--format",
                "json",
            ])
            .stdout,
    )
    .expect("plan");
    assert!(
        plan.get("notes").is_none(),
        "a tested promotion has no note"
    );
    let out = stacks.ok(&["--json", "promote", "--from-pr", &PR.to_string()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["stack"], "production");
    assert_eq!(report["promotion"]["untested"], false);
    assert_eq!(report["promotion"]["testedBy"]["pr"], PR);
    assert_eq!(report["promotion"]["testedBy"]["commit"], commit(1));
    assert_eq!(report["outputs"]["webImage"], web(PR));
    assert_eq!(report["outputs"]["apiImage"], api(PR));

    let tested: BTreeSet<String> = [web(PR), api(PR)].into();
    let (templates, running) = production_images(&client).await;
    assert_eq!(
        app_images(&templates),
        tested,
        "pod templates: {templates:?}"
    );
    assert_eq!(app_images(&running), tested, "pods' imageIDs: {running:?}");
    // Every replica runs them (production has 2+ of each).
    let pods: Api<Pod> = Api::namespaced(client.clone(), PROD_NS);
    let mut per_image = std::collections::BTreeMap::<String, usize>::new();
    for pod in pods.list(&ListParams::default()).await.expect("pods").items {
        let Some(status) = pod.status else { continue };
        if status.phase.as_deref() != Some("Running") {
            continue;
        }
        for c in status.container_statuses.iter().flatten() {
            if tested.contains(&c.image_id) {
                *per_image.entry(c.image_id.clone()).or_default() += 1;
            }
        }
    }
    for image in &tested {
        assert!(
            per_image.get(image).copied().unwrap_or(0) >= 2,
            "{image} runs in fewer than 2 pods: {per_image:?}"
        );
    }

    // The commit and the old alias find the same images: nothing to change.
    for source in [
        vec!["--from-sha".to_owned(), commit(1)[..10].to_owned()],
        vec!["--from".to_owned(), format!("preview-pr-{PR}")],
        vec![
            "--from-pr".to_owned(),
            PR.to_string(),
            "--from-sha".to_owned(),
            commit(1),
        ],
    ] {
        let mut a = vec!["--json".to_owned(), "promote".to_owned()];
        a.extend(source.clone());
        let report: serde_json::Value =
            serde_json::from_slice(&stacks.ok(&a).stdout).expect("json");
        assert_eq!(report["requests"]["writes"], 0, "{source:?}: {report}");
        assert_eq!(report["promotion"]["testedBy"]["pr"], PR, "{source:?}");
    }
    // `--image KEY=REF` per key names the same tested images (no note), and
    // mixes with the aliases; one image alone was not tested by itself.
    for images in [
        vec![
            "--image".to_owned(),
            format!("api={}", api(PR)),
            "--image".to_owned(),
            format!("web={}", web(PR)),
        ],
        vec![
            "--web-image".to_owned(),
            web(PR),
            "--image".to_owned(),
            format!("api={}", api(PR)),
        ],
    ] {
        let mut a = vec!["promote".to_owned()];
        a.extend(images.clone());
        a.extend(["--preview", "--format", "json"].map(str::to_owned));
        let plan: serde_json::Value =
            serde_json::from_slice(&stacks.ok(&a).stdout).expect("json plan");
        assert!(plan.get("notes").is_none(), "{images:?}: {plan}");
    }
    let out = stacks.run(&["promote", "--image", &format!("web={}", web(PR))]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("was tested, but only together with other images"),
        "{}",
        text(&out.stderr)
    );
    // A commit this PR never tested is refused, naming the last tested one.
    let out = stacks.run(&[
        "promote",
        "--from-pr",
        &PR.to_string(),
        "--from-sha",
        &commit(2),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "has no successful preview of commit {}",
            commit(2)
        )) && err.contains(&commit(1)[..12]),
        "{err}"
    );
    let out = stacks.run(&["promote", "--from-pr", "613"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no successful preview recorded images for PR #613"),
        "{}",
        text(&out.stderr)
    );
    // Production still runs the tested images.
    let (templates, _) = production_images(&client).await;
    assert_eq!(app_images(&templates), tested);
}
