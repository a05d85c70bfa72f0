//! Safety properties of the example GitHub Actions workflows in `examples/github/`.
//!
//! Every workflow file is parsed with serde_yaml_ng and checked for: least-privilege
//! `permissions:`; `timeout-minutes` on every job; no `${{ … }}` (and so no untrusted
//! string) inside `run:` scripts; no PR code checked out where secrets or environments
//! are; pinned actions; the preview concurrency group and cleanup's own; digest
//! validation; the order "plan comment before the protected environment"; the deploy
//! bound to the built commit (`verify-head` at the start and right before `stacks up`);
//! the gate given the run's triggering actor; the state passphrase only in steps that
//! run `stacks`; the backend URL only from secrets; the scheduled sweep; the saved plan
//! posted before approval is the one applied after it, and the comment names its id;
//! the final comment shows the deployed stack's outputs (`--outputs-file`), for any app.
//!
//! The composite action `action.yml` at the repository root, which installs the
//! binaries for these workflows, is checked too: the same script rules, pinned
//! actions, the cached build keyed on Cargo.lock or the checked release download;
//! every input a workflow passes exists; and its `Run stacks` script, executed
//! with bash against a recording `stacks`, passes the inputs as arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

const DIGEST_REGEX: &str = "^[^@]+@sha256:[0-9a-f]{64}$";
const REUSABLE: &str = "./.github/workflows/deploy-reusable.yml";

/// Expressions carrying strings a PR author controls.
const UNTRUSTED: &[&str] = &[
    "github.event.pull_request.title",
    "github.event.pull_request.body",
    "github.event.pull_request.head.ref",
    "github.event.pull_request.head.label",
    "github.head_ref",
    "github.event.workflow_run.head_branch",
    "github.event.workflow_run.head_commit",
    "github.event.workflow_run.display_title",
    "github.event.issue.title",
    "github.event.issue.body",
    "github.event.comment.body",
    "github.event.head_commit.message",
];

/// Expressions naming the PR's code.
const PR_HEAD: &[&str] = &[
    "pull_request.head.sha",
    "pull_request.head.ref",
    "github.head_ref",
    "workflow_run.head_sha",
    "workflow_run.head_branch",
    "refs/pull/",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/github")
}

struct Workflow {
    file: String,
    doc: Value,
    text: String,
}

