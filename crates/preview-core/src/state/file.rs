//! Local-file state backend (in progress).
