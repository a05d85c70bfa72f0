//! Executes a parsed command: reads the environment (config, secrets, state,
//! cluster) and drives the engine. The only place in the binary with effects.
//!
//! Every stack goes through the same path, whatever program defines it (the
//! built-in ones or stacks of one's own, [`stacks::Stack`], looked up in the
//! run's [`Program`](crate::program::Program)): configured, built, planned and
//! applied by the engine with the providers it uses ([`Stack::providers`]: a
//! stack managed over the DigitalOcean API alone, `preview-cluster`, gets no
//! Kubernetes provider and no cluster connection) and those the program
//! registered,
//! its state written by the engine under the stack's lock, secret outputs
//! sealed by the engine ([`EngineOptions::sealer`], from the state passphrase).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use preview_core::engine::{Engine, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::plan::Plan;
use preview_core::planner::ImportSelection;
use preview_core::render;
use preview_core::saved::{self, PlanMeta, SavedPlan};
use preview_core::state::auth::Authenticator;
use preview_core::state::format::Codec;
use preview_core::state::{Output, StateBackend, tested};
use preview_core::{ProviderName, ResourceId};
use preview_envs::BackendOptions;
use preview_kubernetes::KubeProvider;
use serde_json::{Value, json};
use stacks::{
    AppSource, ConfigSource, EnvSecrets, PrNumber, References, Stack, StackBuild, StackInput,
    StackParams,
};

use crate::cli::{ApplyArgs, Cli, Command, GlobalArgs, PlanFormat, StackArgs, StateCommand};
use crate::progress;
use crate::terminal::{self, info};

mod preview_cluster;
mod promote;

/// Runs the command; the exit code says whether it succeeded.
pub async fn run(mut cli: Cli) -> Result<ExitCode> {
    preview_cluster::check_command(&cli.command)?;
    if let Command::Completions { shell } = &cli.command {
        return completions(&cli.global.program, *shell);
    }
    // Removed when the run ends.
    let _kubeconfig =
        preview_cluster::use_recorded_kubeconfig(&mut cli.global, &cli.command).await?;
    let g = &cli.global;
    match &cli.command {
        Command::Render {
            stack,
            dir,
            include_secrets,
        } => render_cmd(g, stack, dir.as_deref(), *include_secrets).await,
        Command::Preview {
            stack,
            format,
            out,
            detailed_exitcode,
        } => {
            let save = out.as_deref().map_or(Save::Nothing, Save::Plan);
            let outcome = preview_cmd(g, stack, *format, save, Vec::new()).await?;
            Ok(outcome.exit_code(*detailed_exitcode))
        }
        Command::Up {
            stack,
            apply,
            commit,
            plan,
        } => {
            // The file is checked before anything else happens.
            let saved = plan.as_deref().map(read_saved_plan).transpose()?;
            let extras = UpExtras {
                commit: commit_of(g, stack, commit.as_deref())?,
                record_tested: true,
                saved,
                ..UpExtras::default()
            };
            up_cmd(g, stack, apply, Import::Nothing, &extras).await
        }
        Command::Import {
            stack,
            apply,
            resources,
        } => {
            let selection = if resources.is_empty() {
                Import::All
            } else {
                Import::Only(
                    resources
                        .iter()
                        .map(|r| ResourceRef::parse(r))
                        .collect::<Result<_>>()?,
                )
            };
            up_cmd(g, stack, apply, selection, &UpExtras::default()).await
        }
        Command::Destroy {
            stack,
            apply,
            force_finalize,
            keep_state,
        } => destroy_cmd(g, &stack.to_args(), apply, *force_finalize, *keep_state).await,
        Command::Refresh { stack } => refresh_cmd(g, stack).await,
        Command::State(cmd) => state_cmd(g, cmd).await,
        Command::Promote {
            source,
            untested,
            records,
            preview,
            format,
            out,
            apply,
        } => {
            let options = promote::Options {
                untested: *untested,
                // An unset CI secret arrives as an empty variable.
                records: records.as_deref().filter(|r| !r.trim().is_empty()),
                preview: preview.then_some((*format, out.as_deref())),
            };
            promote::run(g, source, &options, apply).await
        }
        Command::Outputs { stack } => outputs_cmd(g, &stack.to_args()).await,
        Command::Completions { shell } => completions(&g.program, *shell),
        Command::Kubeconfig { stack, output } => {
            preview_cluster::kubeconfig_cmd(g, stack, output.as_deref()).await
        }
    }
}