fn workflows() -> Vec<Workflow> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir()).expect("examples/github exists");
    for entry in entries {
        let path = entry.expect("entry").path();
        let is_yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
        if !is_yaml {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let doc: Value = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        out.push(Workflow {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            doc,
            text,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

fn workflow(name: &str) -> Workflow {
    workflows()
        .into_iter()
        .find(|w| w.file == name)
        .unwrap_or_else(|| panic!("examples/github/{name} exists"))
}

fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_mapping().and_then(|m| m.get(key))
}

fn jobs(w: &Workflow) -> Vec<(String, &Value)> {
    get(&w.doc, "jobs")
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{}: no jobs", w.file))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v))
        .collect()
}

fn steps(job: &Value) -> Vec<&Value> {
    get(job, "steps")
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn run_scripts(job: &Value) -> Vec<String> {
    steps(job)
        .into_iter()
        .filter_map(|s| get(s, "run").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn triggers(w: &Workflow) -> BTreeSet<String> {
    match get(&w.doc, "on") {
        Some(Value::String(s)) => [s.clone()].into(),
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::Mapping(m)) => m
            .keys()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => panic!(
            "{}: no `on:` (a YAML 1.1 parser would read it as `true`)",
            w.file
        ),
    }
}

fn needs(job: &Value) -> Vec<String> {
    match get(job, "needs") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn yaml_text(value: &Value) -> String {
    serde_yaml_ng::to_string(value).unwrap_or_default()
}

fn check_permissions(file: &str, scope: &str, value: &Value, allow_write: bool) {
    match value {
        Value::Mapping(map) => {
            for (key, level) in map {
                let level = level.as_str().unwrap_or_default();
                assert!(
                    matches!(level, "read" | "write" | "none"),
                    "{file} {scope}: permission {key:?} is {level:?}"
                );
                assert!(
                    allow_write || level != "write",
                    "{file} {scope}: workflow-level permissions must be read-only; grant {key:?}: write on the job that needs it"
                );
            }
        }
        Value::String(s) => panic!("{file} {scope}: permissions must be explicit, not {s:?}"),
        other => panic!("{file} {scope}: permissions must be a mapping, got {other:?}"),
    }
}

fn job_permissions(job: &Value) -> BTreeMap<String, String> {
    get(job, "permissions")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or_default().to_string(),
                        v.as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_expected_workflow_exists_and_parses() {
    let names: Vec<String> = workflows().into_iter().map(|w| w.file).collect();
    for expected in [
        "build.yml",
        "deploy-reusable.yml",
        "preview-cleanup.yml",
        "preview-deploy.yml",
        "preview-sweep.yml",
        "production-deploy.yml",
        "publish-images.yml",
    ] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} missing: {names:?}"
        );
    }
    for w in workflows() {
        assert!(get(&w.doc, "name").is_some(), "{}: no name", w.file);
        assert!(!triggers(&w).is_empty(), "{}: no triggers", w.file);
        assert!(!jobs(&w).is_empty(), "{}: no jobs", w.file);
    }
}

#[test]
fn permissions_are_explicit_and_least_privilege() {
    for w in workflows() {
        let top = get(&w.doc, "permissions")
            .unwrap_or_else(|| panic!("{}: no workflow-level `permissions:`", w.file));
        check_permissions(&w.file, "workflow", top, false);
        assert!(
            !w.text.contains("write-all") && !w.text.contains("read-all"),
            "{}",
            w.file
        );
        for (name, job) in jobs(&w) {
            if let Some(permissions) = get(job, "permissions") {
                check_permissions(&w.file, &name, permissions, true);
            }
            // Writes only where the job's commands need them.
            let scripts = run_scripts(job).join("\n");
            let perms = job_permissions(job);
            let has = |key: &str, level: &str| perms.get(key).is_some_and(|l| l == level);
            let posts_comment =
                scripts.contains("preview comment") || scripts.contains("preview gate");
            let writes_deployments = scripts.contains("preview deployment");
            if posts_comment {
                assert!(
                    has("pull-requests", "write"),
                    "{} {name}: comments need pull-requests: write",
                    w.file
                );
            } else {
                assert!(
                    !has("pull-requests", "write"),
                    "{} {name}: pull-requests: write unused",
                    w.file
                );
            }
            if writes_deployments || get(job, "uses").is_some() {
                assert!(
                    has("deployments", "write"),
                    "{} {name}: needs deployments: write",
                    w.file
                );
            } else {
                assert!(
                    !has("deployments", "write"),
                    "{} {name}: deployments: write unused",
                    w.file
                );
            }
            if has("packages", "write") {
                assert!(
                    scripts.contains("skopeo copy"),
                    "{} {name}: packages: write unused",
                    w.file
                );
            }
        }
    }
}

#[test]
fn every_job_has_a_timeout() {
    for w in workflows() {
        for (name, job) in jobs(&w) {
            if let Some(uses) = get(job, "uses").and_then(Value::as_str) {
                // `timeout-minutes` is not allowed on a job that calls a workflow; the
                // called workflow's jobs carry it.
                let called = uses
                    .strip_prefix("./.github/workflows/")
                    .unwrap_or_else(|| panic!("{} {name}: only local reusable workflows", w.file));
                for (called_name, called_job) in jobs(&workflow(called)) {
                    assert!(
                        get(called_job, "timeout-minutes").is_some(),
                        "{called} {called_name}: no timeout-minutes"
                    );
                }
                continue;
            }
            let minutes = get(job, "timeout-minutes")
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("{} {name}: no timeout-minutes", w.file));
            assert!(
                (1..=60).contains(&minutes),
                "{} {name}: timeout {minutes}",
                w.file
            );
        }
    }
}

#[test]
fn no_expression_and_no_untrusted_string_inside_run() {
    for w in workflows() {
        for (name, job) in jobs(&w) {
            for script in run_scripts(job) {
                // Values reach scripts only through `env:`, where the shell treats them as
                // data. That rules out every `${{ … }}`, and with it every untrusted string.
                assert!(
                    !script.contains("${{"),
                    "{} {name}: `${{{{ … }}}}` inside run:\n{script}",
                    w.file
                );
                for untrusted in UNTRUSTED {
                    assert!(
                        !script.contains(untrusted),
                        "{} {name}: {untrusted} in run:",
                        w.file
                    );
                }
            }
        }
        // Stronger still: none of these workflows needs an untrusted string at all.
        for untrusted in UNTRUSTED {
            assert!(!w.text.contains(untrusted), "{}: uses {untrusted}", w.file);
        }
    }
}

#[test]
fn no_pr_code_where_secrets_or_environments_are() {
    for w in workflows() {
        let privileged_trigger = triggers(&w).iter().any(|t| {
            matches!(
                t.as_str(),
                "pull_request_target" | "workflow_run" | "workflow_dispatch" | "workflow_call"
            )
        });
        for (name, job) in jobs(&w) {
            let job_text = yaml_text(job);
            let holds_secrets = job_text.contains("secrets.")
                || get(job, "environment").is_some()
                || get(job, "secrets").is_some();
            for step in steps(job) {
                let uses = get(step, "uses")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !uses.starts_with("actions/checkout@") {
                    continue;
                }
                let with = get(step, "with");
                assert_eq!(
                    with.and_then(|w| get(w, "persist-credentials"))
                        .and_then(Value::as_bool),
                    Some(false),
                    "{} {name}: checkout must not persist the token",
                    w.file
                );
                let reference = with
                    .and_then(|w| get(w, "ref").or_else(|| get(w, "repository")))
                    .map(yaml_text)
                    .unwrap_or_default();
                let checks_out_pr = PR_HEAD.iter().any(|h| reference.contains(h));
                assert!(
                    !(checks_out_pr && (holds_secrets || privileged_trigger)),
                    "{} {name}: checks out PR code ({reference}) in a job with secrets/environment or a privileged trigger",
                    w.file
                );
                if privileged_trigger {
                    assert!(
                        reference.is_empty(),
                        "{} {name}: privileged workflows check out their own ref only",
                        w.file
                    );
                }
            }
        }
    }
}

#[test]
fn jobs_that_build_pr_code_hold_nothing() {
    let build = workflow("build.yml");
    assert_eq!(triggers(&build), ["pull_request".to_string()].into());
    assert!(
        !build.text.contains("secrets."),
        "build.yml must not use secrets"
    );
    for (name, job) in jobs(&build) {
        assert!(
            get(job, "environment").is_none(),
            "build.yml {name}: no environment"
        );
        for (key, level) in job_permissions(job) {
            assert_eq!(level, "read", "build.yml {name}: {key} must be read-only");
        }
    }
}

#[test]
fn actions_are_pinned_to_commits_and_secrets_are_not_inherited_blindly() {
    for w in workflows() {
        for (name, job) in jobs(&w) {
            if let Some(uses) = get(job, "uses").and_then(Value::as_str) {
                assert_eq!(
                    uses, REUSABLE,
                    "{} {name}: only the local reusable workflow",
                    w.file
                );
            }
            if get(job, "secrets").is_some() {
                // `inherit` is how environment-scoped secrets reach the called workflow's
                // environment job; allowed only there.
                assert_eq!(
                    get(job, "uses").and_then(Value::as_str),
                    Some(REUSABLE),
                    "{} {name}",
                    w.file
                );
            }
            for step in steps(job) {
                let Some(uses) = get(step, "uses").and_then(Value::as_str) else {
                    continue;
                };
                if uses.starts_with("./") {
                    continue;
                }
                let pin = uses.rsplit_once('@').map(|(_, p)| p).unwrap_or_default();
                assert!(
                    pin.len() == 40 && pin.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{} {name}: {uses} is not pinned to a commit SHA",
                    w.file
                );
            }
        }
    }
}

#[test]
fn preview_deploy_is_dispatched_with_typed_inputs_and_one_run_per_pr() {
    let w = workflow("preview-deploy.yml");
    assert_eq!(triggers(&w), ["workflow_dispatch".to_string()].into());
    let inputs = get(&w.doc, "on")
        .and_then(|on| get(on, "workflow_dispatch"))
        .and_then(|d| get(d, "inputs"))
        .expect("inputs");
    for (input, kind) in [
        ("pr_number", "number"),
        ("head_sha", "string"),
        ("web_digest", "string"),
        ("api_digest", "string"),
    ] {
        let spec = get(inputs, input).unwrap_or_else(|| panic!("input {input}"));
        assert_eq!(
            get(spec, "type").and_then(Value::as_str),
            Some(kind),
            "{input}"
        );
        assert_eq!(
            get(spec, "required").and_then(Value::as_bool),
            Some(true),
            "{input}"
        );
    }
    let concurrency = get(&w.doc, "concurrency").expect("concurrency");
    assert_eq!(
        get(concurrency, "group").and_then(Value::as_str),
        Some("preview-${{ inputs.pr_number }}")
    );
    assert_eq!(
        get(concurrency, "cancel-in-progress").and_then(Value::as_bool),
        Some(false)
    );
}

fn concurrency_group(w: &Workflow) -> Option<String> {
    get(&w.doc, "concurrency")
        .and_then(|c| get(c, "group"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[test]
fn cleanup_has_its_own_concurrency_group() {
    // A deploy waiting for approval holds its group for hours; cleanup must not queue
    // behind it (the state lock orders a destroy after a running `up` instead).
    let deploy = concurrency_group(&workflow("preview-deploy.yml")).expect("deploy group");
    let cleanup = workflow("preview-cleanup.yml");
    let group = concurrency_group(&cleanup).expect("cleanup group");
    assert_eq!(
        group,
        "preview-cleanup-${{ github.event.pull_request.number }}"
    );
    let sweep = concurrency_group(&workflow("preview-sweep.yml")).expect("sweep group");
    for (name, other) in [("deploy", &deploy), ("sweep", &sweep)] {
        assert_ne!(&group, other, "cleanup shares the {name} group");
        // Not a prefix either: `preview-${{ … }}` never expands to `preview-cleanup-…`.
        assert!(!group.starts_with(other.as_str()));
    }
    assert_ne!(deploy, sweep);
    // The destroy waits for a running `up` through the state lock.
    let scripts = all_scripts(&cleanup);
    assert!(
        scripts.contains("stacks destroy preview-pr --pr \"$PR_NUMBER\" --lock-timeout"),
        "{scripts}"
    );
}

fn validates_digests(job: &Value, variables: &[&str]) -> bool {
    run_scripts(job).iter().any(|script| {
        script.contains(DIGEST_REGEX)
            && variables
                .iter()
                .all(|v| script.contains(&format!("[[ \"${v}\" =~ $digest_re ]]")))
    })
}

#[test]
fn digests_are_validated_before_use() {
    for (file, variables) in [
        ("preview-deploy.yml", ["WEB_DIGEST", "API_DIGEST"]),
        ("deploy-reusable.yml", ["WEB_IMAGE", "API_IMAGE"]),
    ] {
        let w = workflow(file);
        let validating: Vec<String> = jobs(&w)
            .into_iter()
            .filter(|(_, job)| validates_digests(job, &variables))
            .map(|(name, _)| name)
            .collect();
        assert!(
            !validating.is_empty(),
            "{file}: no step checks the digests against {DIGEST_REGEX}"
        );
        // In the dispatched workflows every other job depends on the validating one.
        if file != "deploy-reusable.yml" {
            for (name, job) in jobs(&w) {
                if validating.contains(&name) || name == "tools" {
                    continue;
                }
                let all = transitive_needs(&w, &name);
                assert!(
                    validating.iter().any(|v| all.contains(v)),
                    "{file} {name}: runs without the digest validation ({:?})",
                    needs(job)
                );
            }
        }
    }
    // The build workflow's outputs are in that form too.
    let build = workflow("build.yml");
    assert!(build.text.contains(DIGEST_REGEX));
    let publish = workflow("publish-images.yml");
    assert!(publish.text.contains(DIGEST_REGEX));
}

fn transitive_needs(w: &Workflow, job: &str) -> BTreeSet<String> {
    let all: BTreeMap<String, Vec<String>> =
        jobs(w).into_iter().map(|(n, j)| (n, needs(j))).collect();
    let mut seen = BTreeSet::new();
    let mut stack = all.get(job).cloned().unwrap_or_default();
    while let Some(next) = stack.pop() {
        if seen.insert(next.clone()) {
            stack.extend(all.get(&next).cloned().unwrap_or_default());
        }
    }
    seen
}

fn uses_environment(job: &Value, environment: &str) -> bool {
    let direct = match get(job, "environment") {
        Some(Value::String(s)) => s == environment,
        Some(env @ Value::Mapping(_)) => {
            get(env, "name").and_then(Value::as_str) == Some(environment)
        }
        _ => false,
    };
    let via_reusable = get(job, "uses").is_some()
        && get(job, "with")
            .and_then(|w| get(w, "environment"))
            .and_then(Value::as_str)
            == Some(environment);
    direct || via_reusable
}

#[test]
fn the_plan_is_posted_before_the_protected_environment_is_requested() {
    let w = workflow("preview-deploy.yml");
    let plan_jobs: Vec<String> = jobs(&w)
        .into_iter()
        .filter(|(_, job)| {
            run_scripts(job).iter().any(|s| {
                s.contains("preview comment")
                    && s.contains("--plan-file")
                    && s.contains("--status pending")
            })
        })
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        plan_jobs.len(),
        1,
        "exactly one job posts the plan: {plan_jobs:?}"
    );
    let plan = &plan_jobs[0];
    let protected: Vec<(String, &Value)> = jobs(&w)
        .into_iter()
        .filter(|(_, job)| uses_environment(job, "preview"))
        .collect();
    assert_eq!(
        protected.len(),
        1,
        "one job uses the protected `preview` environment"
    );
    let (deploy, deploy_job) = &protected[0];
    assert_eq!(
        get(deploy_job, "uses").and_then(Value::as_str),
        Some(REUSABLE)
    );
    assert!(
        transitive_needs(&w, deploy).contains(plan),
        "{deploy} must need {plan}, so the plan is on the PR before approval is requested"
    );
    // The plan job itself holds no deploy credentials.
    let plan_job = jobs(&w)
        .into_iter()
        .find(|(n, _)| n == plan)
        .map(|(_, j)| j)
        .expect("plan job");
    assert!(!uses_environment(plan_job, "preview"));

    // The gate runs beside the waiting deploy (it cannot need it) and after the plan.
    let gate = jobs(&w)
        .into_iter()
        .find(|(_, job)| run_scripts(job).iter().any(|s| s.contains("preview gate")))
        .map(|(name, _)| name)
        .expect("a gate job");
    let gate_needs = transitive_needs(&w, &gate);
    assert!(gate_needs.contains(plan) && !gate_needs.contains(deploy));
    let gate_script = jobs(&w)
        .into_iter()
        .find(|(n, _)| *n == gate)
        .map(|(_, j)| run_scripts(j).join("\n"))
        .unwrap_or_default();
    assert!(gate_script.contains("--run-id \"$RUN_ID\""));
    assert!(gate_script.contains("--pr \"$PR_NUMBER\""));
}

#[test]
fn the_reusable_workflow_deploys_the_previews() {
    let reusable = workflow("deploy-reusable.yml");
    assert_eq!(triggers(&reusable), ["workflow_call".to_string()].into());
    for (name, job) in jobs(&reusable) {
        let environment = get(job, "environment").expect("the deploy job runs in an environment");
        assert_eq!(
            get(environment, "name").and_then(Value::as_str),
            Some("${{ inputs.environment }}"),
            "{name}"
        );
        let scripts = run_scripts(job).join("\n");
        assert!(
            scripts.contains("stacks --json \"${args[@]}\" > up.json")
                && scripts.contains("args=(up \"$STACK\"")
        );
        assert!(scripts.contains("preview health --url \"$WEB_URL\" --url \"$API_URL\""));
        assert!(scripts.contains("--state in_progress") && scripts.contains("--state success"));
        assert!(scripts.contains("--environment-url \"$WEB_URL\""));
        assert!(scripts.contains("--state failure"));
        // A preview records its images as tested with the commit they were built from.
        assert!(
            scripts.contains("args+=(--pr \"$PR_NUMBER\" --commit \"$COMMIT_SHA\")"),
            "{name}: stacks up preview-pr without --commit"
        );
    }
    let w = workflow("preview-deploy.yml");
    let callers: Vec<_> = jobs(&w)
        .into_iter()
        .filter(|(_, job)| get(job, "uses").and_then(Value::as_str) == Some(REUSABLE))
        .collect();
    assert_eq!(
        callers.len(),
        1,
        "preview-deploy.yml calls the reusable workflow once"
    );
    assert!(
        uses_environment(callers[0].1, "preview"),
        "preview-deploy.yml: environment preview"
    );
}

#[test]
fn cleanup_runs_on_close_destroys_verifies_and_reports() {
    let w = workflow("preview-cleanup.yml");
    let on = get(&w.doc, "on").expect("on");
    assert_eq!(triggers(&w), ["pull_request_target".to_string()].into());
    let types = get(on, "pull_request_target")
        .and_then(|t| get(t, "types"))
        .map(yaml_text)
        .unwrap_or_default();
    assert_eq!(types.trim(), "- closed");
    let scripts: String = jobs(&w)
        .into_iter()
        .flat_map(|(_, job)| run_scripts(job))
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "stacks destroy preview-pr --pr \"$PR_NUMBER\"",
        "get namespace \"preview-pr-$PR_NUMBER\"",
        "preview deployment deactivate --repo \"$REPO\" --environment \"preview-pr-$PR_NUMBER\"",
        "preview comment --repo \"$REPO\" --pr \"$PR_NUMBER\" --status destroyed",
    ] {
        assert!(scripts.contains(needle), "cleanup lacks `{needle}`");
    }
    // Nothing from the PR but its number.
    assert!(!w.text.contains("pull_request.head"));
}

#[test]
fn mapping_helper_reads_on_as_a_string_key() {
    // Guards the parser assumption the other tests rely on (YAML 1.2: `on` is a string).
    let doc: Value = serde_yaml_ng::from_str("on:\n  push: {}\n").expect("yaml");
    let map: &Mapping = doc.as_mapping().expect("mapping");
    assert!(map.contains_key("on"));
}

fn all_scripts(w: &Workflow) -> String {
    jobs(w)
        .into_iter()
        .flat_map(|(_, job)| run_scripts(job))
        .collect::<Vec<_>>()
        .join("\n")
}

fn step_script(step: &Value) -> &str {
    get(step, "run").and_then(Value::as_str).unwrap_or_default()
}

fn step_env(step: &Value) -> BTreeMap<String, String> {
    env_of(step)
}

fn env_of(value: &Value) -> BTreeMap<String, String> {
    get(value, "env")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or_default().to_string(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| yaml_text(v)),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a script runs the `stacks` binary (which unseals state), directly or
/// through `preview sweep`.
fn runs_stacks(script: &str) -> bool {
    script.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("stacks ")
            || line.starts_with("tools/stacks ")
            || line.contains("-p stacks-cli -- ")
            || line.starts_with("preview sweep ")
    })
}

/// Whether a script applies a stack (`stacks up …`, or the reusable `args=(up …)`).
fn runs_stacks_up(script: &str) -> bool {
    script.contains("args=(up ")
        || script.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("stacks up ") || l.contains("-p stacks-cli -- up ")
        })
}

const VERIFY_HEAD: &str = "preview verify-head --repo \"$REPO\" --pr \"$PR_NUMBER\" --sha";

#[test]
fn every_deploy_checks_the_built_commit_right_before_stacks_up() {
    let mut checked = 0;
    for w in workflows() {
        for (name, job) in jobs(&w) {
            let steps = steps(job);
            for (index, step) in steps.iter().enumerate() {
                if !runs_stacks_up(step_script(step)) {
                    continue;
                }
                checked += 1;
                // The step right before it checks the head; for the shared reusable
                // workflow, whenever the stack is a preview.
                let before = index
                    .checked_sub(1)
                    .map(|i| steps[i])
                    .unwrap_or_else(|| panic!("{} {name}: nothing before stacks up", w.file));
                assert!(
                    step_script(before).contains(VERIFY_HEAD),
                    "{} {name}: the step before `stacks up` must run `{VERIFY_HEAD} …`",
                    w.file
                );
                let condition = get(before, "if").and_then(Value::as_str);
                assert!(
                    condition.is_none() || condition == Some("inputs.stack == 'preview-pr'"),
                    "{} {name}: verify-head runs only if {condition:?}",
                    w.file
                );
                assert!(
                    step_env(before)
                        .get("GITHUB_TOKEN")
                        .is_some_and(|t| t == "${{ github.token }}"),
                    "{} {name}: verify-head needs GITHUB_TOKEN",
                    w.file
                );
                let reads_prs = job_permissions(job)
                    .get("pull-requests")
                    .is_some_and(|l| l == "read" || l == "write");
                assert!(
                    reads_prs,
                    "{} {name}: verify-head needs pull-requests: read",
                    w.file
                );
            }
        }
    }
    assert!(checked >= 1, "no `stacks up` found");

    // The reusable workflow is told the built commit by the preview caller…
    let reusable = workflow("deploy-reusable.yml");
    let reusable_text = yaml_text(&reusable.doc);
    assert!(reusable_text.contains("COMMIT_SHA: ${{ inputs.commit_sha }}"));
    assert!(all_scripts(&reusable).contains(&format!("{VERIFY_HEAD} \"$COMMIT_SHA\"")));
    let deploy = workflow("preview-deploy.yml");
    let caller = jobs(&deploy)
        .into_iter()
        .find(|(_, job)| get(job, "uses").is_some())
        .map(|(_, job)| job)
        .expect("deploy job");
    assert_eq!(
        get(caller, "with")
            .and_then(|w| get(w, "commit_sha"))
            .and_then(Value::as_str),
        Some("${{ needs.validate.outputs.head_sha }}")
    );
    // …and every caller grants what the reusable job asks for.
    for file in ["preview-deploy.yml", "production-deploy.yml"] {
        for (name, job) in jobs(&workflow(file)) {
            if get(job, "uses").is_some() {
                assert_eq!(
                    job_permissions(job)
                        .get("pull-requests")
                        .map(String::as_str),
                    Some("read"),
                    "{file} {name}"
                );
            }
        }
    }
}

#[test]
fn the_deploy_run_is_bound_to_the_built_commit() {
    let deploy = workflow("preview-deploy.yml");
    // The SHA comes from the build (an input), validated, never re-read from the PR.
    assert!(
        !deploy.text.contains(".head.sha"),
        "preview-deploy.yml must not look the PR head up; it checks it with verify-head"
    );
    let validate = jobs(&deploy)
        .into_iter()
        .find(|(name, _)| name == "validate")
        .map(|(_, job)| job)
        .expect("validate job");
    let script = run_scripts(validate).join("\n");
    assert!(
        script.contains("[[ \"$HEAD_SHA\" =~ ^[0-9a-f]{40}$ ]]"),
        "{script}"
    );
    assert!(yaml_text(validate).contains("HEAD_SHA: ${{ inputs.head_sha }}"));

    // At the start (the plan job, before planning) the head is checked…
    let plan = jobs(&deploy)
        .into_iter()
        .find(|(name, _)| name == "plan")
        .map(|(_, job)| job)
        .expect("plan job");
    let plan_steps = steps(plan);
    let verify = plan_steps
        .iter()
        .position(|s| step_script(s).contains(&format!("{VERIFY_HEAD} \"$HEAD_SHA\"")))
        .expect("plan verifies the head");
    let planning = plan_steps
        .iter()
        .position(|s| step_script(s).contains("stacks preview preview-pr"))
        .expect("plan runs stacks preview");
    assert!(verify < planning, "verify-head before the plan");

    // …and the comment, the Deployment and the gate all use that commit.
    let scripts = all_scripts(&deploy);
    for needle in [
        "preview comment --repo \"$REPO\" --pr \"$PR_NUMBER\" --status pending \\\n    --sha \"$HEAD_SHA\"",
        "preview deployment create --repo \"$REPO\" --pr \"$PR_NUMBER\" --sha \"$HEAD_SHA\"",
        "--environment preview --sha \"$HEAD_SHA\"",
    ] {
        let flat = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat(&scripts).contains(&flat(needle)), "missing `{needle}`");
    }
    for (name, job) in jobs(&deploy) {
        if let Some(sha) = env_of(job).get("HEAD_SHA") {
            assert_eq!(sha, "${{ needs.validate.outputs.head_sha }}", "{name}");
        }
        for step in steps(job) {
            if let Some(sha) = step_env(step).get("HEAD_SHA") {
                assert!(
                    sha == "${{ needs.validate.outputs.head_sha }}"
                        || sha == "${{ inputs.head_sha }}",
                    "{name}: HEAD_SHA is {sha}"
                );
            }
        }
    }

    // The build passes the commit it built; publish passes it on (from the event).
    let build = workflow("build.yml");
    assert!(
        build
            .text
            .contains("head_sha: ${{ steps.digests.outputs.head_sha }}")
    );
    let publish = workflow("publish-images.yml");
    let publish_scripts = all_scripts(&publish);
    assert!(publish_scripts.contains("-f head_sha=\"$HEAD_SHA\""));
    assert!(publish_scripts.contains("[[ \"$built\" == \"$RUN_HEAD_SHA\" ]]"));
    assert!(
        publish
            .text
            .contains("RUN_HEAD_SHA: ${{ github.event.workflow_run.head_sha }}")
    );
}

