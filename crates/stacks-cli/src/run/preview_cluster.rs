//! What is particular to the `preview-cluster` stack in the binary, and the
//! ways to use its kubeconfig.
//!
//! `preview`, `up`, `import`, `refresh` and `destroy` of `preview-cluster` go
//! through the same path as every other stack (`run.rs`), with a provider set
//! that has no Kubernetes provider ([`stacks::uses_kubernetes`]): the
//! DigitalOcean provider alone, no kubeconfig. Once `up` has the cluster
//! running, the provider computes the outputs only a running cluster has
//! (`clusterId`, `endpoint`, `kubeContext`, `kubeconfigExpiresAt`, and
//! `kubeconfig`, which the engine seals with PREVIEW_STATE_PASSPHRASE), and the
//! engine records them with the stack's other outputs in its own state write,
//! under the stack's lock. The kubeconfig is fetched again only when the
//! recorded one belongs to another cluster or less than half of its lifetime
//! (`cluster.kubeconfigExpiry`) is left, so a no-op `up` writes nothing: not to
//! DigitalOcean, not to the state. This module keeps the stack's few rules of
//! its own ([`check_command`]: no saved plans, no `import --resource`) and the
//! words of its reports.
//!
//! Users of the cluster: `stacks kubeconfig preview-cluster` ([`kubeconfig_cmd`],
//! the only command that prints the secret) and `--kubeconfig-from
//! preview-cluster` ([`use_recorded_kubeconfig`]: the other stacks connect with
//! the sealed kubeconfig, written for the run to a 0600 temporary file).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use preview_core::engine::UpReport;
use preview_core::secret::SecretString;
use preview_core::state::crypto::{Sealer, passphrase_from_env};
use preview_core::state::{Output, StateBackend};
use serde_json::Value;
use stacks::stack::preview_cluster::{NAME, outputs};

use super::backend;
use crate::cli::{Command, GlobalArgs, StackName};

/// Whether `command` runs the engine on `preview-cluster`.
fn targets_cluster(command: &Command) -> bool {
    let stack = match command {
        Command::Preview { stack, .. }
        | Command::Up { stack, .. }
        | Command::Import { stack, .. }
        | Command::Refresh { stack } => &stack.stack,
        Command::Destroy { stack, .. } => &stack.stack,
        _ => return false,
    };
    stack.is(NAME)
}

/// Whether `command` is about `preview-cluster` or its kubeconfig (then it
/// needs no Kubernetes connection, and `--kubeconfig-from` does not apply).
fn about_cluster(command: &Command) -> bool {
    match command {
        Command::Outputs { stack } => stack.stack.is(NAME),
        Command::Render { stack, .. } => stack.stack.is(NAME),
        Command::Kubeconfig { .. } => true,
        other => targets_cluster(other),
    }
}

/// The commands `preview-cluster` refuses, before anything happens: saved
/// plans (it is planned and applied in one run) and `import --resource` (it
/// has one resource).
pub(super) fn check_command(command: &Command) -> Result<()> {
    if !targets_cluster(command) {
        return Ok(());
    }
    match command {
        Command::Preview { out: Some(_), .. } | Command::Up { plan: Some(_), .. } => bail!(
            "saved plans (preview --out, up --plan) are for the Kubernetes stacks; preview-cluster is planned and applied in one run"
        ),
        Command::Import { resources, .. } if !resources.is_empty() => bail!(
            "import preview-cluster adopts the stack's one cluster (tagging it); leave out --resource"
        ),
        _ => Ok(()),
    }
}

/// Whether plans of stack `stack` can be saved (`preview` shows a plan id).
pub(super) fn saves_plans(stack: &StackName) -> bool {
    !stack.is(NAME)
}

/// Whether this `up` recorded a fresh kubeconfig (`kubeconfigRecorded` of the
/// JSON report), for `preview-cluster`; `None` for the other stacks.
pub(super) fn kubeconfig_recorded(stack: &StackName, report: &UpReport) -> Option<bool> {
    stack
        .is(NAME)
        .then(|| report.computed.contains(outputs::KUBECONFIG))
}

/// The note after an `up` of `preview-cluster` that recorded a kubeconfig.
pub(super) fn recorded_note(name: &str) -> String {
    format!("recorded the cluster's kubeconfig (sealed); export it with `stacks kubeconfig {name}`")
}

/// What a verified destroy of `preview-cluster` says it checked (`None` for
/// the other stacks).
pub(super) fn destroyed_note(stack: &StackName) -> Option<&'static str> {
    stack.is(NAME).then_some(
        "verified no cluster tagged for the stack remains; its recorded kubeconfig is gone",
    )
}