/// `stacks completions SHELL`: the completion script on stdout.
fn completions(program: &crate::program::Program, shell: clap_complete::Shell) -> Result<ExitCode> {
    // Generated into memory: clap_complete panics when a write fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut program.command(), program.name(), &mut script);
    print_stdout(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

/// Whether a plan has changes, for `preview --detailed-exitcode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PlanOutcome {
    /// Nothing to do.
    NoChanges,
    /// `up` would change something.
    Changes,
}

impl PlanOutcome {
    /// Exit 0 without `detailed`; with it, 0 for no changes and 2 for changes
    /// (errors exit 1).
    pub(super) fn exit_code(self, detailed: bool) -> ExitCode {
        match (detailed, self) {
            (true, PlanOutcome::Changes) => ExitCode::from(2),
            _ => ExitCode::SUCCESS,
        }
    }
}

/// A stack and its parameters for this run.
#[derive(Clone)]
struct Request {
    stack: Arc<dyn Stack>,
    params: StackParams,
}

impl Request {
    /// The state name of the stack instance ([`Stack::instance_name`]).
    fn instance_name(&self) -> Result<String, stacks::StackError> {
        self.stack.instance_name(self.params.pr.as_ref())
    }
}

/// Parses and checks the stack parameters (no IO).
fn request(g: &GlobalArgs, args: &StackArgs) -> Result<Request> {
    let pr = args
        .pr
        .as_deref()
        .map(PrNumber::parse)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let stack = g.program.stack(&args.stack)?;
    if pr.is_some() && !stack.takes_pr() {
        let per_pr = g.program.per_pr_names();
        if per_pr.is_empty() {
            bail!(
                "--pr: no stack of {} takes a pull-request number",
                g.program.name()
            );
        }
        bail!("--pr applies only to the {} stack", per_pr.join(", "));
    }
    let mut images = stacks::params::image_flags(&args.images).map_err(|e| anyhow!(e))?;
    // `--image web=REF` wins over its alias `--web-image REF`.
    for (key, alias) in [("web", &args.web_image), ("api", &args.api_image)] {
        if let Some(image) = alias {
            images
                .entry(key.to_owned())
                .or_insert_with(|| image.clone());
        }
    }
    Ok(Request {
        stack,
        params: StackParams {
            pr,
            images,
            generated_password: None,
        },
    })
}

/// How this run reads and writes state documents: authenticated with the state
/// passphrase when `PREVIEW_STATE_PASSPHRASE` (or `…_FILE`) is set, else plain
/// (checksummed only: forgery protection needs the passphrase).
fn state_codec() -> Result<Codec> {
    Ok(match preview_core::state::crypto::passphrase_from_env()? {
        Some(passphrase) => Codec::authenticated(Arc::new(Authenticator::new(passphrase))),
        None => Codec::plain(),
    })
}

/// Opens the state backend named by `--backend` with [`state_codec`].
async fn backend(g: &GlobalArgs) -> Result<Arc<dyn StateBackend>> {
    backend_with(g, state_codec()?).await
}

/// Opens the backend at `url` (e.g. `promote --records`) with [`state_codec`].
async fn backend_at(g: &GlobalArgs, url: &str) -> Result<Arc<dyn StateBackend>> {
    backend_at_with(g, url, state_codec()?).await
}

/// Opens the state backend named by `--backend`, reading and writing through
/// `codec`.
async fn backend_with(g: &GlobalArgs, codec: Codec) -> Result<Arc<dyn StateBackend>> {
    backend_at_with(g, &g.backend, codec).await
}

/// Opens the backend at `url` through `codec`. A `kubernetes://` backend gets
/// its own client, so state and lease traffic is not counted as the engine's.
async fn backend_at_with(g: &GlobalArgs, url: &str, codec: Codec) -> Result<Arc<dyn StateBackend>> {
    let client = if url.starts_with("kubernetes://") {
        Some(connect(g).await?.client().clone())
    } else {
        None
    };
    let options = BackendOptions {
        codec,
        ..BackendOptions::default()
    };
    Ok(preview_envs::open_backend_with(url, client.as_ref(), &options).await?)
}

async fn load_references(backend: &dyn StateBackend, stack: &dyn Stack) -> Result<References> {
    let mut refs = References::new();
    for name in stack.references() {
        if let Some(state) = backend
            .read(&name)
            .await
            .with_context(|| format!("reading outputs of stack {name}"))?
            && !state.outputs.is_empty()
        {
            refs.insert(name, state.outputs);
        }
    }
    Ok(refs)
}

/// A stack built from its configuration, with what its providers are wired
/// with.
struct Built {
    build: StackBuild,
    /// The namespace its database Jobs may run in
    /// ([`stacks::ProviderSettings::database_namespace`]).
    database_namespace: Option<String>,
    /// The configuration's [fingerprint](stacks::Settings::fingerprint).
    config_hash: String,
    /// `cluster.kubeconfigExpiry` (a stack with a DOKS cluster).
    kubeconfig_expiry: Option<Duration>,
}

/// The stack built from its configuration and the referenced stacks' outputs.
async fn build_stack(g: &GlobalArgs, req: &Request, backend: &dyn StateBackend) -> Result<Built> {
    let settings = req.stack.configure(&config_source(g, true))?;
    let refs = load_references(backend, req.stack.as_ref()).await?;
    let wiring = req.stack.provider_settings(Some(&settings), &refs);
    let instance = req.instance_name()?;
    let input = StackInput {
        instance: &instance,
        params: &req.params,
        settings: &settings,
        references: &refs,
        secrets: &EnvSecrets,
    };
    Ok(Built {
        build: req.stack.build(&input)?,
        database_namespace: wiring.database_namespace,
        config_hash: settings.fingerprint().to_owned(),
        kubeconfig_expiry: wiring.kubeconfig_expiry,
    })
}

/// [`stacks::ProviderSettings::database_namespace`] for `destroy`, which builds
/// nothing: from the configuration when it loads, and the referenced stacks'
/// outputs.
async fn database_namespace_for(
    g: &GlobalArgs,
    stack: &dyn Stack,
    backend: &dyn StateBackend,
) -> Result<Option<String>> {
    let settings = stack
        .configure(&config_source(g, false))
        .inspect_err(|e| tracing::debug!(error = %e, "no configuration for the database namespace"))
        .ok();
    let refs = load_references(backend, stack).await?;
    Ok(stack
        .provider_settings(settings.as_ref(), &refs)
        .database_namespace)
}

/// Where the stack's configuration comes from: `--config-dir`, and, when the
/// run builds the stack (`with_app`), the app spec (`--app`, else
/// `preview-app.yaml` in the working directory) and `--manifests`. `destroy`
/// builds nothing, so it reads neither (nor stdin).
fn config_source(g: &GlobalArgs, with_app: bool) -> ConfigSource<'_> {
    ConfigSource {
        dir: &g.config_dir,
        app: with_app.then(|| AppSource {
            explicit: g.app.as_deref(),
            work_dir: Path::new("."),
            manifests: g.manifests.as_deref(),
        }),
    }
}

fn graph_of(build: &StackBuild) -> Result<DesiredGraph> {
    Ok(DesiredGraph::new(&build.name, build.resources.clone())?)
}

async fn connect(g: &GlobalArgs) -> Result<KubeProvider> {
    KubeProvider::connect(g.kubeconfig.as_deref(), g.context.as_deref())
        .await
        .context("connecting to the cluster (set --kubeconfig or KUBECONFIG)")
}

/// The cluster connection of a stack that uses one ([`Stack::providers`]).
async fn connect_for(g: &GlobalArgs, stack: &dyn Stack) -> Result<Option<KubeProvider>> {
    if stack.providers().contains(&ProviderName::KUBERNETES) {
        Ok(Some(connect(g).await?))
    } else {
        Ok(None)
    }
}

/// What the providers of a run are wired with.
#[derive(Default)]
struct Wiring<'a> {
    /// The cluster; `None` for a stack managed without one (no Kubernetes or
    /// PostgreSQL provider then).
    kube: Option<KubeProvider>,
    /// The built stack (`None` for `destroy`, which builds nothing).
    build: Option<&'a StackBuild>,
    /// The database server's namespace, for the in-cluster database Jobs.
    database_namespace: Option<String>,
    /// The lifetime of the kubeconfigs the DigitalOcean provider fetches.
    kubeconfig_expiry: Option<Duration>,
    /// The built-in providers the stack uses ([`Stack::providers`]).
    providers: Vec<ProviderName>,
}

