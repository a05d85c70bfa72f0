//! Concurrency and secrecy of the `stacks` binary against the real control plane
//! and PostgreSQL:
//! - 20 concurrent `up` runs of one stack: exactly one applies; every other run
//!   either fails fast naming the lock holder or (starting after it) changes
//!   nothing; the state is never written by two runs;
//! - 20 different stacks in parallel against one API server and one PostgreSQL:
//!   all succeed, and all are destroyed;
//! - a canary secret (and its base64, JSON and URL-encoded forms) never appears in
//!   stdout, stderr (logs at trace level), any plan rendering, a saved plan, or the raw state.

mod support_cluster;

use std::process::Output;

use base64::Engine as _;
use support_cluster::{Stacks, pr_args, world};

fn up(pr: u64) -> Vec<String> {
    let mut a = vec![
        "--json".to_owned(),
        "up".to_owned(),
        "preview-pr".to_owned(),
    ];
    a.extend(pr_args(pr));
    a
}

fn spawn_all(stacks: &Stacks, runs: Vec<Vec<String>>) -> Vec<Output> {
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            stacks
                .command(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_ups_of_one_stack_apply_once() {
    let world = world().await;
    let stacks = Stacks::new(world);
    let pr = 930;
    let outputs = spawn_all(&stacks, (0..20).map(|_| up(pr)).collect());
    let mut applied = Vec::new();
    let mut unchanged = 0;
    let mut locked = 0;
    for out in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            if report["plan"]["summary"]["create"].as_u64().unwrap_or(0) > 0 {
                applied.push(report["serial"].as_u64().expect("serial"));
            } else {
                assert_eq!(report["requests"]["writes"], 0, "{report}");
                unchanged += 1;
            }
        } else {
            assert!(
                stderr.contains("is locked by"),
                "a failed run names the holder: {stderr}"
            );
            locked += 1;
        }
    }
    assert_eq!(
        applied.len(),
        1,
        "exactly one run applies ({unchanged} unchanged, {locked} locked)"
    );
    let state =
        std::fs::read_to_string(stacks.state.join(format!("preview-pr-{pr}.json"))).expect("state");
    let stored: serde_json::Value = serde_json::from_str(&state).expect("json");
    assert_eq!(
        stored["state"]["serial"].as_u64(),
        Some(applied[0]),
        "no other run wrote the state"
    );
    stacks.ok(&["destroy", "preview-pr", "--pr", &pr.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_stacks_in_parallel_all_succeed() {
    let world = world().await;
    let stacks = Stacks::new(world);
    let prs: Vec<u64> = (960..980).collect();
    let outputs = spawn_all(&stacks, prs.iter().map(|pr| up(*pr)).collect());
    for (pr, out) in prs.iter().zip(&outputs) {
        assert!(
            out.status.success(),
            "PR {pr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let destroys = prs
        .iter()
        .map(|pr| {
            vec![
                "destroy".to_owned(),
                "preview-pr".to_owned(),
                "--pr".to_owned(),
                pr.to_string(),
            ]
        })
        .collect();
    for (pr, out) in prs.iter().zip(spawn_all(&stacks, destroys)) {
        assert!(
            out.status.success(),
            "destroy PR {pr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secret_never_leaks() {
    let world = world().await;
    let stacks = Stacks::new(world);
    let canary = "canary-Zq8!x/+p=7&q";
    let forms = [
        canary.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(canary),
        serde_json::to_string(canary)
            .expect("json")
            .trim_matches('"')
            .to_owned(),
        canary
            .replace('!', "%21")
            .replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D")
            .replace('&', "%26"),
    ];
    let pr = 940;
    let run = |args: Vec<String>| {
        let out = stacks
            .command(&args)
            .env("PREVIEW_DB_PASSWORD", canary)
            .env("PREVIEW_LOG", "trace")
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let mut seen = Vec::new();
    let with = |cmd: &[&str]| {
        let mut a: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
        a.extend(pr_args(pr));
        a
    };
    for format in ["text", "json", "markdown"] {
        seen.push(run(with(&["preview", "preview-pr", "--format", format])));
    }
    // A saved plan (scanned with the state files below).
    let saved_plan = stacks.state.join("saved-plan.json");
    let saved_plan = saved_plan.display().to_string();
    seen.push(run(with(&["preview", "preview-pr", "--out", &saved_plan])));
    seen.push(run(with(&["up", "preview-pr"])));
    seen.push(run(with(&["--json", "up", "preview-pr"])));
    seen.push(run(vec![
        "outputs".into(),
        "preview-pr".into(),
        "--pr".into(),
        pr.to_string(),
    ]));
    seen.push(run(vec![
        "state".into(),
        "show".into(),
        format!("preview-pr-{pr}"),
    ]));
    // Rotate the secret: the plan shows the Secret changing, never the values.
    let a = with(&["--json", "preview", "preview-pr"]);
    let rotated = stacks
        .command(&a)
        .env("PREVIEW_DB_PASSWORD", "another-value-1234")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("[secret]"));
    seen.push(rotated);
    for out in &seen {
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            for form in &forms {
                assert!(
                    !text.contains(form.as_str()),
                    "canary form {form:?} leaked:\n{text}"
                );
            }
        }
    }
    // States, locks, the tested-image records (`tested-images/`) and the saved plan.
    assert!(std::path::Path::new(&saved_plan).exists());
    let mut dirs = vec![stacks.state.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("state dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            for form in &forms {
                assert!(
                    !text.contains(form.as_str()),
                    "canary form {form:?} in {}",
                    path.display()
                );
            }
        }
    }
    stacks.ok(&["destroy", "preview-pr", "--pr", &pr.to_string()]);
}
