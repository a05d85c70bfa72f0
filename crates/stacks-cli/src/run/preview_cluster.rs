//! The `preview-cluster` stack's commands, and the ways to use its kubeconfig.
//!
//! `preview`, `up`, `import`, `refresh` and `destroy` of `preview-cluster` run the
//! engine with the DigitalOcean provider only: no Kubernetes connection, no
//! kubeconfig. After `up` has the cluster running, [`record_access`] records
//! the outputs only a running cluster has (`clusterId`, `endpoint`,
//! `kubeContext`, `kubeconfigExpiresAt`, and `kubeconfig`, sealed with
//! PREVIEW_STATE_PASSPHRASE) under the stack's lock. The kubeconfig is fetched
//! again only when the recorded one belongs to another cluster or less than half
//! of its lifetime (`cluster.kubeconfigExpiry`) is left, so a no-op `up` writes
//! nothing: not to DigitalOcean, not to the state.
//!
//! Users of the cluster: `stacks kubeconfig preview-cluster` ([`kubeconfig_cmd`],
//! the only command that prints the secret) and `--kubeconfig-from
//! preview-cluster` ([`use_recorded_kubeconfig`]: the other stacks connect with
//! the sealed kubeconfig, written for the run to a 0600 temporary file).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use preview_core::ProviderName;
use preview_core::engine::{Engine, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::planner::ImportSelection;
use preview_core::provider::Provider;
use preview_core::render;
use preview_core::secret::SecretString;
use preview_core::state::crypto::{MIN_PASSPHRASE_CHARS, Sealer, passphrase_from_env};
use preview_core::state::{Output, StackState, StateBackend, under_lock};
use preview_digitalocean::{DEFAULT_API_URL, DEFAULT_CLUSTER_POLL, DigitalOceanProvider};
use serde_json::{Value, json};
use stacks::config::StackConfig;
use stacks::stack::preview_cluster::{NAME, outputs, runtime_outputs};
use stacks::{EnvSecrets, SecretSource, StackBuild};

use super::{
    Import, backend, build_stack, graph_of, interrupt_signal, nothing_to_destroy, outputs_json,
    outputs_text, plan_text, print_stdout, request,
};
use crate::cli::{ApplyArgs, Command, GlobalArgs, PlanFormat, StackArgs, StackName};
use crate::progress;

/// Environment variable: how often cluster state is polled (default 10s).
const POLL_ENV: &str = "PREVIEW_DIGITALOCEAN_POLL_INTERVAL";

/// Whether `command` runs the engine on `preview-cluster` (this module runs it).
pub(super) fn targets_cluster(command: &Command) -> bool {
    let stack = match command {
        Command::Preview { stack, .. }
        | Command::Up { stack, .. }
        | Command::Import { stack, .. }
        | Command::Refresh { stack } => stack.stack,
        Command::Destroy { stack, .. } => stack.stack,
        _ => return false,
    };
    stack == StackName::PreviewCluster
}

/// Whether `command` is about `preview-cluster` or its kubeconfig (then it
/// needs no Kubernetes connection, and `--kubeconfig-from` does not apply).
fn about_cluster(command: &Command) -> bool {
    match command {
        Command::Outputs { stack } => stack.stack == StackName::PreviewCluster,
        Command::Render { stack, .. } => stack.stack == StackName::PreviewCluster,
        Command::Kubeconfig { .. } => true,
        other => targets_cluster(other),
    }
}

/// Runs a command of `preview-cluster` (see [`targets_cluster`]).
pub(super) async fn run(g: &GlobalArgs, command: &Command) -> Result<ExitCode> {
    match command {
        Command::Preview { out: Some(_), .. } | Command::Up { plan: Some(_), .. } => bail!(
            "saved plans (preview --out, up --plan) are for the Kubernetes stacks; preview-cluster is planned and applied in one run"
        ),
        Command::Preview { stack, format, .. } => preview_cmd(g, stack, *format, None).await,
        Command::Up { stack, apply, .. } => up_cmd(g, stack, apply, Import::Nothing).await,
        Command::Import {
            stack,
            apply,
            resources,
        } => {
            if !resources.is_empty() {
                bail!(
                    "import preview-cluster adopts the stack's one cluster (tagging it); leave out --resource"
                );
            }
            up_cmd(g, stack, apply, Import::All).await
        }
        Command::Destroy {
            stack,
            apply,
            force_finalize: _,
            keep_state,
        } => destroy_cmd(g, &stack.to_args(), apply, *keep_state).await,
        Command::Refresh { stack } => refresh_cmd(g, stack).await,
        _ => bail!("this command does not run the preview-cluster stack"),
    }
}

/// The DigitalOcean provider: token from PREVIEW_DIGITALOCEAN_TOKEN (or `_FILE`),
/// API URL from PREVIEW_DIGITALOCEAN_API_URL, poll interval from
/// PREVIEW_DIGITALOCEAN_POLL_INTERVAL. Errors name the variable, never the token.
fn provider() -> Result<Arc<DigitalOceanProvider>> {
    let token = EnvSecrets
        .get(stacks::stack::DIGITALOCEAN_TOKEN)
        .ok_or_else(|| {
            anyhow!(
                "missing secret DIGITALOCEAN_TOKEN: {}",
                EnvSecrets.hint(stacks::stack::DIGITALOCEAN_TOKEN)
            )
        })?;
    let base = std::env::var("PREVIEW_DIGITALOCEAN_API_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    let poll = match std::env::var(POLL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(raw) => humantime::parse_duration(raw.trim())
            .map_err(|e| anyhow!("{POLL_ENV}={raw}: {e} (e.g. 10s)"))?,
        None => DEFAULT_CLUSTER_POLL,
    };
    let provider = DigitalOceanProvider::connect(&base, token)
        .context("PREVIEW_DIGITALOCEAN_API_URL")?
        .with_cluster_poll(poll);
    Ok(Arc::new(provider))
}

/// A built preview-cluster stack with its engine (DigitalOcean provider only).
struct Prepared {
    build: StackBuild,
    graph: preview_core::graph::DesiredGraph,
    backend: Arc<dyn StateBackend>,
    provider: Arc<DigitalOceanProvider>,
    /// `cluster.kubeconfigExpiry`.
    kubeconfig_expiry: Duration,
    engine: Engine,
    printer: tokio::task::JoinHandle<()>,
}

async fn prepare(
    g: &GlobalArgs,
    args: &StackArgs,
    apply: Option<&ApplyArgs>,
    import: Import,
) -> Result<Prepared> {
    let req = request(args)?;
    let backend = backend(g).await?;
    let (build, _, _) = build_stack(g, &req, backend.as_ref()).await?;
    let graph = graph_of(&build)?;
    let import = import.selection(&graph)?;
    let kubeconfig_expiry = StackConfig::load(&g.config_dir, req.kind)?
        .cluster
        .ok_or_else(|| anyhow!("{}: no `cluster:` section", g.config_dir.display()))?
        .kubeconfig_expiry;
    let provider = provider()?;
    let (engine, printer) = engine(g, backend.clone(), provider.clone(), apply, import);
    Ok(Prepared {
        build,
        graph,
        backend,
        provider,
        kubeconfig_expiry,
        engine,
        printer,
    })
}

fn engine(
    g: &GlobalArgs,
    backend: Arc<dyn StateBackend>,
    provider: Arc<DigitalOceanProvider>,
    apply: Option<&ApplyArgs>,
    import: ImportSelection,
) -> (Engine, tokio::task::JoinHandle<()>) {
    let (events, rx) = EventSink::channel();
    let printer = tokio::spawn(progress::print(rx, g.progress));
    let mut options = EngineOptions {
        lock_timeout: g.lock_timeout,
        ..EngineOptions::default()
    };
    if let Some(a) = apply {
        // Provisioning a DOKS cluster takes minutes: at least 20 of them.
        options.timeout = a.timeout.max(Duration::from_secs(20 * 60));
        options.concurrency = a.concurrency;
        options.force_conflicts = a.force_conflicts;
        options.wait = !a.no_wait;
    }
    options.plan.import = import;
    let providers = Providers::new().with(ProviderName::DIGITALOCEAN, provider);
    let engine = Engine::new(providers, backend, events, options).with_cancel(interrupt_signal());
    (engine, printer)
}

impl Prepared {
    /// Runs one engine operation, then lets the progress printer drain.
    async fn run<T>(
        self,
        op: impl AsyncFnOnce(
            &Engine,
            &preview_core::graph::DesiredGraph,
        ) -> Result<T, preview_core::engine::EngineError>,
    ) -> Result<(T, Self)> {
        match op(&self.engine, &self.graph).await {
            Ok(value) => Ok((value, self)),
            Err(error) => {
                self.finish().await;
                Err(error.into())
            }
        }
    }

    async fn finish(self) {
        drop(self.engine);
        let _ = self.printer.await;
    }
}

/// The state passphrase, required before anything is sent: `up` seals the
/// kubeconfig with it. An existing key is opened now, so a wrong passphrase
/// fails before the cluster is touched.
fn passphrase_for(previous: Option<&StackState>) -> Result<(SecretString, Option<Sealer>)> {
    let passphrase = passphrase_from_env()?.ok_or_else(|| {
        anyhow!(
            "missing PREVIEW_STATE_PASSPHRASE (or PREVIEW_STATE_PASSPHRASE_FILE): the cluster's kubeconfig is sealed in state with it (at least {MIN_PASSPHRASE_CHARS} characters, e.g. `openssl rand -base64 32`)"
        )
    })?;
    match previous.filter(|s| s.encryption.is_some()) {
        Some(state) => {
            let sealer = Sealer::open(state, &passphrase)?;
            Ok((passphrase, Some(sealer)))
        }
        None => {
            let chars = passphrase.expose().chars().count();
            if chars < MIN_PASSPHRASE_CHARS {
                bail!(
                    "PREVIEW_STATE_PASSPHRASE is too short ({chars} characters) to protect the kubeconfig; use at least {MIN_PASSPHRASE_CHARS}"
                );
            }
            Ok((passphrase, None))
        }
    }
}

async fn up_cmd(
    g: &GlobalArgs,
    args: &StackArgs,
    apply: &ApplyArgs,
    import: Import,
) -> Result<ExitCode> {
    let started = Instant::now();
    let prepared = prepare(g, args, Some(apply), import).await?;
    let previous = prepared.backend.read(&prepared.build.name).await?;
    let (passphrase, sealer) = passphrase_for(previous.as_ref())?;
    // The runtime outputs recorded last time stay until they are recorded anew.
    let mut recorded = prepared.build.outputs.clone();
    if let Some(state) = &previous {
        for name in runtime_outputs() {
            if let Some(value) = state.outputs.get(name) {
                recorded.insert(name.to_owned(), value.clone());
            }
        }
    }
    let (report, prepared) = prepared
        .run(async |engine, graph| engine.up(graph, recorded).await)
        .await?;
    let access = record_access(g, &prepared, passphrase, sealer).await;
    let (build, backend) = (prepared.build.clone(), prepared.backend.clone());
    prepared.finish().await;
    let access = access?;
    let shown = backend
        .read(&build.name)
        .await?
        .map(|s| s.outputs)
        .unwrap_or_default();
    if g.json {
        print_stdout(&serde_json::to_string_pretty(&json!({
            "stack": build.name,
            "plan": render::json(&report.plan),
            "outputs": outputs_json(&shown),
            "serial": report.serial.max(access.serial),
            "kubeconfigRecorded": access.recorded,
            "elapsedMs": started.elapsed().as_millis() as u64,
        }))?)?;
    } else {
        if report.plan.is_empty() && !access.recorded {
            print_stdout(&format!(
                "{}: no changes ({} resources unchanged).",
                build.name,
                report.plan.steps.len()
            ))?;
        } else if !report.plan.is_empty() {
            print_stdout(&plan_text(&report.plan))?;
        }
        print_stdout(&outputs_text(&shown))?;
        if access.recorded {
            eprintln!(
                "recorded the cluster's kubeconfig (sealed); export it with `stacks kubeconfig {}`",
                build.name
            );
        }
        eprintln!("done in {:.2}s", started.elapsed().as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}

/// What [`record_access`] did.
struct Access {
    recorded: bool,
    serial: u64,
}

/// After `up`: records the running cluster's id, endpoint, context and sealed
/// kubeconfig, unless the recorded ones are still good.
async fn record_access(
    g: &GlobalArgs,
    prepared: &Prepared,
    passphrase: SecretString,
    sealer: Option<Sealer>,
) -> Result<Access> {
    let stack = prepared.build.name.as_str();
    let resource = prepared
        .graph
        .resources()
        .next()
        .ok_or_else(|| anyhow!("stack {stack} has no cluster"))?;
    let id = &resource.id;
    let cluster = preview_digitalocean::DesiredCluster::from_resource(resource)
        .map_err(|m| anyhow!("{id}: {m}"))?;
    let live = prepared
        .provider
        .read(id)
        .await?
        .ok_or_else(|| anyhow!("{id} does not exist after `up`"))?;
    let text = |pointer: &str| {
        live.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (uid, state, endpoint) = (
        text("/metadata/uid"),
        text("/status/state"),
        text("/status/endpoint"),
    );
    let no_change = Access {
        recorded: false,
        serial: 0,
    };
    if state != "running" {
        eprintln!(
            "note: {id} is {state}; run `stacks up {stack}` again once it is running to record its kubeconfig"
        );
        return Ok(no_change);
    }
    let expiry = prepared.kubeconfig_expiry;
    let current = prepared
        .backend
        .read(stack)
        .await?
        .map(|s| s.outputs)
        .unwrap_or_default();
    let plain = |name: &str| match current.get(name) {
        Some(Output::Plain(Value::String(s))) => Some(s.clone()),
        _ => None,
    };
    let expires_at =
        plain(outputs::KUBECONFIG_EXPIRES_AT).and_then(|s| humantime::parse_rfc3339(&s).ok());
    let fresh = plain(outputs::CLUSTER_ID).as_deref() == Some(uid.as_str())
        && plain(outputs::ENDPOINT).as_deref() == Some(endpoint.as_str())
        && matches!(current.get(outputs::KUBECONFIG), Some(Output::Secret(_)))
        && expires_at
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .is_some_and(|left| left > expiry / 2);
    if fresh {
        return Ok(no_change);
    }
    let fetched_at = SystemTime::now();
    let kubeconfig = prepared
        .provider
        .cluster_kubeconfig(&cluster.name, Some(expiry))
        .await?;
    let context = current_context(&kubeconfig)
        .unwrap_or_else(|| format!("do-{}-{}", cluster.region, cluster.name));
    let expires = humantime::format_rfc3339_seconds(fetched_at + expiry).to_string();

    let written = async {
        let mut state = prepared
            .backend
            .read(stack)
            .await?
            .ok_or_else(|| anyhow!("stack {stack} has no state after `up`"))?;
        let sealer = match sealer {
            Some(s) if state.encryption.is_some() => s,
            _ => Sealer::open_or_init(&mut state, &passphrase)?,
        };
        let sealed = sealer.seal_keeping(
            outputs::KUBECONFIG,
            &kubeconfig,
            state.outputs.get(outputs::KUBECONFIG),
        )?;
        let before = state.clone();
        state.outputs.insert(outputs::KUBECONFIG.to_owned(), sealed);
        for (name, value) in [
            (outputs::CLUSTER_ID, uid),
            (outputs::ENDPOINT, endpoint),
            (outputs::KUBE_CONTEXT, context),
            (outputs::KUBECONFIG_EXPIRES_AT, expires),
        ] {
            state
                .outputs
                .insert(name.to_owned(), Output::Plain(Value::String(value)));
        }
        if state == before {
            return Ok::<_, anyhow::Error>(before.serial);
        }
        state.serial += 1;
        prepared
            .backend
            .write(&state)
            .await
            .with_context(|| format!("recording the kubeconfig of stack {stack}"))?;
        Ok(state.serial)
    };
    let serial = under_lock(prepared.backend.as_ref(), stack, g.lock_timeout, written).await?;
    Ok(Access {
        recorded: true,
        serial,
    })
}

/// The kubeconfig's `current-context` (errors never quote the document).
fn current_context(kubeconfig: &SecretString) -> Option<String> {
    let doc: Value = serde_yaml_ng::from_str(kubeconfig.expose()).ok()?;
    doc.get("current-context")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

async fn preview_cmd(
    g: &GlobalArgs,
    args: &StackArgs,
    format: PlanFormat,
    out: Option<&Path>,
) -> Result<ExitCode> {
    let (plan, prepared) = prepare(g, args, None, Import::Nothing)
        .await?
        .run(async |engine, graph| engine.preview(graph).await)
        .await?;
    prepared.finish().await;
    let text = match (format, g.json) {
        (PlanFormat::Json, _) | (_, true) => serde_json::to_string_pretty(&render::json(&plan))?,
        (PlanFormat::Markdown, _) => render::markdown(&plan, &render::MarkdownOptions::default()),
        (PlanFormat::Text, _) => plan_text(&plan),
    };
    if let Some(path) = out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

async fn refresh_cmd(g: &GlobalArgs, args: &StackArgs) -> Result<ExitCode> {
    let (drift, prepared) = prepare(g, args, None, Import::Nothing)
        .await?
        .run(async |engine, graph| engine.refresh(graph).await)
        .await?;
    let name = prepared.build.name.clone();
    prepared.finish().await;
    if g.json {
        print_stdout(&serde_json::to_string_pretty(&drift)?)?;
    } else if drift.is_empty() {
        print_stdout(&format!(
            "{name}: no drift; the cluster matches the recorded state."
        ))?;
    } else {
        let mut text = format!("{name}: {} resource(s) drifted:\n", drift.len());
        for d in &drift {
            text.push_str(&format!("  {} {}: {}\n", d.kind_symbol(), d.id, d.detail));
        }
        print_stdout(&text)?;
    }
    Ok(if drift.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

async fn destroy_cmd(
    g: &GlobalArgs,
    args: &StackArgs,
    apply: &ApplyArgs,
    keep_state: bool,
) -> Result<ExitCode> {
    let started = Instant::now();
    let name = request(args)?.instance_name()?;
    let backend = backend(g).await?;
    if backend.read(&name).await?.is_none() {
        return nothing_to_destroy(g, &name, backend.as_ref());
    }
    let provider = provider()?;
    let (mut engine, printer) = engine(g, backend, provider, Some(apply), ImportSelection::None);
    let mut options = engine.options().clone();
    options.keep_state = keep_state;
    engine = engine.with_options(options);
    let report = engine.destroy(&name).await;
    drop(engine);
    let _ = printer.await;
    let report = report?;
    if g.json {
        print_stdout(&serde_json::to_string_pretty(&json!({
            "stack": name,
            "plan": render::json(&report.plan),
            "verified": true,
            "stateRemoved": !keep_state,
            "elapsedMs": started.elapsed().as_millis() as u64,
        }))?)?;
    } else {
        print_stdout(&format!(
            "{name}: destroyed {} resources in {:.1}s; verified no cluster tagged for the stack remains; its recorded kubeconfig is gone.",
            report.plan.summary().delete,
            started.elapsed().as_secs_f64()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
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
            eprintln!(
                "wrote the kubeconfig of stack {stack} to {}",
                path.display()
            );
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