fn engine(
    wiring: Wiring<'_>,
    backend: Arc<dyn StateBackend>,
    g: &GlobalArgs,
    apply: Option<&ApplyArgs>,
    import: ImportSelection,
) -> Result<(Engine, tokio::task::JoinHandle<()>)> {
    let Wiring {
        kube,
        build,
        database_namespace,
        kubeconfig_expiry,
        providers: used,
    } = wiring;
    let digitalocean = if used.contains(&ProviderName::DIGITALOCEAN) {
        digitalocean_provider(kubeconfig_expiry)?
    } else {
        None
    };
    let (events, rx) = EventSink::channel();
    let printer = tokio::spawn(progress::print(rx, g.progress));
    let mut options = EngineOptions {
        lock_timeout: g.lock_timeout,
        // Secret outputs (a cluster's kubeconfig) are sealed with the state
        // passphrase; opened only for a stack that has such a resource.
        sealer: preview_core::state::crypto::passphrase_from_env()?
            .map(preview_core::state::crypto::StackSealer::new),
        ..EngineOptions::default()
    };
    if let Some(a) = apply {
        options.timeout = a.timeout;
        options.concurrency = a.concurrency;
        options.force_conflicts = a.force_conflicts;
        options.wait = !a.no_wait;
    }
    if let Some(b) = build {
        options.policy = b.policy.clone();
    }
    options.plan.import = import;
    let mut providers = Providers::new();
    if let Some(kube) = kube {
        let kube = Arc::new(kube);
        let has_database = build.is_some_and(|b| {
            b.resources
                .iter()
                .any(|r| r.id.provider == ProviderName::POSTGRES)
        });
        providers = providers.with(ProviderName::KUBERNETES, kube.clone());
        if used.contains(&ProviderName::POSTGRES) {
            providers = providers.with(
                ProviderName::POSTGRES,
                postgres_provider(has_database, &kube, &events, database_namespace),
            );
        }
    }
    // The program's own providers (a name of a built-in one replaces it).
    for (name, provider) in g.program.providers() {
        providers = providers.with(name.clone(), provider.clone());
    }
    let providers = providers
        .with_optional(ProviderName::DIGITALOCEAN, digitalocean)
        .explain_missing(ProviderName::DIGITALOCEAN, DIGITALOCEAN_MISSING);
    let engine = Engine::new(providers, backend, events, options).with_cancel(interrupt_signal());
    Ok((engine, printer))
}

/// The engine's error as the binary reports it: a missing sealer is the
/// missing state passphrase.
fn engine_error(error: preview_core::engine::EngineError) -> anyhow::Error {
    match error {
        preview_core::engine::EngineError::NoSealer(id) => anyhow!(
            "missing PREVIEW_STATE_PASSPHRASE (or PREVIEW_STATE_PASSPHRASE_FILE): the secret outputs of {id} (a cluster's kubeconfig) are sealed in state with it (at least {} characters, e.g. `openssl rand -base64 32`)",
            preview_core::state::crypto::MIN_PASSPHRASE_CHARS
        ),
        other => other.into(),
    }
}

/// How to configure the DigitalOcean provider, when a stack needs it and it is missing.
pub(crate) const DIGITALOCEAN_MISSING: &str = "no DigitalOcean API token is set: set PREVIEW_DIGITALOCEAN_TOKEN (or PREVIEW_DIGITALOCEAN_TOKEN_FILE)";

/// A flag that turns true on SIGTERM or Ctrl-C (SIGINT). The engine then stops,
/// keeps the state it has written, releases the stack lock and reports
/// `interrupted`; the process exits non-zero.
fn interrupt_signal() -> tokio::sync::watch::Receiver<bool> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("interrupted: saving state and releasing the lock …");
        let _ = tx.send(true);
    });
    rx
}

/// The database executor. With `PREVIEW_POSTGRES_URL` (or `…_FILE`) set, the
/// engine reaches the PostgreSQL server directly (local clusters, managed
/// databases, tests); when `warm` (the stack has a database) the connection
/// starts at once, overlapping the server's start-up with the rest of the
/// preparation. Otherwise databases are created and dropped by Jobs inside the
/// cluster (the spec's NFR-017: CI never needs a route to a remote database),
/// in `namespace`, the database server's, only.
fn postgres_provider(
    warm: bool,
    kube: &Arc<KubeProvider>,
    events: &EventSink,
    namespace: Option<String>,
) -> Arc<dyn preview_core::provider::Provider> {
    use stacks::SecretSource;
    match EnvSecrets.get("POSTGRES_URL") {
        Some(url) => {
            let provider = preview_postgres::PostgresProvider::new(url);
            if warm {
                provider.warm_up();
            }
            Arc::new(provider)
        }
        None => Arc::new(preview_postgres::in_cluster::InClusterProvider::new(
            kube.clone(),
            kube.client().clone(),
            events.clone(),
            namespace,
        )),
    }
}

