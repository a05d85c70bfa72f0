//! The [`Stack`] trait: what a stack is to the command driver (the package
//! `stacks-cli`: `stacks_cli::Driver`), so a Rust program defines stacks in code
//! and gets the same commands as the `stacks` binary (render, preview, up,
//! destroy, refresh, outputs, import, state …).
//!
//! A stack has a name, the providers its resources use, the stacks whose
//! outputs it reads, and a pure [`Stack::build`]: given the run's parameters
//! ([`StackParams`]: PR number, images), its configuration ([`Settings`], read
//! before by [`Stack::configure`], the only step that may do IO) and the
//! referenced stacks' outputs, it returns the resources, outputs and policy of
//! a [`StackBuild`]. It never talks to a cluster or a state backend: the
//! driver reads the references from state, wires the providers, and hands the
//! build to the engine.
//!
//! The five built-in stacks implement it in [`crate::stack::builtin`].
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use components::{EnvConfigMap, PreviewNamespace};
//! use stacks::{Stack, StackBuild, StackError, StackInput};
//!
//! /// A namespace with one ConfigMap; its greeting is the `--web-image` value
//! /// for the sake of the example.
//! struct Hello;
//!
//! impl Stack for Hello {
//!     fn name(&self) -> &str {
//!         "hello"
//!     }
//!
//!     fn about(&self) -> &str {
//!         "A namespace with a greeting"
//!     }
//!
//!     fn build(&self, input: &StackInput<'_>) -> Result<StackBuild, StackError> {
//!         let greeting = input.params.image("web").unwrap_or("hello").to_owned();
//!         let mut resources = PreviewNamespace::new("hello").build()?.into_resources();
//!         resources.push(
//!             EnvConfigMap::new("hello", "greeting", BTreeMap::from([("GREETING".into(), greeting)]))
//!                 .build()?,
//!         );
//!         Ok(StackBuild::new(input.instance, resources))
//!     }
//! }
//!
//! let (params, settings, refs) = (
//!     stacks::StackParams::default(),
//!     stacks::Settings::none(),
//!     stacks::References::new(),
//! );
//! let input = StackInput {
//!     instance: &Hello.instance_name(None)?,
//!     params: &params,
//!     settings: &settings,
//!     references: &refs,
//!     secrets: &stacks::EnvSecrets,
//! };
//! let build = Hello.build(&input)?;
//! assert_eq!(build.name, "hello");
//! assert_eq!(build.resources.len(), 2);
//! # Ok::<(), StackError>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use preview_core::ProviderName;
use preview_core::secret::SecretString;

use crate::settings::Settings;
use crate::{PrNumber, References, SecretSource, StackBuild, StackError};

/// A stack defined in code: what the driver needs to plan, apply, destroy and
/// show it. Only [`Stack::name`] and [`Stack::build`] are required (an
/// example: [the module docs](self); a runnable program:
/// `examples/custom_stack.rs`).
pub trait Stack: Send + Sync {
    /// The name the command line takes (`preview-pr`, `hello`): lowercase
    /// letters, digits and `-`. Also its state name, unless it
    /// [takes a PR number](Stack::takes_pr).
    fn name(&self) -> &str;

    /// One line for `--help` (the list of stacks).
    fn about(&self) -> &str {
        ""
    }

    /// Whether the stack takes `--pr N`: its instances are then
    /// `<name>-<N>`, one per pull request.
    fn takes_pr(&self) -> bool {
        false
    }

    /// The state name of the instance for `pr` (`preview-pr-123`,
    /// `preview-base`). Needs only the PR number, so `destroy` and `outputs`
    /// work without images.
    fn instance_name(&self, pr: Option<&PrNumber>) -> Result<String, StackError> {
        match (self.takes_pr(), pr) {
            (true, Some(pr)) => Ok(format!("{}-{pr}", self.name())),
            (true, None) => Err(StackError::Missing {
                what: "--pr".into(),
                hint: format!(
                    "{} needs the pull-request number, e.g. --pr 123",
                    self.name()
                ),
            }),
            (false, _) => Ok(self.name().to_owned()),
        }
    }

    /// The stacks whose recorded outputs [`Stack::build`] reads (the driver
    /// loads them from the state backend into [`StackInput::references`]).
    fn references(&self) -> Vec<String> {
        Vec::new()
    }

    /// The providers its resources use. The driver connects to a cluster only
    /// for a stack that uses [`ProviderName::KUBERNETES`], and wires only the
    /// built-in providers listed here (the PostgreSQL one needs the cluster
    /// too); providers a program registers with the driver are always there.
    fn providers(&self) -> Vec<ProviderName> {
        vec![ProviderName::KUBERNETES]
    }

