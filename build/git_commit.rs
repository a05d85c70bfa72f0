// The commit a binary is built from, for `--version`: shared by the build
// scripts of `stacks-cli` and `preview-github` (each `include!`s this file and
// calls `emit_git_commit()`).
//
// Sets the compile-time variable `GIT_COMMIT` to `git rev-parse --short=12 HEAD`,
// with `-dirty` when tracked files differ from it, or `PREVIEW_BUILD_COMMIT` when
// that is set (a build from a source archive), else `unknown` (no git checkout).
// The script runs again when HEAD or a branch moves; the dirty mark is as of its
// last run.

/// Prints the `cargo:` lines for `GIT_COMMIT` and when to recompute it.
fn emit_git_commit() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../build/git_commit.rs");
    println!("cargo:rerun-if-env-changed=PREVIEW_BUILD_COMMIT");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let commit = match std::env::var("PREVIEW_BUILD_COMMIT") {
        Ok(given) if !given.trim().is_empty() => given.trim().to_owned(),
        _ => match git(&["rev-parse", "--short=12", "HEAD"]) {
            Some(head) if !head.is_empty() => {
                let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|changes| !changes.is_empty());
                if dirty { format!("{head}-dirty") } else { head }
            }
            _ => "unknown".to_owned(),
        },
    };
    println!("cargo:rustc-env=GIT_COMMIT={commit}");
    // Only paths that exist: a missing one would rerun the script on every build.
    let watch = |path: std::path::PathBuf| {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    };
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watch(std::path::Path::new(&git_dir).join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        let common = std::path::Path::new(&common);
        watch(common.join("refs").join("heads"));
        watch(common.join("packed-refs"));
    }
}
