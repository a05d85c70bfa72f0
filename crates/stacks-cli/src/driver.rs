//! [`Driver`]: the commands of the `stacks` binary for stacks defined in code.
//!
//! A program names itself, adds its stacks ([`stacks::Stack`]) and, when its
//! resources need one, providers of its own, and calls [`Driver::run`]: the
//! command line is parsed (the stacks are the values every `STACK` argument
//! accepts), the output options applied, and the command run on the engine
//! with the default providers and state backends, exactly as `stacks` runs it
//! (`stacks` itself is [`Driver::stacks_binary`]).

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::FromArgMatches;
use preview_core::ProviderName;
use preview_core::provider::Provider;
use stacks::Stack;

use crate::cli::Cli;
use crate::program::{Definition, Program, STACKS, generic_after_help};
use crate::{failure, run, terminal};

/// Builds and runs a program's command line over its stacks.
///
/// ```no_run
/// use stacks::{Stack, StackBuild, StackError, StackInput};
///
/// struct Hello;
///
/// impl Stack for Hello {
///     fn name(&self) -> &str {
///         "hello"
///     }
///
///     fn build(&self, input: &StackInput<'_>) -> Result<StackBuild, StackError> {
///         let namespace = components::PreviewNamespace::new("hello").build()?;
///         Ok(StackBuild::new(input.instance, namespace.into_resources()))
///     }
/// }
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     // `hello-tool up hello`, `hello-tool preview hello`, `hello-tool destroy hello`, …
///     stacks_cli::Driver::new("hello-tool").stack(Hello).run().await
/// }
/// ```
pub struct Driver {
    definition: Definition,
    /// Whether help texts were given (else a generic one for the name).
    custom_help: bool,
}

impl Driver {
    /// A program named `name` (its usage lines and completions say it), with
    /// no stacks yet.
    pub fn new(name: impl Into<String>) -> Driver {
        Driver {
            definition: Definition {
                name: name.into(),
                about: None,
                after_help: None,
                version: None,
                stacks: Vec::new(),
                providers: Vec::new(),
            },
            custom_help: false,
        }
    }

    /// The `stacks` binary: its name and help, and the five built-in stacks
    /// ([`stacks::stack::builtin::all`]).
    ///
    /// ```
    /// let command = stacks_cli::Driver::stacks_binary().command();
    /// assert_eq!(command.get_name(), "stacks");
    /// let up = command.find_subcommand("up").expect("up");
    /// let stack = up.get_arguments().find(|a| a.get_id() == "stack").expect("STACK");
    /// let names: Vec<String> = stack.get_possible_values().iter().map(|v| v.get_name().to_owned()).collect();
    /// assert_eq!(names, ["local", "preview-base", "preview-pr", "production", "preview-cluster"]);
    /// ```
    pub fn stacks_binary() -> Driver {
        let mut driver = Driver::new(STACKS).stacks(stacks::stack::builtin::all());
        driver.custom_help = true;
        driver
    }

    /// `--help`'s description.
    pub fn about(mut self, about: impl Into<String>) -> Driver {
        self.definition.about = Some(about.into());
        self
    }

    /// The text after `--help`'s options.
    pub fn after_help(mut self, text: impl Into<String>) -> Driver {
        self.definition.after_help = Some(text.into());
        self.custom_help = true;
        self
    }

    /// What `--version` prints (e.g. `env!("CARGO_PKG_VERSION")`); by default
    /// this library's version and commit.
    pub fn version(mut self, version: impl Into<String>) -> Driver {
        self.definition.version = Some(version.into());
        self
    }

    /// Adds a stack (the order is `--help`'s).
    pub fn stack(mut self, stack: impl Stack + 'static) -> Driver {
        self.definition.stacks.push(Arc::new(stack));
        self
    }

    /// Adds stacks.
    pub fn stacks(mut self, stacks: impl IntoIterator<Item = Arc<dyn Stack>>) -> Driver {
        self.definition.stacks.extend(stacks);
        self
    }

    /// Registers a provider of the program's own under `name`: every engine
    /// the driver runs has it, beside the built-in ones a stack uses.
    pub fn provider(mut self, name: ProviderName, provider: Arc<dyn Provider>) -> Driver {
        self.definition.providers.push((name, provider));
        self
    }

    pub(crate) fn into_program(mut self) -> Program {
        if !self.custom_help {
            let first = self
                .definition
                .stacks
                .first()
                .map_or_else(|| "STACK".to_owned(), |s| s.name().to_owned());
            self.definition.after_help = Some(generic_after_help(&self.definition.name, &first));
            if self.definition.about.is_none() {
                self.definition.about = Some(format!(
                    "The stacks of {}, planned and applied by the preview-envs engine.",
                    self.definition.name
                ));
            }
        }
        Program::new(self.definition)
    }

    /// The command line it parses (for completions, docs and tests).
    pub fn command(self) -> clap::Command {
        self.into_program().command()
    }

    /// Parses the process's arguments and runs the command; the exit code
    /// says how it went (0 done, 1 error, 2 usage error; `refresh` 3 on drift,
    /// `preview --detailed-exitcode` 2 with changes). Must run inside a tokio
    /// runtime.
    pub async fn run(self) -> ExitCode {
        self.run_from(std::env::args_os()).await
    }

    /// As [`Driver::run`], with these arguments (the first is the program's
    /// name).
    pub async fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let program = self.into_program();
        if let Err(error) = program.check() {
            return failure::report(&error, false);
        }
        let mut command = program.command();
        let parsed = command
            .try_get_matches_from_mut(args)
            .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches));
        let mut cli = match parsed {
            Ok(cli) => cli,
            // Help, version and usage errors, printed and exited as clap does.
            Err(error) => error.format(&mut command).exit(),
        };
        cli.global.program = program;
        // The libraries' errors name no flag: the driver words the way out
        // (the first program to register its wording in a process keeps it).
        preview_core::remedy::install(crate::hints::remedy);
        terminal::init(&cli.global);
        let json = cli.global.json;
        match run::run(cli).await {
            Ok(code) => code,
            Err(error) => failure::report(&error, json),
        }
    }
}
