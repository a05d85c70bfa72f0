//! Failure digests of `stacks up`, through the real API server: a preview's web
//! Deployment whose container crashes (the node simulator reports the
//! termination, exit code and message, and serves its log lines from its
//! kubelet endpoint, which the API server's `pods/log` reaches) fails the
//! run, and stderr and `--json` name the reason, the events, the termination
//! and the log lines, with the preview's own secret value redacted.

mod support_cluster;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::Value;
use support_cluster::{Stacks, digest, pr_args, world};
use testkit::simulator::annotations::{EXIT_CODE, LOG, SIMULATE, TERMINATION_MESSAGE};
use testkit::{ADMIN_USER, NodeSimulator};

/// The longest value of the preview's Secrets: what its pods are given.
async fn a_secret_value(client: &kube::Client, ns: &str) -> String {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut best = String::new();
    for s in secrets
        .list(&Default::default())
        .await
        .expect("secrets")
        .items
    {
        for value in s.data.into_iter().flat_map(|d| d.into_values()) {
            let text = String::from_utf8_lossy(&value.0).into_owned();
            if text.len() > best.len() && !text.contains('\n') {
                best = text;
            }
        }
    }
    assert!(best.len() >= 8, "no secret value found in {ns}");
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_deployment_is_explained_on_stderr_and_in_json() {
    let world = world().await;
    let simulator = NodeSimulator::shared().await.expect("simulator");
    let client = world.cluster.client().expect("client");
    let pr = 1501;
    let ns = format!("preview-pr-{pr}");
    let stacks = Stacks::new(world);
    let mut args = vec!["up".to_owned(), "preview-pr".to_owned()];
    args.extend(pr_args(pr));
    stacks.ok(&args);

    // The next web pods crash, logging a value of the preview's own Secret.
    let secret = a_secret_value(&client, &ns).await;
    simulator.inject(
        &ns,
        "web-",
        BTreeMap::from([
            (SIMULATE.to_owned(), "CrashLoopBackOff".to_owned()),
            (EXIT_CODE.to_owned(), "3".to_owned()),
            (
                TERMINATION_MESSAGE.to_owned(),
                "web: cannot read js-config".to_owned(),
            ),
            (
                LOG.to_owned(),
                format!("starting web\nconnecting with {secret}\nfatal: js-config unreadable"),
            ),
        ]),
    );
    let mut args = vec![
        "--json".to_owned(),
        "up".to_owned(),
        "preview-pr".to_owned(),
        "--timeout".to_owned(),
        "60s".to_owned(),
    ];
    let mut pr_args = pr_args(pr);
    // A new web image: a new ReplicaSet, new pods.
    pr_args[3] = format!("ghcr.io/aphiria/web@sha256:{}", digest(pr + 7));
    args.extend(pr_args);
    let out = stacks.run(&args);
    simulator.clear_injections(&ns);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "up succeeded:\n{stderr}");

    // stderr: the digest.
    let resource = format!("Deployment {ns}/web");
    assert!(
        stderr.contains(&format!("failure digest: {resource}")),
        "{stderr}"
    );
    for expected in [
        "CrashLoopBackOff",
        "last termination: exit code 3 (Error): web: cannot read js-config",
        "| fatal: js-config unreadable",
        "| connecting with [secret]",
        "BackOff",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains(&secret),
        "the secret leaked to stderr:\n{stderr}"
    );
    assert!(
        !stdout.contains(&secret),
        "the secret leaked to stdout:\n{stdout}"
    );

    // --json: a failure object for the step.
    let doc: Value = serde_json::from_str(&stdout).expect("json document");
    let step = doc["failed"]
        .as_array()
        .expect("failed[]")
        .iter()
        .find(|s| s["resource"] == resource.as_str())
        .unwrap_or_else(|| panic!("no failed step {resource}: {doc:#}"));
    let failure = &step["failure"];
    assert!(
        failure["reason"]
            .as_str()
            .is_some_and(|r| r.contains("CrashLoopBackOff")),
        "{failure:#}"
    );
    let container = failure["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["container"] == "web")
        .unwrap_or_else(|| panic!("no web container: {failure:#}"));
    assert_eq!(container["lastTermination"]["exitCode"], 3);
    assert_eq!(
        container["lastTermination"]["message"],
        "web: cannot read js-config"
    );
    let log: Vec<&str> = container["log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        log,
        [
            "starting web",
            "connecting with [secret]",
            "fatal: js-config unreadable"
        ]
    );
    assert!(
        failure["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["reason"] == "BackOff")),
        "{failure:#}"
    );

    // The lines came through the API server's pods/log (the audit log says so).
    let log_reads = world
        .cluster
        .audit_events_by(ADMIN_USER)
        .expect("audit")
        .into_iter()
        .filter(|e| {
            e.subresource.as_deref() == Some("log")
                && e.namespace.as_deref() == Some(ns.as_str())
                && e.code == Some(200)
        })
        .count();
    assert!(log_reads >= 1, "no pods/log read in the audit log");

    let mut destroy = vec!["destroy".to_owned(), "preview-pr".to_owned()];
    destroy.extend(["--pr".to_owned(), pr.to_string()]);
    stacks.ok(&destroy);
}
