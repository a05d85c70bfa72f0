//! Build script: the git commit for `--version` (see `build/git_commit.rs`).

include!("../../build/git_commit.rs");

fn main() {
    emit_git_commit();
}
