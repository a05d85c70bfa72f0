//! [`Program`]: what a run of the driver knows beside its flags — the
//! program's name and help, its stacks ([`stacks::Stack`]) and the providers it
//! registered — and the command line made from them ([`Program::command`]:
//! the stacks become the possible values of every `STACK` argument).
//!
//! Built by [`crate::Driver`]; every command reaches it as
//! [`GlobalArgs::program`](crate::cli::GlobalArgs::program).

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use clap::CommandFactory;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use preview_core::ProviderName;
use preview_core::provider::Provider;
use stacks::Stack;

use crate::cli::{Cli, StackName};

/// The name of the `stacks` binary, whose help texts the derive gives.
pub(crate) const STACKS: &str = "stacks";

/// The program's definition; cheap to clone.
#[derive(Clone)]
pub struct Program(Arc<Definition>);

/// What a [`Program`] holds.
pub(crate) struct Definition {
    /// The binary's name (usage lines, completions).
    pub name: String,
    /// `--help`'s description; `None`: the `stacks` binary's.
    pub about: Option<String>,
    /// The text after `--help`; `None`: the `stacks` binary's.
    pub after_help: Option<String>,
    /// `--version`; `None`: this library's version and commit.
    pub version: Option<String>,
    /// The stacks, in the order `--help` lists them.
    pub stacks: Vec<Arc<dyn Stack>>,
    /// Providers of the program's own, in every engine it runs.
    pub providers: Vec<(ProviderName, Arc<dyn Provider>)>,
}

impl Program {
    pub(crate) fn new(definition: Definition) -> Program {
        Program(Arc::new(definition))
    }

    /// The binary's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The stack named `name`.
    pub fn stack(&self, name: &StackName) -> Result<Arc<dyn Stack>> {
        self.find(name.as_str()).ok_or_else(|| {
            anyhow!(
                "{} has no stack {name} (its stacks: {})",
                self.0.name,
                self.names().join(", ")
            )
        })
    }

    /// The stack named `name`, when the program has it.
    pub fn find(&self, name: &str) -> Option<Arc<dyn Stack>> {
        self.0.stacks.iter().find(|s| s.name() == name).cloned()
    }

    /// The names of the stacks taking `--pr`.
    pub fn per_pr_names(&self) -> Vec<&str> {
        self.0
            .stacks
            .iter()
            .filter(|s| s.takes_pr())
            .map(|s| s.name())
            .collect()
    }

    /// The program's own providers.
    pub fn providers(&self) -> &[(ProviderName, Arc<dyn Provider>)] {
        &self.0.providers
    }

    fn names(&self) -> Vec<&str> {
        self.0.stacks.iter().map(|s| s.name()).collect()
    }

    /// Checks the definition: at least one stack, names that are valid and
    /// unique.
    pub(crate) fn check(&self) -> Result<()> {
        if self.0.stacks.is_empty() {
            return Err(anyhow!("{} defines no stack", self.0.name));
        }
        let mut seen = std::collections::BTreeSet::new();
        for stack in &self.0.stacks {
            let name = stack.name();
            let valid = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-');
            if !valid {
                return Err(anyhow!(
                    "stack name {name:?} of {}: use 1-63 lowercase letters, digits and '-', not starting or ending with '-'",
                    self.0.name
                ));
            }
            if !seen.insert(name) {
                return Err(anyhow!("{} defines two stacks named {name}", self.0.name));
            }
        }
        Ok(())
    }

    /// The command line: the `stacks` binary's, with this program's name,
    /// help and stacks.
    pub fn command(&self) -> clap::Command {
        let d = &self.0;
        let mut cmd = Cli::command();
        if d.name != STACKS {
            cmd = cmd.name(d.name.clone()).bin_name(d.name.clone());
        }
        if let Some(about) = &d.about {
            cmd = cmd.about(about.clone()).long_about(None);
        }
        if let Some(after) = &d.after_help {
            cmd = cmd.after_help(after.clone());
        }
        if let Some(version) = &d.version {
            cmd = cmd.version(version.clone());
        }
        let values: Vec<PossibleValue> = d
            .stacks
            .iter()
            .map(|s| {
                let value = PossibleValue::new(s.name().to_owned());
                match s.about() {
                    "" => value,
                    about => value.help(about.to_owned()),
                }
            })
            .collect();
        let subcommands: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        for name in subcommands {
            let values = values.clone();
            cmd = cmd.mut_subcommand(name, move |sub| {
                let takes_stack = sub.get_arguments().any(|a| {
                    a.get_id() == "stack"
                        && a.get_value_parser().type_id() == TypeId::of::<StackName>()
                });
                if takes_stack {
                    sub.mut_arg("stack", move |a| {
                        a.value_parser(PossibleValuesParser::new(values).map(StackName))
                    })
                } else {
                    sub
                }
            });
        }
        // Commands about the built-in stacks, hidden where they are missing.
        for (command, needs) in [
            ("promote", &["production"][..]),
            ("kubeconfig", &["preview-cluster"][..]),
        ] {
            if needs.iter().any(|n| self.find(n).is_none()) {
                cmd = cmd.mut_subcommand(command, |sub| sub.hide(true));
            }
        }
        // `--pr` for programs with a stack that takes it, `--kubeconfig-from`
        // for those with `preview-cluster`.
        let per_pr = d.stacks.iter().any(|s| s.takes_pr());
        if !per_pr {
            let subcommands: Vec<String> = cmd
                .get_subcommands()
                .filter(|s| s.get_arguments().any(|a| a.get_id() == "pr"))
                .map(|s| s.get_name().to_owned())
                .collect();
            for name in subcommands {
                cmd = cmd.mut_subcommand(name, |sub| sub.mut_arg("pr", |pr| pr.hide(true)));
            }
        }
        if self.find("preview-cluster").is_none() {
            cmd = cmd.mut_arg("kubeconfig_from", |a| a.hide(true));
        }
        // `--app` and `--manifests` for programs with a stack that deploys an
        // app spec (`local`, `preview-pr`, `production`).
        if !d.stacks.iter().any(|s| s.deploys_app_spec()) {
            cmd = cmd
                .mut_arg("app", |a| a.hide(true))
                .mut_arg("manifests", |a| a.hide(true));
        }
        // `up`'s words on tested images and its `--commit` are for stacks
        // that record them (`preview-pr`).
        if !d.stacks.iter().any(|s| s.records_tested_images()) {
            cmd = cmd.mut_subcommand("up", |up| {
                up.long_about(None)
                    .mut_arg("commit", |commit| commit.hide(true))
            });
        }
        cmd
    }
}

