//! # testkit (in progress)
