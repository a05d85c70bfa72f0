//! The stack's state during a run ([`Recorder`]): what the run has recorded,
//! what the backend holds, and the group-committed writes between them (one in
//! flight at a time, in serial order), which tell the scheduler when a step's
//! pending record is durable so the step may start.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::state::{StackState, StateBackend, StateError};

/// The stack's state during a run, and the writes that make it durable.
///
/// Writes go out one at a time, in serial order, each with everything recorded
/// so far (a group commit): what is recorded while one write is in flight goes
/// into the next. [`Recorder::next_write`] and [`Recorder::is_written`] tell
/// when what was recorded has reached the backend (what lets a step start).
pub(super) struct Recorder {
    backend: Arc<dyn StateBackend>,
    /// The state as recorded in this run so far (ahead of the backend).
    pub(super) state: StackState,
    /// What the backend holds: the state as read, then each completed write.
    durable: StackState,
    /// The write in flight; resolves to the state it wrote.
    writing: Option<StateWrite>,
    /// Changed since the last write started ([`Recorder::touch`];
    /// [`Recorder::flush`] also compares with what the backend holds).
    dirty: bool,
    /// Writes started in this run.
    started: u64,
    /// Writes completed in this run.
    completed: u64,
}

/// A state write in flight, resolving to the state it wrote.
pub(super) type StateWrite = Pin<Box<dyn Future<Output = Result<StackState, StateError>> + Send>>;

impl Recorder {
    /// A recorder for `stored`, the state as read from `backend`.
    pub(super) fn new(backend: Arc<dyn StateBackend>, stored: StackState) -> Self {
        Recorder {
            backend,
            state: stored.clone(),
            durable: stored,
            writing: None,
            dirty: false,
            started: 0,
            completed: 0,
        }
    }

    /// Marks the state as changed, so that the next write goes out.
    pub(super) fn touch(&mut self) {
        self.dirty = true;
    }

    /// The number of the write that will carry everything recorded so far
    /// (after a [`Recorder::touch`]): a write in flight took its copy earlier.
    pub(super) fn next_write(&self) -> u64 {
        self.started + 1
    }

    /// Write number `n` has completed.
    pub(super) fn is_written(&self, n: u64) -> bool {
        self.completed >= n
    }

    pub(super) fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Starts writing everything recorded so far, under the next serial; does
    /// nothing while a write is in flight or when nothing changed.
    pub(super) fn start_write(&mut self) {
        if self.writing.is_some() || !self.dirty {
            return;
        }
        self.dirty = false;
        self.started += 1;
        let mut next = self.state.clone();
        next.serial = self.durable.serial + 1;
        let backend = self.backend.clone();
        self.writing = Some(Box::pin(async move {
            backend.write(&next).await?;
            Ok(next)
        }));
    }

    /// Waits for the write in flight, if any (cancel-safe: the write stays in
    /// flight when this future is dropped).
    pub(super) async fn written(&mut self) -> Result<(), StateError> {
        let Some(writing) = self.writing.as_mut() else {
            return Ok(());
        };
        let result = writing.await;
        self.writing = None;
        let next = result?;
        self.completed = self.started;
        self.state.serial = next.serial;
        self.durable = next;
        Ok(())
    }

    /// Waits for the write in flight, then writes what is left: whatever makes
    /// the state differ from what the backend holds (whoever changed it).
    pub(super) async fn flush(&mut self) -> Result<(), StateError> {
        self.written().await?;
        self.dirty = self.state.resources != self.durable.resources
            || self.state.outputs != self.durable.outputs
            || self.state.pending != self.durable.pending;
        self.start_write();
        self.written().await
    }
}
