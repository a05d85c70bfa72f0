//! # github-fake (in progress)
