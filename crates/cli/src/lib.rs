//! # cli (in progress)
