//! Errors of the command handlers and their exit codes.

use crate::gate::GateError;
use crate::github::GithubError;
use crate::head::HeadError;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the operation failed (API error, unhealthy URL, gate timeout, moved PR
/// head, incomplete sweep).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: usage or configuration error; nothing was sent.
pub const EXIT_USAGE: u8 = 2;

/// A command failure. Displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// GitHub API.
    #[error(transparent)]
    Github(#[from] GithubError),
    /// Gate.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The PR head is not the built commit, or the PR is closed.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The sweep could not list the stacks, or left PRs unknown or destroys failed.
    #[error("{0}")]
    Sweep(String),
    /// Bad input discovered after parsing (unreadable file, missing flag combination).
    #[error("{0}")]
    Input(String),
    /// Health check failed.
    #[error("health check failed: {0}")]
    Unhealthy(String),
    /// Writing to stdout failed.
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

fn is_configuration(error: &GithubError) -> bool {
    matches!(
        error,
        GithubError::MissingToken | GithubError::BadToken | GithubError::BadApiUrl { .. }
    )
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Github(error)
            | Self::Gate(GateError::Github(error))
            | Self::Head(HeadError::Github(error))
                if is_configuration(error) =>
            {
                EXIT_USAGE
            }
            Self::Input(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}