#[test]
fn the_gate_counts_the_runs_triggering_actor() {
    let deploy = workflow("preview-deploy.yml");
    let (name, gate) = jobs(&deploy)
        .into_iter()
        .find(|(_, job)| run_scripts(job).iter().any(|s| s.contains("preview gate")))
        .expect("a gate job");
    let script = run_scripts(gate).join("\n");
    // GitHub's own run context, not a workflow input.
    assert!(
        script.contains("--triggering-actor \"$GITHUB_TRIGGERING_ACTOR\""),
        "{name}: {script}"
    );
    assert!(
        !yaml_text(gate).contains("GITHUB_TRIGGERING_ACTOR:"),
        "{name}: never overridden"
    );
    // The build actor from the inputs counts only for the configured dispatcher.
    assert!(script.contains("vouched+=(--dispatcher \"$DISPATCHER\")"));
    assert!(yaml_text(gate).contains("DISPATCHER: ${{ vars.PREVIEW_DISPATCHER }}"));
    let publish = workflow("publish-images.yml");
    let (dispatch_name, dispatch) = jobs(&publish)
        .into_iter()
        .find(|(_, job)| {
            run_scripts(job)
                .iter()
                .any(|s| s.contains("gh workflow run"))
        })
        .expect("a dispatch job");
    assert!(
        uses_environment(dispatch, "preview-dispatch"),
        "{dispatch_name}: the dispatcher token lives in its own environment"
    );
    assert!(
        publish
            .text
            .contains("BUILD_ACTOR: ${{ github.event.workflow_run.triggering_actor.login }}")
    );
}