fn plan_text(plan: &Plan) -> String {
    render::text(
        plan,
        &render::TextOptions {
            color: terminal::stdout_colors(),
            show_unchanged: false,
        },
    )
}
/// `destroy` of a stack without state: already destroyed (a verified destroy
/// removes the state) or never deployed. Nothing to do, so a re-run of a
/// cleanup succeeds; the message says where the state was looked for.
fn nothing_to_destroy(g: &GlobalArgs, name: &str, backend: &dyn StateBackend) -> Result<ExitCode> {
    let message = format!(
        "stack {name} has no state in {}: nothing to destroy",
        backend.describe()
    );
    if g.json {
        print_stdout(&serde_json::to_string_pretty(&json!({
            "stack": name,
            "nothingToDestroy": true,
            "message": message,
        }))?)?;
    } else {
        print_stdout(&message)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A command's result on stdout ([`terminal::print_stdout`]: a closed pipe ends it quietly).
fn print_stdout(text: &str) -> Result<()> {
    Ok(terminal::print_stdout(text)?)
}

/// A stack built, graphed and connected, with its engine and progress printer.
struct Prepared {
    build: StackBuild,
    /// What a saved plan records of the run (kind, PR, config hash, images).
    meta: PlanMeta,
    backend: Arc<dyn StateBackend>,
    graph: DesiredGraph,
    engine: Engine,
    printer: tokio::task::JoinHandle<()>,
    /// The cluster's request counts (`None`: the stack uses no cluster).
    counts: Option<preview_kubernetes::RequestCounts>,
    /// The cluster connection, for failure digests (`None`: no cluster).
    kube: Option<KubeProvider>,
    json: bool,
}

/// Placeholder for the preview's database role password where nothing is
/// applied (`render`): the real one exists only in state (sealed) and in the
/// applied Secret.
const ROLE_PASSWORD_PLACEHOLDER: &str = "generated-by-stacks-up";

/// The password of `preview-pr`'s database role for this run, and how it is
/// kept: unsealed from the stack's state when recorded, else freshly generated
/// (random, [`preview_core::schema::database_role::generate_password`]); never from a
/// flag or the environment. Needs the state passphrase, which seals it.
struct RolePassword {
    password: preview_core::secret::SecretString,
    /// The output to record (the previous sealed value when unchanged, so a
    /// no-op `up` writes nothing).
    sealed: Output,
    /// The stack's new data key, when its state had none.
    new_key: Option<preview_core::state::crypto::Encryption>,
}

/// The preview's database role password: unsealed from its state, else from
/// `first` (a saved plan made before the first state, which `up --plan`
/// applies), else newly generated and sealed with a new data key.
async fn role_password(
    backend: &dyn StateBackend,
    req: &Request,
    output: &str,
    first: Option<&saved::FirstSecrets>,
) -> Result<RolePassword> {
    use preview_core::state::StackState;
    use preview_core::state::crypto::{Sealer, passphrase_from_env};
    let name = req.instance_name()?;
    let passphrase = passphrase_from_env()?.ok_or_else(|| {
        anyhow!(
            "missing PREVIEW_STATE_PASSPHRASE (or PREVIEW_STATE_PASSPHRASE_FILE): {name} generates the password of its database role and keeps it sealed in state with it (at least {} characters, e.g. `openssl rand -base64 32`)",
            preview_core::state::crypto::MIN_PASSPHRASE_CHARS
        )
    })?;
    let mut state = backend
        .read(&name)
        .await?
        .unwrap_or_else(|| StackState::new(&name));
    let had_key = state.encryption.is_some();
    if let (false, Some(first)) = (had_key, first) {
        state.encryption = Some(first.encryption.clone());
        if let Some(sealed) = first.outputs.get(output) {
            state.outputs.insert(output.to_owned(), sealed.clone());
        }
    }
    let sealer = Sealer::open_or_init(&mut state, &passphrase)?;
    let previous = state.outputs.get(output);
    let password = match previous {
        Some(sealed) => sealer.unseal(output, sealed)?,
        None => preview_core::schema::database_role::generate_password(),
    };
    let sealed = sealer.seal_keeping(output, &password, previous)?;
    Ok(RolePassword {
        password,
        sealed,
        new_key: if had_key { None } else { state.encryption },
    })
}

async fn prepare(
    g: &GlobalArgs,
    args: &StackArgs,
    apply: Option<&ApplyArgs>,
    import: Import,
    notes: Vec<String>,
    first: Option<&saved::FirstSecrets>,
) -> Result<Prepared> {
    let mut req = request(g, args)?;
    let backend = backend(g).await?;
    let password_output = req.stack.generated_password().map(str::to_owned);
    let role = if let Some(output) = &password_output {
        match role_password(backend.as_ref(), &req, output, first).await {
            Ok(role) => Some(role),
            Err(e) => {
                // The stack's own input checks are reported first.
                let mut probe = req.clone();
                probe.params.generated_password = Some(preview_core::secret::SecretString::new(
                    ROLE_PASSWORD_PLACEHOLDER,
                ));
                build_stack(g, &probe, backend.as_ref()).await?;
                return Err(e);
            }
        }
    } else {
        None
    };
    req.params.generated_password = role.as_ref().map(|r| r.password.clone());
    let Built {
        mut build,
        database_namespace,
        config_hash,
        kubeconfig_expiry,
    } = build_stack(g, &req, backend.as_ref()).await?;
    if let (Some(role), Some(output)) = (&role, &password_output) {
        build.outputs.insert(output.clone(), role.sealed.clone());
    }
    let graph = graph_of(&build)?;
    tracing::debug!(resources = graph.order().len(), "stack built");
    let mut meta = plan_meta(&req, config_hash, &graph)?;
    // A first plan generated the role's password: a saved plan carries it,
    // sealed, for `up --plan` to apply the same one.
    if let (
        Some(RolePassword {
            sealed,
            new_key: Some(key),
            ..
        }),
        Some(output),
    ) = (&role, &password_output)
    {
        meta.first_secrets = Some(saved::FirstSecrets {
            encryption: key.clone(),
            outputs: BTreeMap::from([(output.clone(), sealed.clone())]),
        });
    }
    let import = import.selection(&graph)?;
    let kube = connect_for(g, req.stack.as_ref()).await?;
    let counts = kube.as_ref().map(|k| k.counts().clone());
    let wiring = Wiring {
        kube: kube.clone(),
        build: Some(&build),
        database_namespace,
        kubeconfig_expiry,
        providers: req.stack.providers(),
    };
    let (engine, printer) = engine(wiring, backend.clone(), g, apply, import)?;
    let mut options = engine.options().clone();
    options.plan.notes = build.notes.iter().cloned().chain(notes).collect();
    let engine = engine
        .with_options(options)
        .with_data_key(role.and_then(|r| r.new_key));
    tracing::debug!("connected");
    Ok(Prepared {
        build,
        meta,
        backend,
        graph,
        engine,
        printer,
        counts,
        kube,
        json: g.json,
    })
}

impl Prepared {
    /// Runs one engine operation, then lets the progress printer drain.
    async fn run<T>(
        self,
        op: impl AsyncFnOnce(&Engine, &DesiredGraph) -> Result<T, preview_core::engine::EngineError>,
    ) -> Result<(
        T,
        StackBuild,
        Option<preview_kubernetes::counting::CountSnapshot>,
    )> {
        let result = op(&self.engine, &self.graph).await;
        drop(self.engine);
        let _ = self.printer.await;
        if let (Err(e), Some(kube)) = (&result, &self.kube) {
            crate::step_failures::report(kube, &self.build, e, self.json).await;
        }
        let counts = self.counts.map(|c| c.snapshot());
        Ok((result.map_err(engine_error)?, self.build, counts))
    }
}

async fn render_cmd(
    g: &GlobalArgs,
    args: &StackArgs,
    dir: Option<&Path>,
    include_secrets: bool,
) -> Result<ExitCode> {
    use stacks::redact;
    let mut req = request(g, args)?;
    if req.stack.generated_password().is_some() {
        // Render never unseals the role's password.
        req.params.generated_password = Some(preview_core::secret::SecretString::new(
            ROLE_PASSWORD_PLACEHOLDER,
        ));
        info(&format!(
            "note: DB_PASSWORD of {} is the placeholder {ROLE_PASSWORD_PLACEHOLDER:?} here; `up` generates the database role's password and keeps it only in the applied Secret and, sealed, in state",
            req.instance_name()?
        ));
    }
    let backend = backend(g).await?;
    let build = build_stack(g, &req, backend.as_ref()).await?.build;
    let graph = graph_of(&build)?;
    for note in &build.notes {
        info(&format!("note: {note}"));
    }
    let manifests: Vec<(&preview_core::Resource, redact::Rendered)> = graph
        .resources()
        .filter(|r| r.id.provider == ProviderName::KUBERNETES)
        .map(|r| (r, redact::render(r, include_secrets)))
        .collect();
    for other in graph
        .resources()
        .filter(|r| r.id.provider != ProviderName::KUBERNETES)
    {
        info(&format!(
            "note: {} is not a Kubernetes object; `up` manages it through its provider",
            other.id
        ));
    }
    let with_secrets: Vec<String> = manifests
        .iter()
        .filter(|(_, rendered)| rendered.holds_secrets)
        .map(|(r, _)| r.id.to_string())
        .collect();
    if !with_secrets.is_empty() {
        if include_secrets {
            eprintln!(
                "warning: --include-secrets: the output holds the secret values of {}; do not commit or share it",
                with_secrets.join(", ")
            );
        } else {
            info(&format!(
                "note: secret values of {} are shown as {:?}; pass --include-secrets to include them",
                with_secrets.join(", "),
                redact::REDACTED
            ));
        }
    }
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (i, (res, rendered)) in manifests.iter().enumerate() {
                let file = dir.join(format!("{:03}-{}.yaml", i + 1, file_stem(&res.id)));
                let text = serde_yaml_ng::to_string(&rendered.body)?;
                let private = include_secrets && rendered.holds_secrets;
                write_manifest(&file, &text, private)
                    .with_context(|| format!("writing {}", file.display()))?;
            }
            info(&format!(
                "wrote {} manifests to {}",
                manifests.len(),
                dir.display()
            ));
        }
        None => {
            let mut text = String::new();
            for (_, rendered) in &manifests {
                text.push_str("---\n");
                text.push_str(&serde_yaml_ng::to_string(&rendered.body)?);
            }
            print_stdout(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes one rendered manifest; `private` (it holds secret values) makes the
/// file readable by its owner only (mode 0600, also when it existed before),
/// before any byte is written.
fn write_manifest(file: &Path, text: &str, private: bool) -> std::io::Result<()> {
    if private {
        stacks::private_file::write_private(file, text.as_bytes())
    } else {
        std::fs::write(file, text)
    }
}

fn file_stem(id: &ResourceId) -> String {
    let mut s = id.kind.to_lowercase();
    if let Some(ns) = &id.namespace {
        s.push('-');
        s.push_str(ns);
    }
    s.push('-');
    s.push_str(&id.name);
    s.replace(['/', ':'], "_")
}

/// What `preview` writes to a file besides stdout.
pub(super) enum Save<'a> {
    /// Nothing.
    Nothing,
    /// The rendering, in its format (`promote --preview --out`).
    Rendering(&'a Path),
    /// The saved plan (`preview --out`), for `up --plan`.
    Plan(&'a Path),
}

/// What a saved plan records of this run besides the engine's basis.
fn plan_meta(req: &Request, config_hash: String, graph: &DesiredGraph) -> Result<PlanMeta> {
    let pr = req
        .params
        .pr
        .as_ref()
        .map(|pr| {
            pr.as_str()
                .parse::<u64>()
                .map_err(|_| anyhow!("--pr {pr}: too large a number"))
        })
        .transpose()?;
    Ok(PlanMeta {
        kind: req.stack.name().to_owned(),
        pr,
        config_hash,
        images: saved::images_of(graph),
        first_secrets: None,
    })
}

async fn preview_cmd(
    g: &GlobalArgs,
    args: &StackArgs,
    format: PlanFormat,
    save: Save<'_>,
    notes: Vec<String>,
) -> Result<PlanOutcome> {
    let prepared = prepare(g, args, None, Import::Nothing, notes, None).await?;
    let meta = prepared.meta.clone();
    let ((plan, basis), build, _) = prepared
        .run(async |engine, graph| engine.preview_with_basis(graph).await)
        .await?;
    let saved = SavedPlan::new(&build.name, meta, basis, plan);
    let plan = &saved.plan;
    // The id names the plan a reviewer saw; a rendering for promote has none,
    // nor has a plan of a stack that saves none.
    let id = (preview_cluster::saves_plans(&args.stack) && !matches!(save, Save::Rendering(_)))
        .then(|| saved.plan_id().to_owned());
    let text = match (format, g.json) {
        (PlanFormat::Json, _) | (_, true) => {
            let mut doc = render::json(plan);
            if let Some(id) = &id {
                doc["planId"] = json!(id);
            }
            serde_json::to_string_pretty(&doc)?
        }
        (PlanFormat::Markdown, _) => {
            let mut text = render::markdown(plan, &render::MarkdownOptions::default());
            if let Some(id) = &id {
                text.push_str(&format!("\nPlan id: `{id}`\n"));
            }
            text
        }
        (PlanFormat::Text, _) => {
            let mut text = plan_text(plan);
            if let Some(id) = &id {
                text.push_str(&format!("Plan id: {id}\n"));
            }
            text
        }
    };
    match save {
        Save::Nothing => {}
        Save::Rendering(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
        }
        Save::Plan(path) => {
            std::fs::write(path, saved.to_json())
                .with_context(|| format!("writing the saved plan {}", path.display()))?;
            info(&format!(
                "saved plan {} to {} (apply exactly it with `{} up … --plan {}`)",
                saved.plan_id(),
                path.display(),
                g.program.name(),
                path.display()
            ));
        }
    }
    print_stdout(&text)?;
    Ok(if plan.is_empty() {
        PlanOutcome::NoChanges
    } else {
        PlanOutcome::Changes
    })
}

/// Reads and checks a saved plan file (complete, of this format, unedited);
/// no other IO.
fn read_saved_plan(path: &Path) -> Result<SavedPlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the saved plan {}", path.display()))?;
    Ok(SavedPlan::parse(&text, &path.display().to_string())?)
}

/// The refusal when `saved` is for another stack instance, configuration or
/// images than this run: checked before connecting to anything.
fn check_saved_meta(saved: &SavedPlan, stack: &str, meta: &PlanMeta) -> Result<()> {
    let planned = |p: &SavedPlan| match p.meta.pr {
        Some(pr) => format!("stack {} (PR {pr})", p.stack),
        None => format!("stack {}", p.stack),
    };
    if saved.stack != stack || saved.meta.kind != meta.kind || saved.meta.pr != meta.pr {
        bail!(
            "saved plan {} is for {}, not for stack {stack}: refusing to apply it (nothing was changed)",
            saved.plan_id(),
            planned(saved)
        );
    }
    let mut moved = Vec::new();
    if saved.meta.config_hash != meta.config_hash {
        moved.push(saved::Moved::Config {
            planned: saved.meta.config_hash.clone(),
            now: meta.config_hash.clone(),
        });
    }
    moved.extend(saved::compare_images(&saved.meta.images, &meta.images));
    if !moved.is_empty() {
        bail!("{}", saved::refusal(saved, &moved));
    }
    Ok(())
}

/// An output as shown to people and machines: secret outputs are `[secret]`.
fn shown(output: &Output) -> Value {
    match output {
        Output::Plain(v) => v.clone(),
        Output::Secret(_) => json!(preview_core::plan::SECRET_PLACEHOLDER),
    }
}

fn outputs_json(outputs: &BTreeMap<String, Output>) -> Value {
    Value::Object(outputs.iter().map(|(k, v)| (k.clone(), shown(v))).collect())
}

fn outputs_text(outputs: &BTreeMap<String, Output>) -> String {
    let width = outputs.keys().map(String::len).max().unwrap_or(0);
    let mut s = String::from("Outputs:\n");
    for (k, v) in outputs {
        let text = match shown(v) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        s.push_str(&format!("  {k:width$}  {text}\n"));
    }
    s
}

/// What an `up` does beside applying the stack.
#[derive(Debug, Default)]
struct UpExtras {
    /// The commit the preview's images were built from (checked).
    commit: Option<String>,
    /// Record a preview's images as tested after a successful, waited-for run.
    record_tested: bool,
    /// Notes shown with the plan (a promotion of untested images).
    notes: Vec<String>,
    /// Added to the JSON report as `promotion`.
    promotion: Option<Value>,
    /// Apply exactly this saved plan (`up --plan`), or refuse.
    saved: Option<SavedPlan>,
}

/// The commit of `up preview-pr`: `--commit` / `PREVIEW_COMMIT_SHA`, else
/// `GITHUB_SHA`; checked here, before anything happens. Ignored for other stacks.
fn commit_of(g: &GlobalArgs, args: &StackArgs, flag: Option<&str>) -> Result<Option<String>> {
    if !g.program.stack(&args.stack)?.records_tested_images() {
        return Ok(None);
    }
    let (source, raw) = match flag.map(str::trim).filter(|s| !s.is_empty()) {
        Some(raw) => ("--commit (PREVIEW_COMMIT_SHA)", raw.to_owned()),
        None => match std::env::var("GITHUB_SHA") {
            Ok(raw) if !raw.trim().is_empty() => ("GITHUB_SHA", raw.trim().to_owned()),
            _ => return Ok(None),
        },
    };
    let commit = raw.to_ascii_lowercase();
    preview_core::state::tested::check_commit(&commit).map_err(|e| {
        anyhow!("{source} {raw}: {e}; pass the full SHA of the commit the images were built from")
    })?;
    Ok(Some(commit))
}

/// The engine's check for `up --plan`: the plan made under the lock, saved
/// as `preview --out` would save it, must be exactly `saved`.
fn plan_guard(saved: &SavedPlan, prepared: &Prepared) -> preview_core::engine::PlanGuard {
    let saved = saved.clone();
    let stack = prepared.build.name.clone();
    let meta = prepared.meta.clone();
    preview_core::engine::PlanGuard {
        lineage: saved.basis.state.lineage.clone(),
        check: Box::new(move |plan, basis| {
            let fresh = SavedPlan::new(&stack, meta.clone(), basis.clone(), plan.clone());
            let moved = saved::compare(&saved, &fresh);
            if moved.is_empty() {
                Ok(())
            } else {
                Err(saved::refusal(&saved, &moved))
            }
        }),
    }
}

/// Records what a successful preview ran; called under the stack lock.
async fn record_tested(
    backend: &dyn StateBackend,
    build: &StackBuild,
    pr: u64,
    commit: Option<String>,
    report: &preview_core::engine::UpReport,
) -> Result<(tested::Appended, tested::TestedEntry), preview_core::state::StateError> {
    // Every image of the app: output `<key>Image` (Aphiria: `webImage`, `apiImage`).
    let mut images = BTreeMap::new();
    for (key, output) in &build.outputs {
        if let (Some(component), Output::Plain(Value::String(image))) =
            (key.strip_suffix("Image"), output)
        {
            images.insert(component.to_owned(), image.clone());
        }
    }
    let entry =
        tested::TestedEntry::now(commit, images, &build.name, &report.lineage, report.serial);
    let appended = tested::append(backend, pr, entry.clone())
        .await
        .map_err(|e| preview_core::state::StateError::Io {
            backend: backend.describe(),
            message: format!(
                "{} is deployed, but its tested images could not be recorded (promote will not find them; run `up` again): {e}",
                build.name
            ),
            source: None,
        })?;
    Ok((appended, entry))
}

async fn up_cmd(
    g: &GlobalArgs,
    args: &StackArgs,
    apply: &ApplyArgs,
    import: Import,
    extras: &UpExtras,
) -> Result<ExitCode> {
    let started = Instant::now();
    let req = request(g, args)?;
    // Built first: the stack's own checks report a bad --pr best (e.g. too long a name).
    // A plan's first secrets only for its own stack (another stack's plan is
    // refused below, naming both).
    let stack = req.instance_name()?;
    let first = extras
        .saved
        .as_ref()
        .filter(|s| s.stack == stack)
        .and_then(|s| s.meta.first_secrets.as_ref());
    let mut prepared = prepare(g, args, Some(apply), import, extras.notes.clone(), first).await?;
    if let Some(saved) = &extras.saved {
        check_saved_meta(saved, &prepared.build.name, &prepared.meta)?;
        let guard = plan_guard(saved, &prepared);
        prepared.engine = prepared.engine.with_plan_guard(guard);
    }
    let record_pr = match (&req.params.pr, extras.record_tested) {
        (Some(pr), true) if req.stack.records_tested_images() => Some(
            pr.as_str()
                .parse::<u64>()
                .map_err(|_| anyhow!("--pr {pr}: too large a number"))?,
        ),
        _ => None,
    };
    let outputs = prepared.build.outputs.clone();
    let backend = prepared.backend.clone();
    let build_for_record = prepared.build.clone();
    let recorded = std::sync::Mutex::new(None);
    let (report, build, requests) = match record_pr {
        Some(pr) if !apply.no_wait => {
            prepared
                .run(async |engine, graph| {
                    engine
                        .up_then(graph, outputs, async |report| {
                            let r = record_tested(
                                backend.as_ref(),
                                &build_for_record,
                                pr,
                                extras.commit.clone(),
                                report,
                            )
                            .await?;
                            if let Ok(mut slot) = recorded.lock() {
                                *slot = Some(r);
                            }
                            Ok(())
                        })
                        .await
                })
                .await?
        }
        _ => {
            if record_pr.is_some() {
                info(
                    "note: --no-wait: the images are not recorded as tested (promote accepts only images a preview ran to readiness)",
                );
            }
            prepared
                .run(async |engine, graph| engine.up(graph, outputs).await)
                .await?
        }
    };
    let recorded = recorded.into_inner().ok().flatten();
    if let Some((appended, entry)) = &recorded {
        if entry.commit.is_none() {
            eprintln!(
                "warning: no commit given (--commit, PREVIEW_COMMIT_SHA or GITHUB_SHA): the tested images are recorded without one, so `promote --from-sha` cannot find them"
            );
        }
        match appended {
            tested::Appended::Added(n) => info(&format!(
                "recorded the tested images of {} ({}) in {} (entry {n})",
                build.name,
                entry.short_commit(),
                backend.describe()
            )),
            tested::Appended::Unchanged => info(&format!(
                "tested images of {} ({}) already recorded",
                build.name,
                entry.short_commit()
            )),
        }
    }
    if let Some(saved) = &extras.saved {
        info(&format!("applied saved plan {}", saved.plan_id()));
    }
    let kubeconfig_recorded = preview_cluster::kubeconfig_recorded(&args.stack, &report);
    if g.json {
        let mut doc = json!({
            "stack": build.name,
            "plan": render::json(&report.plan),
            "outputs": outputs_json(&report.outputs),
            "serial": report.serial,
            "elapsedMs": started.elapsed().as_millis() as u64,
        });
        if let Some(requests) = &requests {
            doc["requests"] = json!(requests);
        }
        if let Some(recorded) = kubeconfig_recorded {
            doc["kubeconfigRecorded"] = json!(recorded);
        }
        if let Some((appended, entry)) = &recorded {
            doc["tested"] = json!({
                "recorded": matches!(appended, tested::Appended::Added(_)),
                "commit": entry.commit,
                "images": entry.images,
            });
        }
        if let Some(promotion) = &extras.promotion {
            doc["promotion"] = promotion.clone();
        }
        if let Some(saved) = &extras.saved {
            doc["planId"] = json!(saved.plan_id());
        }
        print_stdout(&serde_json::to_string_pretty(&doc)?)?;
    } else {
        // Outputs a provider recorded anew are a change too (a fresh kubeconfig).
        if report.plan.is_empty() && report.computed.is_empty() {
            let unchanged = report.plan.steps.len();
            print_stdout(&match &requests {
                Some(r) => format!(
                    "{}: no changes ({unchanged} resources unchanged, {} writes).",
                    build.name, r.writes
                ),
                None => format!(
                    "{}: no changes ({unchanged} resources unchanged).",
                    build.name
                ),
            })?;
        } else if !report.plan.is_empty() {
            print_stdout(&plan_text(&report.plan))?;
        }
        print_stdout(&outputs_text(&report.outputs))?;
        if kubeconfig_recorded == Some(true) {
            info(&preview_cluster::recorded_note(&build.name));
        }
        let elapsed = terminal::duration(started.elapsed());
        match &requests {
            Some(r) => info(&format!(
                "done in {elapsed} ({} reads, {} writes, {} dry-runs)",
                r.reads, r.writes, r.dry_runs
            )),
            None => info(&format!("done in {elapsed}")),
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn destroy_cmd(
    g: &GlobalArgs,
    args: &StackArgs,
    apply: &ApplyArgs,
    force_finalize: bool,
    keep_state: bool,
) -> Result<ExitCode> {
    let started = Instant::now();
    let req = request(g, args)?;
    let name = req.instance_name()?;
    let backend = backend(g).await?;
    if backend.read(&name).await?.is_none() {
        return nothing_to_destroy(g, &name, backend.as_ref());
    }
    let database_namespace =
        database_namespace_for(g, req.stack.as_ref(), backend.as_ref()).await?;
    let wiring = Wiring {
        kube: connect_for(g, req.stack.as_ref()).await?,
        database_namespace,
        providers: req.stack.providers(),
        ..Wiring::default()
    };
    let (mut engine, printer) = engine(wiring, backend, g, Some(apply), ImportSelection::None)?;
    let mut options = engine.options().clone();
    options.force_finalize = force_finalize;
    options.keep_state = keep_state;
    engine = engine.with_options(options);
    let report = engine.destroy(&name).await;
    drop(engine);
    let _ = printer.await;
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            if g.json {
                print_stdout(&serde_json::to_string_pretty(&json!({
                    "stack": name,
                    "verified": false,
                    "stateRemoved": false,
                    "left": e.leftovers(),
                    "error": e.to_string(),
                    "elapsedMs": started.elapsed().as_millis() as u64,
                }))?)?;
            }
            return Err(match crate::hints::destroy(&e, force_finalize) {
                Some(hint) => anyhow!("{e}\n{hint}"),
                None => e.into(),
            });
        }
    };
    if g.json {
        print_stdout(&serde_json::to_string_pretty(&json!({
            "stack": name,
            "plan": render::json(&report.plan),
            "verified": true,
            "stateRemoved": !keep_state,
            "elapsedMs": started.elapsed().as_millis() as u64,
        }))?)?;
    } else {
        let verified = match preview_cluster::destroyed_note(&args.stack) {
            Some(note) => note.to_owned(),
            None => format!(
                "verified nothing carrying the stack's label remains; {}",
                if keep_state {
                    "the emptied state is kept (--keep-state)"
                } else {
                    "its state is removed"
                }
            ),
        };
        print_stdout(&format!(
            "{name}: destroyed {} resources in {}; {verified}.",
            report.plan.summary().delete,
            terminal::duration(started.elapsed()),
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn outputs_cmd(g: &GlobalArgs, args: &StackArgs) -> Result<ExitCode> {
    let req = request(g, args)?;
    let name = req.instance_name()?;
    let backend = backend(g).await?;
    let Some(state) = backend.read(&name).await? else {
        bail!(
            "stack {name} has no state in {}; run `{} up` first",
            backend.describe(),
            g.program.name()
        );
    };
    if g.json {
        print_stdout(&serde_json::to_string_pretty(&outputs_json(
            &state.outputs,
        ))?)?;
    } else {
        print_stdout(&outputs_text(&state.outputs))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Compares live objects with what was recorded; reports drift, changes nothing.
async fn refresh_cmd(g: &GlobalArgs, args: &StackArgs) -> Result<ExitCode> {
    let (drift, build, _) = prepare(g, args, None, Import::Nothing, Vec::new(), None)
        .await?
        .run(async |engine, graph| engine.refresh(graph).await)
        .await?;
    if g.json {
        print_stdout(&serde_json::to_string_pretty(&drift)?)?;
    } else if drift.is_empty() {
        let note = preview_cluster::no_drift_note(&args.stack)
            .unwrap_or("no drift; live objects match the recorded state.");
        print_stdout(&format!("{}: {note}", build.name))?;
    } else {
        let mut text = format!("{}: {} resource(s) drifted:\n", build.name, drift.len());
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

/// `import --resource KIND/NAMESPACE/NAME` (or `KIND/NAME`), matched against the stack's resources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ResourceRef {
    raw: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl ResourceRef {
    fn parse(raw: &str) -> Result<Self> {
        let parts: Vec<&str> = raw.split('/').collect();
        let (kind, namespace, name) = match parts.as_slice() {
            [kind, name] => (*kind, None, *name),
            [kind, ns, name] => (*kind, Some((*ns).to_owned()), *name),
            _ => bail!("--resource {raw}: expected KIND/NAMESPACE/NAME or KIND/NAME"),
        };
        Ok(ResourceRef {
            raw: raw.to_owned(),
            kind: kind.to_owned(),
            namespace,
            name: name.to_owned(),
        })
    }

    fn resolve(&self, graph: &DesiredGraph) -> Result<ResourceId> {
        graph
            .order()
            .iter()
            .find(|id| {
                id.provider == ProviderName::KUBERNETES
                    && id.kind.eq_ignore_ascii_case(&self.kind)
                    && id.namespace == self.namespace
                    && id.name == self.name
            })
            .cloned()
            .ok_or_else(|| anyhow!("--resource {}: the stack has no such resource", self.raw))
    }
}

/// What `import` adopts.
enum Import {
    Nothing,
    All,
    Only(Vec<ResourceRef>),
}

impl Import {
    fn selection(&self, graph: &DesiredGraph) -> Result<ImportSelection> {
        Ok(match self {
            Import::Nothing => ImportSelection::None,
            Import::All => ImportSelection::All,
            Import::Only(refs) => ImportSelection::Only(
                refs.iter()
                    .map(|r| r.resolve(graph))
                    .collect::<Result<_>>()?,
            ),
        })
    }
}

/// The codec of a `state` sub-command: `--trust-unauthenticated` trusts what
/// cannot be verified (export, import), a rotation verifies with the old
/// passphrase and authenticates with the new one.
fn state_cmd_codec(cmd: &StateCommand) -> Result<Codec> {
    use preview_core::state::crypto::passphrase_from_env;
    match cmd {
        StateCommand::Export {
            trust_unauthenticated: true,
            ..
        }
        | StateCommand::Import {
            trust_unauthenticated: true,
            ..
        } => Ok(state_codec()?.trusting_unauthenticated()),
        StateCommand::RotatePassphrase { .. } => {
            let old = passphrase_from_env()?.ok_or_else(|| {
                anyhow!("set PREVIEW_STATE_PASSPHRASE (or _FILE) to the current passphrase")
            })?;
            let new = rotation_target()?;
            Ok(Codec::authenticated(Arc::new(
                Authenticator::new(new).rotating_from(old),
            )))
        }
        _ => state_codec(),
    }
}

/// The new passphrase of a rotation (`PREVIEW_STATE_NEW_PASSPHRASE` or `…_FILE`).
fn rotation_target() -> Result<preview_core::secret::SecretString> {
    preview_core::state::crypto::passphrase_from(
        std::env::var("PREVIEW_STATE_NEW_PASSPHRASE").ok(),
        std::env::var_os("PREVIEW_STATE_NEW_PASSPHRASE_FILE").map(std::path::PathBuf::from),
    )?
    .ok_or_else(|| anyhow!("set PREVIEW_STATE_NEW_PASSPHRASE (or _FILE) to the new passphrase"))
}

async fn state_cmd(g: &GlobalArgs, cmd: &StateCommand) -> Result<ExitCode> {
    use stacks::state_cmd as sc;
    let backend = backend_with(g, state_cmd_codec(cmd)?).await?;
    let b = backend.as_ref();
    let value: Value = match cmd {
        StateCommand::List => serde_json::to_value(sc::list(b).await?)?,
        StateCommand::Show { stack } => sc::show(b, stack).await?,
        StateCommand::Export { stack, file, .. } => {
            serde_json::to_value(sc::export_to_file(b, stack, file).await?)?
        }
        StateCommand::Import {
            stack, file, force, ..
        } => {
            let options = sc::ImportOptions {
                force: *force,
                lock_timeout: g.lock_timeout,
            };
            serde_json::to_value(sc::import_from_file(b, stack, file, &options).await?)?
        }
        StateCommand::BreakLock { stack } => match sc::break_lock(b, stack).await? {
            Some(holder) => json!({"stack": stack, "broken": true, "holder": holder}),
            None => json!({"stack": stack, "broken": false}),
        },
        StateCommand::Delete { stack, force } => {
            let options = sc::DeleteOptions {
                force: *force,
                lock_timeout: g.lock_timeout,
            };
            serde_json::to_value(sc::delete(b, stack, &options).await?)?
        }
        StateCommand::RotatePassphrase { stack } => {
            let old = preview_core::state::crypto::passphrase_from_env()?.ok_or_else(|| {
                anyhow!("set PREVIEW_STATE_PASSPHRASE (or _FILE) to the current passphrase")
            })?;
            let new = rotation_target()?;
            serde_json::to_value(
                sc::rotate_passphrase(b, stack, &old, &new, g.lock_timeout).await?,
            )?
        }
        StateCommand::ForgetSecrets { stack } => {
            serde_json::to_value(sc::forget_secrets(b, stack, g.lock_timeout).await?)?
        }
    };
    print_stdout(&serde_json::to_string_pretty(&value)?)?;
    Ok(ExitCode::SUCCESS)
}

/// Environment variable: how often a DOKS cluster's state is polled (default 10s).
const POLL_ENV: &str = "PREVIEW_DIGITALOCEAN_POLL_INTERVAL";

/// The DigitalOcean provider (DNS records, DOKS clusters), when
/// `PREVIEW_DIGITALOCEAN_TOKEN` (or `…_FILE`) holds an API token; the API base URL
/// is `PREVIEW_DIGITALOCEAN_API_URL` (default `https://api.digitalocean.com`), the
/// cluster poll interval `PREVIEW_DIGITALOCEAN_POLL_INTERVAL`, the lifetime of the
/// kubeconfigs it fetches `kubeconfig_expiry` (`cluster.kubeconfigExpiry`).
/// Records whose address comes from a cluster object (`dataFrom`, e.g. the
/// Gateway's load-balancer address) get it from the engine. Stacks with a
/// DigitalOcean resource fail with a message naming the variable when the token
/// is missing.
fn digitalocean_provider(
    kubeconfig_expiry: Option<Duration>,
) -> Result<Option<Arc<dyn preview_core::provider::Provider>>> {
    use preview_digitalocean::{
        DEFAULT_API_URL, DEFAULT_CLUSTER_POLL, DigitalOceanProvider, DoClient,
    };
    use stacks::SecretSource;
    let Some(token) = EnvSecrets.get(stacks::stack::DIGITALOCEAN_TOKEN) else {
        return Ok(None);
    };
    let poll = match std::env::var(POLL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(raw) => humantime::parse_duration(raw.trim())
            .map_err(|e| anyhow!("{POLL_ENV}={raw}: {e} (e.g. 10s)"))?,
        None => DEFAULT_CLUSTER_POLL,
    };
    let base = std::env::var("PREVIEW_DIGITALOCEAN_API_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    let client = match DoClient::new(&base, token) {
        Ok(client) => client,
        Err(error) => {
            eprintln!(
                "warning: PREVIEW_DIGITALOCEAN_API_URL: {error}; DigitalOcean resources cannot be managed in this run"
            );
            return Ok(None);
        }
    };
    let mut provider = DigitalOceanProvider::new(client).with_cluster_poll(poll);
    if let Some(expiry) = kubeconfig_expiry {
        provider = provider.with_kubeconfig_expiry(expiry);
    }
    Ok(Some(Arc::new(provider)))
}