/// The help after the options of a program of one's own.
pub(crate) fn generic_after_help(name: &str, first_stack: &str) -> String {
    format!(
        "\
Examples:
  {name} render {first_stack}
  {name} preview {first_stack}
  {name} up {first_stack}
  {name} outputs {first_stack} --json
  {name} destroy {first_stack}

State lives in the backend given by --backend / PREVIEW_BACKEND (default file://.preview/state).
Secrets come from environment variables or files, never from flags.

The cluster is found as kubectl finds it: --kubeconfig FILE, else every file in KUBECONFIG
(merged), else ~/.kube/config; the context is --context / PREVIEW_KUBE_CONTEXT, else the
current one. Colour: --color, NO_COLOR, CLICOLOR_FORCE. Logs: -v/-vv, PREVIEW_LOG or RUST_LOG.
Shell completions: {name} completions bash|zsh|fish|powershell|elvish."
    )
}

impl Default for Program {
    /// No stacks (parsing fills in the real program).
    fn default() -> Self {
        Program::new(Definition {
            name: STACKS.to_owned(),
            about: None,
            after_help: None,
            version: None,
            stacks: Vec::new(),
            providers: Vec::new(),
        })
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("name", &self.0.name)
            .field("stacks", &self.names())
            .field(
                "providers",
                &self.0.providers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use stacks::{Stack, StackBuild, StackError, StackInput};

    use crate::Driver;

    struct Named(&'static str);

    impl Stack for Named {
        fn name(&self) -> &str {
            self.0
        }

        fn about(&self) -> &str {
            "a test stack"
        }

        fn build(&self, input: &StackInput<'_>) -> Result<StackBuild, StackError> {
            Ok(StackBuild::new(input.instance, Vec::new()))
        }
    }

    fn possible(command: &clap::Command, sub: &str) -> Vec<String> {
        command
            .find_subcommand(sub)
            .and_then(|s| s.get_arguments().find(|a| a.get_id() == "stack"))
            .map(|a| {
                a.get_possible_values()
                    .iter()
                    .map(|v| v.get_name().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_program_of_ones_own_has_its_name_its_stacks_and_no_promote() {
        let command = Driver::new("hello-tool")
            .stack(Named("hello"))
            .stack(Named("other"))
            .command();
        assert_eq!(command.get_name(), "hello-tool");
        for sub in [
            "preview", "up", "destroy", "refresh", "outputs", "render", "import",
        ] {
            assert_eq!(possible(&command, sub), ["hello", "other"], "{sub}");
        }
        // `kubeconfig STACK` names a state, not a stack.
        assert!(possible(&command, "kubeconfig").is_empty());
        let hidden = |name: &str| {
            command
                .find_subcommand(name)
                .is_some_and(clap::Command::is_hide_set)
        };
        assert!(hidden("promote") && hidden("kubeconfig"));
        assert!(!hidden("up"));
        let help = command.clone().render_long_help().to_string();
        assert!(help.contains("hello-tool up hello"), "{help}");
    }

    #[test]
    fn a_stack_name_is_checked_and_unique() {
        let program = |names: &[&'static str]| {
            let mut driver = Driver::new("t");
            for n in names {
                driver = driver.stack(Named(n));
            }
            driver.into_program()
        };
        assert!(program(&["a", "b-2"]).check().is_ok());
        let twice = program(&["a", "a"]).check().expect_err("twice");
        assert_eq!(twice.to_string(), "t defines two stacks named a");
        let bad = program(&["Upper"]).check().expect_err("invalid");
        assert!(bad.to_string().contains("\"Upper\""), "{bad}");
        assert!(program(&[]).check().is_err());
    }

    #[test]
    fn an_unknown_stack_is_a_usage_error_listing_the_stacks() {
        let error = Driver::new("t")
            .stack(Named("hello"))
            .command()
            .try_get_matches_from(["t", "up", "nope"])
            .expect_err("unknown");
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(
            error.to_string().contains("[possible values: hello]"),
            "{error}"
        );
    }
}