#[test]
fn the_state_passphrase_reaches_only_steps_that_run_stacks() {
    let mut steps_with_it = 0;
    for w in workflows() {
        assert!(
            !env_of(&w.doc).contains_key("PREVIEW_STATE_PASSPHRASE"),
            "{}: workflow-level passphrase",
            w.file
        );
        for (name, job) in jobs(&w) {
            assert!(
                !env_of(job).contains_key("PREVIEW_STATE_PASSPHRASE"),
                "{} {name}: job-level passphrase reaches every step",
                w.file
            );
            for step in steps(job) {
                let env = step_env(step);
                let Some(value) = env.get("PREVIEW_STATE_PASSPHRASE") else {
                    continue;
                };
                steps_with_it += 1;
                assert_eq!(
                    value, "${{ secrets.STATE_PASSPHRASE }}",
                    "{} {name}",
                    w.file
                );
                assert!(
                    runs_stacks(step_script(step)),
                    "{} {name}: step {:?} gets PREVIEW_STATE_PASSPHRASE but runs no `stacks`",
                    w.file,
                    get(step, "name").and_then(Value::as_str)
                );
            }
        }
        // The secret is read nowhere else.
        let uses = w.text.matches("secrets.STATE_PASSPHRASE").count();
        let in_steps: usize = jobs(&w)
            .into_iter()
            .flat_map(|(_, job)| steps(job))
            .filter(|s| step_env(s).contains_key("PREVIEW_STATE_PASSPHRASE"))
            .count();
        assert_eq!(
            uses, in_steps,
            "{}: STATE_PASSPHRASE outside a stacks step",
            w.file
        );
    }
    assert!(steps_with_it >= 4, "{steps_with_it}");
}

