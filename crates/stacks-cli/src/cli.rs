//! Command-line surface of the `stacks` binary (parsing only, no side effects).
//!
//! The stack names a command takes are the stacks of the running program
//! ([`crate::Driver`]): the driver sets them as the possible values of every
//! `STACK` argument of type [`StackName`] before parsing.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `--version`: the package version and the commit it was built from
/// (`-dirty` when tracked files differed; `unknown` outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GIT_COMMIT"),
    ")"
);

/// Typed infrastructure-as-code for per-pull-request preview environments.
///
/// Builds a stack's resources from typed components, compares them with the
/// recorded state and the live cluster, and applies the difference with
/// Kubernetes server-side apply.
#[derive(Debug, Parser)]
#[command(
    name = "stacks",
    version = VERSION,
    after_help = "\
Examples:
  stacks preview preview-pr --pr 123 --web-image REG/web@sha256:… --api-image REG/api@sha256:…
  stacks preview preview-pr --pr 123 --web-image … --api-image … --out plan.json   # save it (plan id shown)
  stacks up preview-pr --pr 123 --web-image … --api-image … --plan plan.json        # apply exactly that plan
  stacks up preview-base
  stacks up preview-pr --pr 123 --web-image … --api-image …
  stacks outputs preview-pr --pr 123 --json
  stacks render preview-pr --pr 123 --dir manifests/   # secret values redacted unless --include-secrets
  stacks destroy preview-pr --pr 123
  stacks promote --from-pr 123                     # production gets what preview-pr-123 last ran

Creating the cluster on DigitalOcean instead of bringing a kubeconfig (config/preview-cluster.yaml;
PREVIEW_DIGITALOCEAN_TOKEN, PREVIEW_STATE_PASSPHRASE; no Kubernetes connection needed):
  stacks up preview-cluster                        # create, wait until running, seal the kubeconfig in state
  stacks kubeconfig preview-cluster -o kubeconfig  # export it (the only command that prints it)
  stacks --kubeconfig-from preview-cluster up preview-base
  stacks destroy preview-cluster                   # refused while `protect: true` (the default)

State lives in the backend given by --backend / PREVIEW_BACKEND (default file://.preview/state).
Secrets come from environment variables or files, never from flags.

The cluster is found as kubectl finds it: --kubeconfig FILE, else every file in KUBECONFIG
(merged), else ~/.kube/config; the context is --context / PREVIEW_KUBE_CONTEXT, else the
current one. Colour: --color, NO_COLOR, CLICOLOR_FORCE. Logs: -v/-vv, PREVIEW_LOG or RUST_LOG.
Shell completions: stacks completions bash|zsh|fish|powershell|elvish."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where stack state is kept: file://DIR (default), kubernetes://NAMESPACE, postgres://…
    #[arg(
        long,
        global = true,
        env = "PREVIEW_BACKEND",
        default_value = "file://.preview/state"
    )]
    pub backend: String,
    /// Kubeconfig file (default: the files in $KUBECONFIG, merged as kubectl does, then ~/.kube/config).
    // Not `env = "KUBECONFIG"`: a list of files there is merged by the connection.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the kubeconfig's current context).
    #[arg(long, global = true, env = "PREVIEW_KUBE_CONTEXT")]
    pub context: Option<String>,
    /// Use the kubeconfig sealed in this stack's state (`preview-cluster`) instead of --kubeconfig; needs PREVIEW_STATE_PASSPHRASE.
    #[arg(
        long,
        global = true,
        value_name = "STACK",
        env = "PREVIEW_KUBECONFIG_FROM"
    )]
    pub kubeconfig_from: Option<String>,
    /// Directory with per-stack config files (<stack>.yaml).
    #[arg(
        long,
        global = true,
        env = "PREVIEW_CONFIG_DIR",
        default_value = "config"
    )]
    pub config_dir: PathBuf,
    /// The app spec (default: preview-app.yaml in the working directory when it exists, else the built-in Aphiria app).
    #[arg(long, global = true, value_name = "FILE", env = "PREVIEW_APP")]
    pub app: Option<PathBuf>,
    /// Extra manifests instead of the app spec's `manifests.path`: a YAML file, a directory, or - for stdin (helm template / kustomize build output).
    #[arg(long, global = true, value_name = "PATH")]
    pub manifests: Option<PathBuf>,
    /// Machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Wait this long for another run holding the stack's lock (default: fail fast, naming the holder).
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "0s")]
    pub lock_timeout: Duration,
    /// Progress display: auto (live on terminals, lines otherwise), plain, none.
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Colours: auto (terminals, unless NO_COLOR is set; CLICOLOR_FORCE forces them), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); PREVIEW_LOG or RUST_LOG take precedence.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors and warnings on stderr: no progress, no notes (the result on stdout is unchanged).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// The stacks and providers of the running program (set by the driver, not a flag).
    #[arg(skip)]
    pub program: crate::program::Program,
}

