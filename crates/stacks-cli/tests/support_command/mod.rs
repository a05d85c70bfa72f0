//! The `stacks` binary as the file-state tests run it (`cluster_dns`,
//! `preview_cluster`): the kubeconfig, a `file://` backend and the config dir as
//! flags, plain progress; and the check that a step succeeded.

use std::path::Path;
use std::process::{Command, Output};

/// `stacks --kubeconfig K --backend file://STATE --config-dir C --progress plain`,
/// to which the caller adds its arguments and environment.
pub fn stacks(kubeconfig: &Path, state: &Path, config_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stacks"));
    c.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--backend")
        .arg(format!("file://{}", state.display()))
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--progress")
        .arg("plain");
    c
}

/// Asserts that `stacks args` succeeded, showing its output when not.
pub fn assert_success(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "stacks {args:?} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