#[test]
fn the_backend_url_comes_only_from_secrets() {
    let mut seen = 0;
    for w in workflows() {
        assert!(
            !w.text.contains("vars.STATE_BACKEND"),
            "{}: the backend URL may carry a password; pass it as a secret",
            w.file
        );
        let mut scopes = vec![env_of(&w.doc)];
        for (_, job) in jobs(&w) {
            scopes.push(env_of(job));
            scopes.extend(steps(job).into_iter().map(step_env));
        }
        for env in scopes {
            if let Some(value) = env.get("PREVIEW_BACKEND") {
                seen += 1;
                assert_eq!(value, "${{ secrets.STATE_BACKEND }}", "{}", w.file);
            }
        }
        // Whoever runs `stacks` against the shared state gets the backend too.
        for (name, job) in jobs(&w) {
            for step in steps(job) {
                if step_env(step).contains_key("PREVIEW_STATE_PASSPHRASE") {
                    assert!(
                        step_env(step).contains_key("PREVIEW_BACKEND"),
                        "{} {name}: runs stacks without the backend",
                        w.file
                    );
                }
            }
        }
    }
    assert!(seen >= 4, "{seen}");
}

#[test]
fn the_sweep_is_scheduled_keeps_unknowns_and_reports() {
    let w = workflow("preview-sweep.yml");
    assert_eq!(
        triggers(&w),
        ["schedule".to_string(), "workflow_dispatch".to_string()].into()
    );
    let dry_run = get(&w.doc, "on")
        .and_then(|on| get(on, "workflow_dispatch"))
        .and_then(|d| get(d, "inputs"))
        .and_then(|i| get(i, "dry_run"))
        .expect("dry_run input");
    assert_eq!(
        get(dry_run, "type").and_then(Value::as_str),
        Some("boolean")
    );
    let scripts = all_scripts(&w);
    assert!(scripts.contains("preview sweep --repo \"$REPO\""));
    assert!(scripts.contains("flags+=(--dry-run)"));
    // The report is kept even when the sweep fails (unknown states exit 1).
    assert!(scripts.contains("|| status=$?") && scripts.contains("exit \"$status\""));
    // Swept previews' deployments end inactive and their comments say so.
    assert!(scripts.contains("select(.destroyed == true)"));
    assert!(scripts.contains(
        "preview deployment deactivate --repo \"$REPO\" --environment \"preview-pr-$pr\""
    ));
    assert!(scripts.contains("--status destroyed --if-exists"));
    // Nothing from a PR but numbers from the state backend.
    assert!(!w.text.contains("pull_request"));
    let (_, job) = jobs(&w).into_iter().next().expect("a job");
    assert!(uses_environment(job, "preview-cleanup"));
}

#[test]
fn production_deploy_promotes_the_tested_images_of_the_merged_pr() {
    let w = workflow("production-deploy.yml");
    assert_eq!(
        triggers(&w),
        [
            "pull_request_target".to_string(),
            "workflow_dispatch".to_string()
        ]
        .into()
    );
    let on = get(&w.doc, "on").expect("on");
    let types = get(on, "pull_request_target")
        .and_then(|t| get(t, "types"))
        .map(yaml_text)
        .unwrap_or_default();
    assert_eq!(types.trim(), "- closed");

    // Dispatch takes a PR number or a commit SHA, never a digest or an image.
    let inputs = get(on, "workflow_dispatch")
        .and_then(|d| get(d, "inputs"))
        .and_then(Value::as_mapping)
        .expect("inputs");
    let names: BTreeSet<String> = inputs
        .keys()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    assert_eq!(
        names,
        ["commit_sha".to_string(), "pr_number".to_string()].into()
    );
    for (name, spec) in inputs {
        let text = yaml_text(spec).to_lowercase();
        assert!(
            !text.contains("digest") && !text.contains("image") && !text.contains("sha256"),
            "input {name:?} must not take a digest: {text}"
        );
        assert_eq!(get(spec, "type").and_then(Value::as_str), Some("string"));
    }
    assert!(!w.text.contains("inputs.web") && !w.text.contains("inputs.api"));

    // Production is promoted from the records, never from typed-in images.
    let scripts = all_scripts(&w);
    for forbidden in [
        "--web-image",
        "--api-image",
        "--untested",
        "stacks up",
        "args=(up",
    ] {
        assert!(
            !scripts.contains(forbidden),
            "production-deploy.yml runs `{forbidden}`"
        );
    }
    assert!(
        jobs(&w).iter().all(|(_, job)| get(job, "uses").is_none()),
        "production-deploy.yml promotes in its own job, not through the reusable `up`"
    );

    // The resolving job runs only for merges into the default branch (or a dispatch)
    // and checks what it finds.
    let (resolve, resolve_job) = jobs(&w)
        .into_iter()
        .find(|(name, _)| name == "resolve")
        .expect("resolve job");
    let condition = get(resolve_job, "if")
        .and_then(Value::as_str)
        .unwrap_or_default();
    for needle in [
        "github.event_name == 'workflow_dispatch'",
        "github.event.pull_request.merged == true",
        "github.event.pull_request.base.ref == github.event.repository.default_branch",
    ] {
        assert!(condition.contains(needle), "resolve if: {condition}");
    }
    let resolve_script = run_scripts(resolve_job).join("\n");
    for needle in [
        "pr_re='^[1-9][0-9]{0,9}$'",
        "sha_re='^[0-9a-f]{40}$'",
        "[[ \"$pr\" =~ $pr_re ]]",
        "[[ \"$INPUT_SHA\" =~ $sha_re ]]",
        "[[ \"$merged\" == true ]]",
        "[[ \"$base\" == \"$DEFAULT_BRANCH\" ]]",
        "gh api \"repos/$REPO/commits/$sha/pulls\"",
    ] {
        assert!(resolve_script.contains(needle), "resolve lacks `{needle}`");
    }
    assert_eq!(
        job_permissions(resolve_job),
        [
            ("contents".to_string(), "read".to_string()),
            ("pull-requests".to_string(), "read".to_string())
        ]
        .into()
    );
    for (name, _) in jobs(&w) {
        if name != resolve {
            assert!(
                transitive_needs(&w, &name).contains(&resolve),
                "{name} runs without resolve"
            );
        }
    }

    // One job holds the production credentials; it promotes the PR's test of that
    // commit, then checks health and reports.
    let protected: Vec<(String, &Value)> = jobs(&w)
        .into_iter()
        .filter(|(_, job)| uses_environment(job, "production"))
        .collect();
    assert_eq!(protected.len(), 1, "one job uses `production`");
    let (deploy, deploy_job) = &protected[0];
    let deploy_script = run_scripts(deploy_job).join("\n");
    assert!(
        deploy_script
            .contains("stacks promote --from-pr \"$PR_NUMBER\" --from-sha \"$COMMIT_SHA\""),
        "{deploy}: {deploy_script}"
    );
    assert!(deploy_script.contains("preview health --url \"$WEB_URL\" --url \"$API_URL\""));
    for state in ["in_progress", "success", "failure"] {
        assert!(
            deploy_script.contains(&format!("--state {state}")),
            "{state}"
        );
    }
    let env = env_of(deploy_job);
    assert_eq!(
        env.get("PR_NUMBER").map(String::as_str),
        Some("${{ needs.resolve.outputs.pr_number }}")
    );
    assert_eq!(
        env.get("COMMIT_SHA").map(String::as_str),
        Some("${{ needs.resolve.outputs.commit_sha }}")
    );
    // The GitHub Deployment names the commit the promoted images were built from.
    assert!(scripts.contains(
        "preview deployment create --repo \"$REPO\" --environment production --production --sha \"$COMMIT_SHA\""
    ));
}