/// When to colour output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On terminals, unless NO_COLOR is set (CLICOLOR_FORCE colours pipes too).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Progress display style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// Live on terminals, plain lines otherwise.
    Auto,
    /// One line per event.
    Plain,
    /// Nothing.
    None,
}

/// The name of one of the program's stacks (`preview-pr`): the driver makes
/// the registered names the only values parsing accepts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StackName(pub String);

impl StackName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the stack named `name`.
    pub fn is(&self, name: &str) -> bool {
        self.0 == name
    }
}

impl std::str::FromStr for StackName {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(StackName(s.to_owned()))
    }
}

impl std::fmt::Display for StackName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which stack, and its per-run parameters.
#[derive(Debug, Args)]
pub struct StackArgs {
    /// The stack.
    pub stack: StackName,
    /// Pull-request number (preview-pr): a positive integer.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pr: Option<String>,
    /// Web image pinned by digest: NAME@sha256:<64 hex>.
    #[arg(long, value_name = "REF", env = "PREVIEW_WEB_IMAGE")]
    pub web_image: Option<String>,
    /// API image pinned by digest: NAME@sha256:<64 hex>.
    #[arg(long, value_name = "REF", env = "PREVIEW_API_IMAGE")]
    pub api_image: Option<String>,
    /// The image of one of the app spec's image keys, pinned by digest (repeat per key); `--image web=REF` is `--web-image REF`, and wins over it.
    #[arg(long = "image", value_name = "KEY=REF")]
    pub images: Vec<String>,
}

/// Which stack instance, for commands that only name one (`destroy`,
/// `outputs`): no images, since nothing is built.
#[derive(Debug, Args)]
pub struct StackRef {
    /// The stack.
    pub stack: StackName,
    /// Pull-request number (preview-pr): a positive integer.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pr: Option<String>,
}

impl StackRef {
    /// As [`StackArgs`] without images.
    pub fn to_args(&self) -> StackArgs {
        StackArgs {
            stack: self.stack.clone(),
            pr: self.pr.clone(),
            web_image: None,
            api_image: None,
            images: Vec::new(),
        }
    }
}

/// Which tested images `promote` deploys: a pull request's (its last tested
/// images, or with --from-sha those of that commit), a commit's, or images named
/// explicitly (checked against the records).
#[derive(Debug, Args)]
#[group(id = "source", required = true, multiple = true)]
pub struct PromoteSource {
    /// The images last tested by this pull request's preview (also after it was destroyed).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub from_pr: Option<String>,
    /// The images tested at this commit (full SHA or a unique prefix of 7+); with --from-pr, that PR's test of it.
    #[arg(long, value_name = "SHA")]
    pub from_sha: Option<String>,
    /// Same as --from-pr N for STACK preview-pr-N.
    #[arg(long = "from", value_name = "STACK", conflicts_with_all = ["from_pr", "from_sha"])]
    pub from: Option<String>,
    /// The image of one of the app's image keys, NAME@sha256:<64 hex> (repeat per key); together they must have been tested by one successful preview.
    #[arg(long = "image", value_name = "KEY=REF", conflicts_with_all = ["from_pr", "from_sha", "from"])]
    pub images: Vec<String>,
    /// Same as --image web=REF (`--image web=` wins).
    #[arg(long, value_name = "REF", conflicts_with_all = ["from_pr", "from_sha", "from"])]
    pub web_image: Option<String>,
    /// Same as --image api=REF (`--image api=` wins).
    #[arg(long, value_name = "REF", conflicts_with_all = ["from_pr", "from_sha", "from"])]
    pub api_image: Option<String>,
}

