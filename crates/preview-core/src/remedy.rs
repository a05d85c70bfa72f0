//! What a person can do next about an error, named by situation: the libraries
//! name no CLI flag, command or environment variable of the program that embeds
//! them; the program words the way out.
//!
//! An error that has a way out builds its message with [`suffix`] and a
//! [`Remedy`]; a program registers, once, how it words each remedy
//! ([`install`]; the `stacks` binary in its `hints.rs`, with its flags). Without
//! one (a library user, the libraries' own tests), messages end where the
//! remedy would start.
//!
//! ```
//! use preview_core::remedy::{Remedy, suffix};
//!
//! // No program registered a wording here: nothing is added.
//! assert_eq!(suffix("; ", &Remedy::PlanConflict), "");
//! ```

use std::sync::OnceLock;

/// A way out of an error, by situation (the program words it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy<'a> {
    /// An apply met fields other field managers own: take them over (a forced
    /// server-side apply).
    ApplyConflict,
    /// The plan met fields other field managers own: take them over, or stop
    /// the other manager.
    PlanConflict,
    /// Recorded objects the stack cannot prove it owns: forget their records
    /// once the rest is destroyed.
    ForgetRefusedRecords,
    /// The stored state is unreadable: remove it if the stack's resources are
    /// gone.
    RemoveUnreadableState,
    /// The stored state of `stack` is not authentic: re-authenticate it once,
    /// after reviewing it.
    Reauthenticate {
        /// The stack.
        stack: &'a str,
    },
    /// An authenticated state is written without the state passphrase: set it.
    SetStatePassphrase,
    /// Another run holds the lock of `stack`: wait longer, or break the lock
    /// of a dead run.
    Locked {
        /// The stack.
        stack: &'a str,
    },
    /// A saved plan file is incomplete: make a new one into `file`.
    RemakeTruncatedPlan {
        /// The file.
        file: &'a str,
    },
    /// A saved plan no longer matches: make, review and apply a new one.
    RemakeMovedPlan,
    /// No kubeconfig was found: say where it is.
    Kubeconfig,
    /// A cluster connection is needed and none was configured.
    ClusterConnection,
    /// The in-cluster database executor cannot work (no server namespace):
    /// use the direct one.
    DirectDatabaseExecutor,
    /// The in-cluster executor cannot drop a database whose record is gone:
    /// the direct one can drop and verify it.
    DirectDatabaseDrop,
    /// A state file to import is not authentic: import it trusting it, once
    /// reviewed.
    ImportReviewedFile,
    /// A state file to import is not newer than the stored state: replace it
    /// anyway.
    ForceImport,
    /// A state to delete still records resources: destroy them first, or
    /// forget them.
    DestroyOrForget,
    /// A state to delete cannot be read: delete it anyway.
    ForceDelete,
}

/// How a program words remedies; `None` for one it has nothing to say about.
pub type Renderer = fn(&Remedy<'_>) -> Option<String>;

static RENDERER: OnceLock<Renderer> = OnceLock::new();

/// Registers how this program words remedies (once per process; false when
/// one was registered before, which stays).
pub fn install(renderer: Renderer) -> bool {
    RENDERER.set(renderer).is_ok()
}

/// The program's wording of `remedy`, if it registered one.
pub fn text(remedy: &Remedy<'_>) -> Option<String> {
    RENDERER.get().and_then(|render| render(remedy))
}

/// `prefix` and the program's wording of `remedy`, or nothing.
pub fn suffix(prefix: &str, remedy: &Remedy<'_>) -> String {
    text(remedy).map_or_else(String::new, |t| format!("{prefix}{t}"))
}

/// ` (wording)`, or nothing.
pub fn in_parentheses(remedy: &Remedy<'_>) -> String {
    text(remedy).map_or_else(String::new, |t| format!(" ({t})"))
}