fn job<'a>(w: &'a Workflow, name: &str) -> &'a Value {
    jobs(w)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, j)| j)
        .unwrap_or_else(|| panic!("{}: no job {name}", w.file))
}

fn with_input<'a>(job: &'a Value, key: &str) -> Option<&'a str> {
    get(job, "with")
        .and_then(|w| get(w, key))
        .and_then(Value::as_str)
}

#[test]
fn the_saved_plan_posted_before_approval_is_the_plan_applied() {
    let w = workflow("preview-deploy.yml");
    // The plan job saves the plan, posts it with its id, and uploads the file.
    let plan = job(&w, "plan");
    let scripts = run_scripts(plan).join("\n");
    assert!(
        scripts.contains("stacks preview preview-pr")
            && scripts.contains("--format markdown --out plan.json > plan.md"),
        "the plan job saves the plan: {scripts}"
    );
    assert!(scripts.contains("plan_id=$(jq -r .planId plan.json)"));
    assert!(scripts.contains("echo \"plan_id=$plan_id\" >> \"$GITHUB_OUTPUT\""));
    assert!(
        scripts.contains("--plan-file plan.md --plan-id \"$PLAN_ID\""),
        "the plan comment shows the plan id"
    );
    assert_eq!(
        get(plan, "outputs")
            .and_then(|o| get(o, "plan_id"))
            .and_then(Value::as_str),
        Some("${{ steps.plan.outputs.plan_id }}")
    );
    let upload = steps(plan)
        .into_iter()
        .find(|s| {
            get(s, "uses")
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .expect("the plan job uploads the plan");
    assert_eq!(with_input(upload, "name"), Some("preview-plan"));
    let paths = with_input(upload, "path").unwrap_or_default();
    assert!(
        paths.contains("plan.json") && paths.contains("plan.md"),
        "{paths}"
    );

    // The deploy is given that artifact and the posted id.
    let deploy = job(&w, "deploy");
    assert_eq!(with_input(deploy, "plan_artifact"), Some("preview-plan"));
    assert_eq!(
        with_input(deploy, "plan_id"),
        Some("${{ needs.plan.outputs.plan_id }}")
    );
    assert!(needs(deploy).contains(&"plan".to_string()));

    // The reusable workflow downloads it, checks the file is the reviewed plan and
    // applies exactly it; the plan applied is its output.
    let reusable = workflow("deploy-reusable.yml");
    let inputs = get(&reusable.doc, "on")
        .and_then(|on| get(on, "workflow_call"))
        .and_then(|c| get(c, "inputs"))
        .expect("inputs");
    for key in ["plan_artifact", "plan_id"] {
        assert!(get(inputs, key).is_some(), "input {key}");
    }
    let (_, up_job) = jobs(&reusable).into_iter().next().expect("the deploy job");
    let up_steps = steps(up_job);
    let download = up_steps
        .iter()
        .position(|s| {
            with_input(s, "name") == Some("${{ inputs.plan_artifact }}")
                && get(s, "uses")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.starts_with("actions/download-artifact@"))
        })
        .expect("the saved plan is downloaded");
    let up = up_steps
        .iter()
        .position(|s| runs_stacks_up(step_script(s)))
        .expect("stacks up");
    assert!(download < up, "the plan is downloaded before `stacks up`");
    let up_script = step_script(up_steps[up]);
    assert!(up_script.contains("file_id=$(jq -r .planId saved-plan/plan.json)"));
    assert!(up_script.contains("[[ \"$file_id\" == \"$PLAN_ID\" ]]"));
    assert!(up_script.contains("args+=(--plan saved-plan/plan.json)"));
    assert!(up_script.contains("echo \"plan_id=$applied\" >> \"$GITHUB_OUTPUT\""));
    assert_eq!(
        get(up_steps[up], "id").and_then(Value::as_str),
        Some("up"),
        "the step's output is read by id"
    );
    assert_eq!(
        get(up_job, "outputs")
            .and_then(|o| get(o, "plan_id"))
            .and_then(Value::as_str),
        Some("${{ steps.up.outputs.plan_id }}")
    );
    let validate = step_script(up_steps[0]);
    assert!(validate.contains("[[ \"$PLAN_ID\" =~ ^sha256:[0-9a-f]{64}$ ]]"));

    // The final comment names the plan that was applied.
    let report = job(&w, "report");
    let report_env = env_of(
        &steps(report)
            .into_iter()
            .last()
            .expect("comment step")
            .clone(),
    );
    assert_eq!(
        report_env.get("APPLIED_PLAN_ID").map(String::as_str),
        Some("${{ needs.deploy.outputs.plan_id }}")
    );
    let report_script = run_scripts(report).join("\n");
    assert!(
        report_script.contains("--status success")
            && report_script.contains("--plan-id \"$APPLIED_PLAN_ID\""),
        "{report_script}"
    );
}

#[test]
fn the_final_comment_shows_every_output_of_the_deployed_stack() {
    // The deploy saves the stack's outputs (the shape of `stacks outputs --json`)
    // and uploads them…
    let reusable = workflow("deploy-reusable.yml");
    let deploy = job(&reusable, "deploy");
    let scripts = run_scripts(deploy).join("\n");
    assert!(
        scripts.contains("stacks --json \"${args[@]}\" > up.json")
            && scripts.contains("jq .outputs up.json > outputs.json"),
        "{scripts}"
    );
    let upload = steps(deploy)
        .into_iter()
        .find(|s| {
            get(s, "uses")
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
                && with_input(s, "name") == Some("stack-outputs")
        })
        .expect("the deploy uploads the outputs");
    // On success only (no `if:`: the default `success()`).
    assert_eq!(get(upload, "if"), None);
    assert_eq!(with_input(upload, "path"), Some("outputs.json"));

    // …and the final comment of a success shows them all, for any app: no
    // Aphiria-shaped URL flags.
    let w = workflow("preview-deploy.yml");
    let report = job(&w, "report");
    let download = steps(report)
        .into_iter()
        .find(|s| with_input(s, "name") == Some("stack-outputs"))
        .expect("the report downloads the outputs");
    assert_eq!(with_input(download, "path"), Some("outputs"));
    assert_eq!(
        get(download, "if").and_then(Value::as_str),
        Some("needs.deploy.result == 'success'")
    );
    let script = run_scripts(report).join("\n");
    let flat = script.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("--status success --outputs-file outputs/outputs.json"),
        "{script}"
    );
    for old in ["--web-url", "--api-url", "--web-digest", "--api-digest"] {
        assert!(
            !all_scripts(&w).contains(old),
            "{old}: use --outputs-file / --url / --image"
        );
    }
}