    /// Reads the stack's configuration (a file in `config_dir`, the
    /// environment) before [`Stack::build`]: the only step of a stack that may
    /// do IO. The default has none ([`Settings::none`]).
    fn configure(&self, source: &ConfigSource<'_>) -> Result<Settings, StackError> {
        let _ = source;
        Ok(Settings::none())
    }

    /// What the driver wires the providers with, from the configuration
    /// (`None` when it could not be read, for `destroy`, which builds nothing)
    /// and the referenced stacks' outputs.
    fn provider_settings(
        &self,
        settings: Option<&Settings>,
        references: &References,
    ) -> ProviderSettings {
        let _ = (settings, references);
        ProviderSettings::default()
    }

    /// The output under which the driver keeps a password it generates on the
    /// first `up` and seals in the stack's state (the state passphrase is then
    /// required); [`StackParams::generated_password`] carries it into
    /// [`Stack::build`]. `None` (the default): no such password.
    fn generated_password(&self) -> Option<&str> {
        None
    }

    /// Whether the stack deploys an app spec, read by [`Stack::configure`] from
    /// [`ConfigSource::app`] (the driver then offers `--app` and `--manifests`).
    fn deploys_app_spec(&self) -> bool {
        false
    }

    /// Whether a successful, waited-for `up` records the images it ran as
    /// tested, for `promote` (the outputs `webImage` and `apiImage`).
    fn records_tested_images(&self) -> bool {
        false
    }

    /// Builds the stack's resources, outputs and policy. Pure: the same input
    /// gives the same build; no cluster, state or file access.
    fn build(&self, input: &StackInput<'_>) -> Result<StackBuild, StackError>;
}

/// The per-run parameters of a stack, parsed from the command line.
#[derive(Clone, Debug, Default)]
pub struct StackParams {
    /// Pull-request number (stacks that [take one](Stack::takes_pr)).
    pub pr: Option<PrNumber>,
    /// Images by name (`web` from `--web-image`, `api` from `--api-image`).
    pub images: BTreeMap<String, String>,
    /// The password the driver generated and keeps sealed in state
    /// ([`Stack::generated_password`]).
    pub generated_password: Option<SecretString>,
}

impl StackParams {
    /// The image named `name`, when given.
    pub fn image(&self, name: &str) -> Option<&str> {
        self.images.get(name).map(String::as_str)
    }
}

/// Where a stack's configuration comes from, as the driver hands it to
/// [`Stack::configure`].
#[derive(Clone, Copy, Debug)]
pub struct ConfigSource<'a> {
    /// The configuration directory (`--config-dir`; the built-in stacks read
    /// `<dir>/<stack>.yaml`).
    pub dir: &'a Path,
    /// Where the app spec comes from, when the run builds the stack; `None`
    /// when it builds nothing (`destroy`), so nothing of the app is read.
    pub app: Option<AppSource<'a>>,
}

/// Where the app spec ([`crate::app_spec::App::discover`]) comes from.
#[derive(Clone, Copy, Debug)]
pub struct AppSource<'a> {
    /// The spec the run names (`--app`), if any.
    pub explicit: Option<&'a Path>,
    /// Where `preview-app.yaml` is looked for when none is named.
    pub work_dir: &'a Path,
    /// Extra manifests in place of the spec's (`--manifests`; `-` = stdin).
    pub manifests: Option<&'a Path>,
}

/// Everything [`Stack::build`] gets.
#[derive(Clone, Copy)]
pub struct StackInput<'a> {
    /// The instance's state name ([`Stack::instance_name`]); a build's
    /// [`StackBuild::name`] is this.
    pub instance: &'a str,
    /// The run's parameters.
    pub params: &'a StackParams,
    /// The configuration [`Stack::configure`] read.
    pub settings: &'a Settings,
    /// Outputs of the [referenced stacks](Stack::references), by stack name
    /// (a stack without recorded outputs is absent).
    pub references: &'a References,
    /// Where secret values come from.
    pub secrets: &'a dyn SecretSource,
}

/// What the driver wires a stack's providers with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderSettings {
    /// The namespace of the PostgreSQL server whose Jobs the in-cluster
    /// database executor may run and read.
    pub database_namespace: Option<String>,
    /// The lifetime of the kubeconfigs the DigitalOcean provider fetches.
    pub kubeconfig_expiry: Option<Duration>,
}
