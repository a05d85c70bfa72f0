//! README's first command, `scripts/demo.sh`, run as a newcomer runs it: the main
//! job end to end on a local control plane (preview-base, the plan of
//! preview-pr 123, its `up`, a second `up` that changes nothing, and a verified
//! destroy). It broke once without any test noticing (the per-PR role's password
//! needs a state passphrase the script did not set); this keeps it working.

use std::path::Path;
use std::process::Command;

#[test]
fn the_readme_demo_runs_the_main_job_end_to_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg("scripts/demo.sh")
        .current_dir(&root)
        // The demo sets what it needs; nothing of the caller's may leak in.
        .env_remove("KUBECONFIG")
        .env_remove("PREVIEW_BACKEND")
        .env_remove("PREVIEW_STATE_PASSPHRASE")
        .env_remove("PREVIEW_STATE_PASSPHRASE_FILE")
        .env_remove("PREVIEW_POSTGRES_URL")
        .output()
        .expect("bash runs scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/demo.sh: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for expected in [
        "==> stacks preview preview-pr --pr 123",
        "preview-pr-123: no changes (20 resources unchanged, 0 writes)",
        "verified nothing carrying the stack's label remains",
        "demo complete",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
}