/// The `PREVIEW_*` secrets a stack's config file names on its `# Secrets:` line.
fn stack_secrets(stack: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../config/{stack}.yaml"));
    let text = std::fs::read_to_string(&path).expect("config file");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# Secrets:"))
        .unwrap_or_else(|| panic!("{}: no `# Secrets:` line", path.display()));
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("PREVIEW_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_promotion_gets_every_secret_the_production_stack_needs() {
    let secrets = stack_secrets("production");
    assert!(
        secrets.contains(&"PREVIEW_DIGITALOCEAN_TOKEN".to_string()),
        "{secrets:?}"
    );
    let w = workflow("production-deploy.yml");
    let promote: Vec<_> = jobs(&w)
        .into_iter()
        .flat_map(|(_, job)| steps(job))
        .filter(|s| step_script(s).contains("stacks promote "))
        .collect();
    assert_eq!(promote.len(), 1, "one `stacks promote` step");
    let env = step_env(promote[0]);
    for secret in secrets {
        let name = secret.trim_start_matches("PREVIEW_");
        assert_eq!(
            env.get(&secret).map(String::as_str),
            Some(format!("${{{{ secrets.{name} }}}}").as_str()),
            "production-deploy.yml: `stacks promote` needs {secret} (config/production.yaml)"
        );
    }
}

fn action() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../action.yml");
    let text = std::fs::read_to_string(&path).expect("action.yml at the repository root");
    serde_yaml_ng::from_str(&text).expect("action.yml is valid YAML")
}

fn action_steps(action: &Value) -> Vec<&Value> {
    get(action, "runs")
        .and_then(|r| get(r, "steps"))
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn action_step<'a>(action: &'a Value, id: &str) -> &'a Value {
    action_steps(action)
        .into_iter()
        .find(|s| get(s, "id").and_then(Value::as_str) == Some(id))
        .unwrap_or_else(|| panic!("action.yml: no step with id {id}"))
}

#[test]
fn the_action_installs_from_a_cached_build_or_a_checked_release() {
    let action = action();
    let runs = get(&action, "runs").expect("runs");
    assert_eq!(
        get(runs, "using").and_then(Value::as_str),
        Some("composite")
    );
    for step in action_steps(&action) {
        let name = get(step, "name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(script) = get(step, "run").and_then(Value::as_str) {
            assert_eq!(
                get(step, "shell").and_then(Value::as_str),
                Some("bash"),
                "action.yml {name}: composite run steps name their shell"
            );
            assert!(
                !script.contains("${{"),
                "action.yml {name}: `${{{{ … }}}}` inside run: (pass it through env:)"
            );
            assert!(script.starts_with("set -euo pipefail"), "action.yml {name}");
        }
        if let Some(uses) = get(step, "uses").and_then(Value::as_str) {
            let pin = uses.rsplit_once('@').map(|(_, p)| p).unwrap_or_default();
            assert!(
                pin.len() == 40 && pin.bytes().all(|b| b.is_ascii_hexdigit()),
                "action.yml {name}: {uses} is not pinned to a commit SHA"
            );
        }
    }
    // The cache key: the Cargo.lock hash and the action's ref (or source tree).
    let key = step_script(action_step(&action, "where"));
    assert!(
        key.contains("sha256sum \"$GITHUB_ACTION_PATH/Cargo.lock\""),
        "{key}"
    );
    assert!(
        key.contains("$ACTION_REF") && key.contains("rev-parse HEAD:crates"),
        "{key}"
    );
    assert_eq!(
        step_env(action_step(&action, "where"))
            .get("ACTION_REF")
            .map(String::as_str),
        Some("${{ github.action_ref }}")
    );
    let cache = action_step(&action, "cache");
    assert!(
        get(cache, "uses")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with("actions/cache@"))
    );
    let with = get(cache, "with").expect("cache with:");
    assert_eq!(
        get(with, "key").and_then(Value::as_str),
        Some("${{ steps.where.outputs.key }}")
    );
    assert_eq!(
        get(cache, "if").and_then(Value::as_str),
        Some("inputs.version == '' && inputs.cache == 'true'")
    );
    // Built only on a cache miss; downloaded (and checked) only for a version.
    let steps = action_steps(&action);
    let build = steps
        .iter()
        .find(|s| {
            step_script(s)
                .contains("cargo build --release --locked -p stacks-cli -p preview-github")
        })
        .expect("a build step");
    assert_eq!(
        get(build, "if").and_then(Value::as_str),
        Some("inputs.version == '' && steps.cache.outputs.cache-hit != 'true'")
    );
    let download = steps
        .iter()
        .find(|s| step_script(s).contains("gh release download"))
        .expect("a download step");
    assert_eq!(
        get(download, "if").and_then(Value::as_str),
        Some("inputs.version != ''")
    );
    assert!(
        step_script(download).contains("sha256sum -c"),
        "the archive is checked"
    );
}

#[test]
fn workflows_install_the_tools_with_the_action_and_pass_only_its_inputs() {
    let action = action();
    let inputs: BTreeSet<String> = get(&action, "inputs")
        .and_then(Value::as_mapping)
        .expect("inputs")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    for expected in [
        "command",
        "stack",
        "pr",
        "images",
        "state",
        "kubeconfig",
        "version",
    ] {
        assert!(
            inputs.contains(expected),
            "action.yml lacks input {expected}"
        );
    }
    let mut uses_action = 0;
    for w in workflows() {
        assert!(
            !w.text.contains("cargo build --release"),
            "{}: installs the tools with the action (uses: ./), not its own build",
            w.file
        );
        for (name, job) in jobs(&w) {
            for step in steps(job) {
                if get(step, "uses").and_then(Value::as_str) != Some("./") {
                    continue;
                }
                uses_action += 1;
                let with = get(step, "with").and_then(Value::as_mapping);
                for key in with.into_iter().flat_map(|m| m.keys()) {
                    let key = key.as_str().unwrap_or_default();
                    assert!(
                        inputs.contains(key),
                        "{} {name}: action.yml has no input {key:?}",
                        w.file
                    );
                }
            }
        }
    }
    assert!(
        uses_action >= 5,
        "{uses_action} workflow steps use the action"
    );
    // The release the action downloads from is built by it too, fresh (not restored).
    let release = workflow("release.yml");
    assert_eq!(triggers(&release), ["push".to_string()].into());
    let script = all_scripts(&release);
    for needle in [
        "asset=\"preview-envs-$TAG-x86_64-linux.tar.gz\"",
        "sha256sum \"$asset\" > \"$asset.sha256\"",
        "gh release upload",
    ] {
        assert!(script.contains(needle), "release.yml lacks `{needle}`");
    }
    let action_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../action.yml"))
            .expect("action.yml");
    assert!(action_text.contains("asset=\"preview-envs-$VERSION-x86_64-linux.tar.gz\""));
    let install = jobs(&release)
        .into_iter()
        .flat_map(|(_, job)| steps(job))
        .find(|s| get(s, "uses").and_then(Value::as_str) == Some("./"))
        .expect("release.yml builds with the action");
    assert_eq!(
        get(install, "with")
            .and_then(|w| get(w, "cache"))
            .and_then(Value::as_str),
        Some("false")
    );
}