/// Options for commands that change things.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Take ownership of fields another field manager holds.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Readiness / deletion timeout per resource.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub timeout: Duration,
    /// Steps applied at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Do not wait for readiness (dependents start once the API server accepted their dependencies).
    #[arg(long)]
    pub no_wait: bool,
}

/// Plan output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// Coloured on terminals, plain otherwise.
    Text,
    /// Stable JSON schema (see preview_core::render::json).
    Json,
    /// Markdown for a pull-request comment.
    Markdown,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what `up` would do (reads only; no lock, no writes).
    Preview {
        #[command(flatten)]
        stack: StackArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Save the plan to this file (JSON, with its state serial, hashes and plan id) for `up --plan FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when the plan has no changes, 2 when it has some, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Create or update the stack's resources and wait until they are ready.
    ///
    /// With --plan FILE (from `preview --out FILE`) it applies exactly that
    /// plan: it plans again under the stack lock and refuses, before any
    /// write, naming what moved (state serial or lineage, configuration,
    /// images, a desired body, a live object, an action).
    ///
    /// A successful `up` of preview-pr (waiting for readiness) records the images
    /// it ran, with the PR number and --commit, as tested: `promote` deploys only
    /// recorded images to production, also after the preview is destroyed.
    Up {
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        apply: ApplyArgs,
        /// Commit SHA the preview's images were built from (preview-pr; recorded with them for `promote --from-sha`). Default: $GITHUB_SHA.
        #[arg(long, value_name = "SHA", env = "PREVIEW_COMMIT_SHA")]
        commit: Option<String>,
        /// Apply exactly this saved plan (`preview --out FILE`), or refuse naming what moved.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// Delete everything the stack created, wait until it is gone, verify nothing is left.
    Destroy {
        #[command(flatten)]
        stack: StackRef,
        #[command(flatten)]
        apply: ApplyArgs,
        /// Remove the finalizers holding the deletion of a namespace stuck
        /// Terminating, and of objects carrying the stack's label (never another's).
        #[arg(long)]
        force_finalize: bool,
        /// Keep the stack's (emptied) state after a verified destroy; by default
        /// it is removed. Tested-image records are kept either way.
        #[arg(long)]
        keep_state: bool,
    },
    /// Read live objects and report drift from the recorded state.
    Refresh {
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Print the stack's recorded outputs (secret outputs stay hidden).
    Outputs {
        #[command(flatten)]
        stack: StackRef,
    },
    /// Write every manifest as YAML (for review or GitOps tools), without a cluster.
    ///
    /// Secret values (`data`, `stringData` of Secrets) are shown as
    /// `<redacted: use --include-secrets>` unless --include-secrets is given.
    Render {
        #[command(flatten)]
        stack: StackArgs,
        /// Directory to write one file per resource into (default: stdout).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Include secret values (with --dir, files holding them are written with mode 0600).
        #[arg(long)]
        include_secrets: bool,
    },
    /// Deploy production with the image digests a preview was tested with (never rebuilt).
    ///
    /// Every successful `up preview-pr` records the images it ran (with the PR
    /// number and commit) in the state backend; destroy keeps that record.
    /// `promote` looks the images up there and runs `up production` with exactly
    /// those references, every image key the record holds. Images given with
    /// --image KEY=REF (or --web-image/--api-image) must have been run together
    /// by a successful preview, unless --untested is given, which every
    /// rendering of the plan then shows.
    Promote {
        #[command(flatten)]
        source: PromoteSource,
        /// Deploy the --image (--web-image/--api-image) images although no successful preview recorded them together (the plan says so).
        #[arg(long)]
        untested: bool,
        /// Where the tested-image records are (default: --backend), e.g. the preview backend when production keeps its state elsewhere.
        #[arg(long, value_name = "URL", env = "PREVIEW_RECORDS_BACKEND")]
        records: Option<String>,
        /// Only show the plan (reads only; no lock, no writes).
        #[arg(long)]
        preview: bool,
        /// Plan format with --preview.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text, requires = "preview")]
        format: PlanFormat,
        /// With --preview: also write the plan (in --format) to this file.
        #[arg(long, requires = "preview")]
        out: Option<PathBuf>,
        #[command(flatten)]
        apply: ApplyArgs,
    },
    /// Print the kubeconfig sealed in a stack's state (`preview-cluster`), for kubectl and other tools.
    ///
    /// The only command that shows a secret: the kubeconfig `up preview-cluster`
    /// recorded, unsealed with PREVIEW_STATE_PASSPHRASE. Warns on stderr when its
    /// token has expired (run `up preview-cluster` to record a fresh one).
    Kubeconfig {
        /// State name of the stack that recorded it.
        #[arg(default_value = "preview-cluster", value_name = "STACK")]
        stack: String,
        /// Write it to this file (created with mode 0600) instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script, e.g. `stacks completions bash > /etc/bash_completion.d/stacks`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Inspect and repair stack state (list, show, export, import, break-lock, delete, …).
    #[command(subcommand)]
    State(StateCommand),
    /// Adopt existing objects into the stack without recreating them.
    Import {
        #[command(flatten)]
        stack: StackArgs,
        #[command(flatten)]
        apply: ApplyArgs,
        /// Only these resources (`Kind/namespace/name` or `Kind/name`); default: every desired object that exists.
        #[arg(long = "resource", value_name = "KIND/NS/NAME")]
        resources: Vec<String>,
    },
}

/// `stacks state …`: STACK is the state name (`preview-base`, `preview-pr-123`).
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the stacks that have state in the backend.
    List,
    /// Show a stack's state (secret outputs redacted).
    Show {
        /// State name, e.g. preview-pr-123.
        stack: String,
    },
    /// Write a stack's state to a file (secret outputs stay sealed; mode 0600).
    Export {
        /// State name.
        stack: String,
        /// Destination file.
        file: PathBuf,
        /// Export state whose authenticity cannot be established (written without
        /// the passphrase, or by an older version); the file is unauthenticated.
        #[arg(long)]
        trust_unauthenticated: bool,
    },
    /// Store a state file as the stack's state (must be a newer state of the same history unless --force).
    Import {
        /// State name.
        stack: String,
        /// Source file (from `state export`).
        file: PathBuf,
        /// Replace the stored state even if the file is older or of another lineage.
        #[arg(long)]
        force: bool,
        /// Accept an unauthenticated file (and stored state) that you reviewed and
        /// trust; it is stored authenticated with the current passphrase.
        #[arg(long)]
        trust_unauthenticated: bool,
    },
    /// Remove a stack's lock whoever holds it; only when that run is known to be dead.
    BreakLock {
        /// State name.
        stack: String,
    },
    /// Delete a stack's state; refuses while resources remain recorded (run destroy first) unless --force.
    Delete {
        /// State name.
        stack: String,
        /// Delete even though recorded resources would become orphans.
        #[arg(long)]
        force: bool,
    },
    /// Re-wrap the stack's secrets key: old passphrase from PREVIEW_STATE_PASSPHRASE[_FILE], new from PREVIEW_STATE_NEW_PASSPHRASE[_FILE].
    RotatePassphrase {
        /// State name.
        stack: String,
    },
    /// For a lost passphrase: drop the stack's sealed outputs and key (the next `up` seals them again).
    ForgetSecrets {
        /// State name.
        stack: String,
    },
}