/// What `refresh` of `preview-cluster` says when nothing drifted (`None` for
/// the other stacks).
pub(super) fn no_drift_note(stack: &StackName) -> Option<&'static str> {
    stack
        .is(NAME)
        .then_some("no drift; the cluster matches the recorded state.")
}

/// The kubeconfig sealed in `stack`'s state, and when its token expires.
async fn recorded_kubeconfig(
    backend: &dyn StateBackend,
    stack: &str,
) -> Result<(SecretString, Option<SystemTime>)> {
    let state = backend.read(stack).await?.ok_or_else(|| {
        anyhow!(
            "stack {stack} has no state in {}; run `stacks up {NAME}` first (with the same --backend)",
            backend.describe()
        )
    })?;
    let sealed = state.outputs.get(outputs::KUBECONFIG).ok_or_else(|| {
        anyhow!(
            "stack {stack} has no output {}; run `stacks up {NAME}` (it records the kubeconfig once the cluster is running)",
            outputs::KUBECONFIG
        )
    })?;
    let passphrase = passphrase_from_env()?.ok_or_else(|| {
        anyhow!(
            "set PREVIEW_STATE_PASSPHRASE (or PREVIEW_STATE_PASSPHRASE_FILE) to unseal output {} of stack {stack}",
            outputs::KUBECONFIG
        )
    })?;
    let kubeconfig = Sealer::open(&state, &passphrase)?.unseal(outputs::KUBECONFIG, sealed)?;
    let expires = match state.outputs.get(outputs::KUBECONFIG_EXPIRES_AT) {
        Some(Output::Plain(Value::String(s))) => humantime::parse_rfc3339(s).ok(),
        _ => None,
    };
    Ok((kubeconfig, expires))
}

fn warn_if_expired(stack: &str, expires: Option<SystemTime>) {
    if let Some(at) = expires
        && at <= SystemTime::now()
    {
        eprintln!(
            "warning: the kubeconfig recorded by stack {stack} expired at {}; run `stacks up {stack}` to record a fresh one",
            humantime::format_rfc3339_seconds(at)
        );
    }
}

/// `stacks kubeconfig [STACK] [-o FILE]`: the sealed kubeconfig, unsealed.
pub(super) async fn kubeconfig_cmd(
    g: &GlobalArgs,
    stack: &str,
    output: Option<&Path>,
) -> Result<ExitCode> {
    let backend = backend(g).await?;
    let (kubeconfig, expires) = recorded_kubeconfig(backend.as_ref(), stack).await?;
    warn_if_expired(stack, expires);
    match output {
        Some(path) => {
            write_private(path, &kubeconfig)?;
            crate::terminal::info(&format!(
                "wrote the kubeconfig of stack {stack} to {}",
                path.display()
            ));
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(kubeconfig.expose().as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `secret` to `path`, readable by its owner only.
fn write_private(path: &Path, secret: &SecretString) -> Result<()> {
    stacks::private_file::write_private(path, secret.expose().as_bytes())
        .with_context(|| format!("writing {} (owner only)", path.display()))
}

/// `--kubeconfig-from STACK`: writes the kubeconfig sealed in STACK's state to a
/// private temporary file and points `--kubeconfig` at it for this run (the file
/// is removed when the returned guard drops). The state is read with the
/// connection settings given before (`--kubeconfig` for a `kubernetes://`
/// backend). Ignored by the commands about `preview-cluster` itself, so it can
/// be set for a whole job (`PREVIEW_KUBECONFIG_FROM`).
pub(super) async fn use_recorded_kubeconfig(
    g: &mut GlobalArgs,
    command: &Command,
) -> Result<Option<tempfile::TempPath>> {
    if about_cluster(command) {
        return Ok(None);
    }
    let Some(stack) = g.kubeconfig_from.clone().filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let backend = backend(g).await?;
    let (kubeconfig, expires) = recorded_kubeconfig(backend.as_ref(), &stack)
        .await
        .with_context(|| format!("--kubeconfig-from {stack}"))?;
    warn_if_expired(&stack, expires);
    let file = tempfile::Builder::new()
        .prefix("preview-kubeconfig-")
        .tempfile()
        .context("--kubeconfig-from: creating a private temporary file")?;
    let path = file.into_temp_path();
    write_private(&path, &kubeconfig)?;
    g.kubeconfig = Some(path.to_path_buf());
    Ok(Some(path))
}
