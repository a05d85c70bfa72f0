//! The `stacks` binary (in progress).
fn main() {}