/// Runs the action's `Run stacks` script with bash: `stacks` is a script that
/// records its arguments, one a line; returns them and the step's outputs.
fn run_action_script(inputs: &[(&str, &str)]) -> (Vec<String>, String) {
    let action = action();
    let script = step_script(action_step(&action, "run")).to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let recorded = dir.path().join("args");
    let fake = format!(
        "#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > '{}'\nprintf 'backend=%s\\n' \"${{PREVIEW_BACKEND:-}}\" >> '{}'\n",
        recorded.display(),
        recorded.display()
    );
    std::fs::write(bin.join("stacks"), fake).expect("fake stacks");
    let chmod = std::process::Command::new("chmod")
        .args(["+x"])
        .arg(bin.join("stacks"))
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let outputs = dir.path().join("outputs");
    let mut command = std::process::Command::new("bash");
    command
        .arg("-c")
        .arg(&script)
        .env("BIN", &bin)
        .env("GITHUB_OUTPUT", &outputs)
        .env("RUNNER_TEMP", dir.path());
    for key in [
        "COMMAND",
        "STACK",
        "PR",
        "IMAGES",
        "STATE",
        "KUBECONFIG",
        "CONTEXT",
        "PLAN",
        "OUT",
        "FORMAT",
        "COMMIT",
        "ARGS",
    ] {
        command.env(format!("INPUT_{key}"), "");
    }
    command.env("INPUT_FORMAT", "text");
    for (key, value) in inputs {
        command.env(format!("INPUT_{key}"), value);
    }
    let status = command.status().expect("bash");
    assert!(status.success(), "the script failed for {inputs:?}");
    let args = std::fs::read_to_string(&recorded)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    (args, std::fs::read_to_string(&outputs).unwrap_or_default())
}

#[test]
fn the_action_passes_its_inputs_to_stacks_as_arguments() {
    let (args, outputs) = run_action_script(&[
        ("COMMAND", "preview"),
        ("STACK", "preview-pr"),
        ("PR", "7"),
        (
            "IMAGES",
            "web=r/web@sha256:aa\n  api=r/api@sha256:bb  \n\nworker=r/w@sha256:cc",
        ),
        ("STATE", "kubernetes://preview-state"),
        ("FORMAT", "markdown"),
        ("ARGS", "--lock-timeout\n5m"),
    ]);
    assert_eq!(
        args,
        [
            "preview",
            "preview-pr",
            "--pr",
            "7",
            "--image",
            "web=r/web@sha256:aa",
            "--image",
            "api=r/api@sha256:bb",
            "--image",
            "worker=r/w@sha256:cc",
            "--format",
            "markdown",
            "--lock-timeout",
            "5m",
            "backend=kubernetes://preview-state",
        ]
    );
    assert!(outputs.contains("exit_code=0"), "{outputs}");
    // Another app's keys (examples/apps/node-redis: api and worker), spaces
    // around `=` trimmed; each becomes `--image KEY=REF`.
    let (args, _) = run_action_script(&[
        ("COMMAND", "up"),
        ("STACK", "preview-pr"),
        ("PR", "7"),
        ("IMAGES", "api = r/api@sha256:bb\nworker=r/w@sha256:cc\n"),
    ]);
    assert_eq!(
        args,
        [
            "up",
            "preview-pr",
            "--pr",
            "7",
            "--image",
            "api=r/api@sha256:bb",
            "--image",
            "worker=r/w@sha256:cc",
            "backend=",
        ]
    );
    // destroy takes no images; a kubeconfig becomes a private file.
    let (args, _) = run_action_script(&[
        ("COMMAND", "destroy"),
        ("STACK", "preview-pr"),
        ("PR", "7"),
        ("IMAGES", "web=r/web@sha256:aa"),
        ("KUBECONFIG", "apiVersion: v1"),
    ]);
    assert_eq!(args[0], "--kubeconfig");
    assert_eq!(
        &args[2..],
        ["destroy", "preview-pr", "--pr", "7", "backend="]
    );
    // install runs nothing.
    let (args, outputs) = run_action_script(&[("COMMAND", "install")]);
    assert!(args.is_empty(), "{args:?}");
    assert!(outputs.contains("exit_code=0"));
}

/// A failed `stacks up` reaches the PR comment: right after it the deploy job
/// keeps the `failed[]` of its `--json` document (that part only: the step
/// failures `stacks` already redacted) as an artifact, and the report job of
/// preview-deploy.yml passes the file to `preview comment --failure-file`. The
/// keep script, run with bash, writes what `--failure-file` reads, for a failed
/// run's document, a run that printed nothing, and a run that printed no JSON.
#[test]
fn the_step_failures_of_a_failed_up_reach_the_pr_comment() {
    let reusable = workflow("deploy-reusable.yml");
    let (_, deploy) = jobs(&reusable).into_iter().next().expect("the deploy job");
    let all = steps(deploy);
    let position = |pred: &dyn Fn(&Value) -> bool| all.iter().position(|s| pred(s));
    let up = position(&|s| get(s, "id").and_then(Value::as_str) == Some("up")).expect("up");
    let keep = position(&|s| {
        get(s, "name").and_then(Value::as_str) == Some("Keep the step failures for the PR comment")
    })
    .expect("the keep step");
    let upload = position(&|s| {
        get(s, "uses")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
            && get(s, "with")
                .and_then(|w| get(w, "name"))
                .and_then(Value::as_str)
                == Some("stacks-up-failures")
    })
    .expect("the upload step");
    assert!(up < keep && keep < upload, "up, keep, upload in that order");
    for i in [keep, upload] {
        let condition = get(all[i], "if")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(
            condition.contains("failure()") && condition.contains("preview-pr"),
            "runs when the deploy of a preview failed: {condition}"
        );
    }
    let with = get(all[upload], "with").expect("with");
    assert_eq!(
        get(with, "path").and_then(Value::as_str),
        Some("up-failures/failures.json"),
        "only the failures leave the job"
    );

    let script = step_script(all[keep]);
    let run_keep = |up_json: Option<&str>| -> String {
        let dir = tempfile::tempdir().expect("dir");
        if let Some(text) = up_json {
            std::fs::write(dir.path().join("up.json"), text).expect("up.json");
        }
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(dir.path().join("up-failures/failures.json")).expect("file")
    };
    // The --json document of a failed `stacks up` (step_failures.rs).
    let failed_up = serde_json::json!({
        "error": "1 step(s) failed (3 skipped, 16 done)",
        "plan": {"summary": {"create": 20}},
        "failed": [{
            "resource": "Deployment preview-pr-7/web",
            "error": "timed out after 300s waiting for readiness",
            "failure": {
                "reason": "0 of 1 replicas available",
                "events": [{"object": "Pod web-1", "reason": "BackOff", "message": "Back-off restarting failed container", "count": 3}],
                "containers": [],
                "notes": [],
                "truncated": false
            }
        }]
    })
    .to_string();
    let kept = run_keep(Some(&failed_up));
    assert!(
        !kept.contains("summary"),
        "nothing but the failures: {kept}"
    );
    let failures = preview_github::comment::parse_failures(&kept).expect("--failure-file reads it");
    assert_eq!(failures.len(), 1, "{kept}");
    assert_eq!(failures[0].resource, "Deployment preview-pr-7/web");
    assert_eq!(
        failures[0].failure.as_ref().map(|d| d.reason.as_str()),
        Some("0 of 1 replicas available")
    );
    // Failed before printing, or printed no JSON: an empty file, which adds nothing.
    for up_json in [None, Some("not json")] {
        let kept = run_keep(up_json);
        assert_eq!(kept, "", "{up_json:?}");
        assert!(
            preview_github::comment::parse_failures(&kept)
                .expect("empty")
                .is_empty()
        );
    }

    let w = workflow("preview-deploy.yml");
    let report = job(&w, "report");
    let download = steps(report)
        .into_iter()
        .find(|s| {
            get(s, "with")
                .and_then(|w| get(w, "name"))
                .and_then(Value::as_str)
                == Some("stacks-up-failures")
        })
        .expect("the report job downloads the failures");
    assert_eq!(
        get(download, "continue-on-error").and_then(Value::as_bool),
        Some(true),
        "absent when the deploy failed before stacks up"
    );
    assert_eq!(
        get(download, "with")
            .and_then(|w| get(w, "path"))
            .and_then(Value::as_str),
        Some("up-failures")
    );
    let scripts = run_scripts(report).join("\n");
    assert!(
        scripts.contains("failures=(--failure-file up-failures/failures.json)")
            && scripts.contains("\"${failures[@]}\" --status failure"),
        "the failure comment carries the step failures:\n{scripts}"
    );
}
