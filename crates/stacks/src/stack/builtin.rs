//! The five built-in stacks as [`Stack`]s: [`Local`], [`PreviewBase`],
//! [`PreviewPr`], [`Production`] and [`PreviewCluster`] ([`all`], in the order
//! the `stacks` binary lists them).
//!
//! Each reads its configuration with [`StackConfig::load`] (`<config
//! dir>/<stack>.yaml`, environment overrides) and builds with [`super::build`],
//! the composition of its own module; this file only states what the driver
//! needs to know of them: the parameters they take, the stacks they read, the
//! providers they use, and the namespace and kubeconfig lifetime the providers
//! are wired with.
//!
//! ```
//! use stacks::Stack;
//! use stacks::stack::builtin;
//!
//! let all = builtin::all();
//! let names: Vec<&str> = all.iter().map(|s| s.name()).collect();
//! assert_eq!(names, ["local", "preview-base", "preview-pr", "production", "preview-cluster"]);
//! assert!(builtin::PreviewPr.takes_pr());
//! assert_eq!(builtin::PreviewPr.references(), ["preview-base"]);
//! ```

use std::sync::Arc;

use preview_core::ProviderName;

use crate::app_spec::App;
use crate::config::StackConfig;
use crate::definition::{ConfigSource, ProviderSettings, Stack, StackInput};
use crate::settings::Settings;
use crate::{References, StackBuild, StackError, StackKind, StackRequest};

/// Every built-in stack, in the order the `stacks` binary lists them.
pub fn all() -> Vec<Arc<dyn Stack>> {
    vec![
        Arc::new(Local),
        Arc::new(PreviewBase),
        Arc::new(PreviewPr),
        Arc::new(Production),
        Arc::new(PreviewCluster),
    ]
}

/// The stacks' configuration, read for `kind`.
fn configure(kind: StackKind, source: &ConfigSource<'_>) -> Result<Settings, StackError> {
    let mut config = StackConfig::load(source.dir, kind)?;
    if let (true, Some(app)) = (crate::uses_app(kind), source.app) {
        config = config.with_app(App::discover(app.explicit, app.work_dir, app.manifests)?);
    }
    Ok(Settings::new(config.fingerprint(), config))
}

/// Builds `kind` from the input, through the stack's own module.
fn build(kind: StackKind, input: &StackInput<'_>) -> Result<StackBuild, StackError> {
    let config = input.settings.get::<StackConfig>().ok_or_else(|| {
        StackError::Invalid(format!(
            "the {} stack needs its configuration (config/{}.yaml), read by Stack::configure",
            kind.as_str(),
            kind.as_str()
        ))
    })?;
    let request = StackRequest {
        kind,
        pr: input.params.pr.clone(),
        images: input.params.images.clone(),
        db_role_password: input.params.generated_password.clone(),
    };
    crate::build(&request, config, input.references, input.secrets)
}

/// The providers a built-in stack is wired with: every stack on a cluster
/// gets the Kubernetes and PostgreSQL providers and, with a token, the
/// DigitalOcean one; `preview-cluster` the DigitalOcean one alone.
fn providers(kind: StackKind) -> Vec<ProviderName> {
    if crate::uses_kubernetes(kind) {
        vec![
            ProviderName::KUBERNETES,
            ProviderName::POSTGRES,
            ProviderName::DIGITALOCEAN,
        ]
    } else {
        vec![ProviderName::DIGITALOCEAN]
    }
}

fn provider_settings(
    kind: StackKind,
    settings: Option<&Settings>,
    references: &References,
) -> ProviderSettings {
    let config = settings.and_then(Settings::get::<StackConfig>);
    ProviderSettings {
        database_namespace: crate::database_server_namespace(kind, config, references),
        kubeconfig_expiry: config
            .and_then(|c| c.cluster.as_ref())
            .map(|c| c.kubeconfig_expiry),
    }
}

/// Implements [`Stack`] for a built-in stack from its kind and help line.
macro_rules! builtin {
    ($(#[$doc:meta])* $ty:ident, $kind:expr, $about:literal $(, $extra:item)*) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $ty;

        impl Stack for $ty {
            fn name(&self) -> &str {
                $kind.as_str()
            }

            fn about(&self) -> &str {
                $about
            }

            fn references(&self) -> Vec<String> {
                crate::references_of($kind)
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            }

            fn providers(&self) -> Vec<ProviderName> {
                providers($kind)
            }

            fn deploys_app_spec(&self) -> bool {
                crate::uses_app($kind)
            }

            fn configure(&self, source: &ConfigSource<'_>) -> Result<Settings, StackError> {
                configure($kind, source)
            }

            fn provider_settings(
                &self,
                settings: Option<&Settings>,
                references: &References,
            ) -> ProviderSettings {
                provider_settings($kind, settings, references)
            }

            fn build(&self, input: &StackInput<'_>) -> Result<StackBuild, StackError> {
                build($kind, input)
            }

            $($extra)*
        }
    };
}

builtin!(
    /// `local`: everything on a local cluster ([`super::local`]).
    Local,
    StackKind::Local,
    "Everything on a local cluster, locally built images, self-signed TLS"
);

builtin!(
    /// `preview-base`: the persistent shared base ([`super::preview_base`]).
    PreviewBase,
    StackKind::PreviewBase,
    "The persistent shared base: PostgreSQL, Gateway API, cert-manager, wildcard TLS"
);

builtin!(
    /// `preview-pr --pr N`: one pull request's environment ([`super::preview_pr`]);
    /// its database role's password is generated by the driver and sealed in state,
    /// and a successful `up` records its images as tested.
    PreviewPr,
    StackKind::PreviewPr,
    "One pull request's environment (needs --pr)",
    fn takes_pr(&self) -> bool {
        true
    },
    fn generated_password(&self) -> Option<&str> {
        Some(super::preview_pr::DB_ROLE_PASSWORD_OUTPUT)
    },
    fn records_tested_images(&self) -> bool {
        true
    }
);

builtin!(
    /// `production` ([`super::production`]).
    Production,
    StackKind::Production,
    "Production: 2+ replicas, promoted digests, Let's Encrypt"
);

builtin!(
    /// `preview-cluster`: the DigitalOcean Kubernetes cluster
    /// ([`super::preview_cluster`]); no Kubernetes connection.
    PreviewCluster,
    StackKind::PreviewCluster,
    "The DigitalOcean Kubernetes cluster the previews run on (optional; DigitalOcean API only, no kubeconfig needed)"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_instances_are_the_kinds() {
        for (stack, kind) in all().iter().zip([
            StackKind::Local,
            StackKind::PreviewBase,
            StackKind::PreviewPr,
            StackKind::Production,
            StackKind::PreviewCluster,
        ]) {
            assert_eq!(stack.name(), kind.as_str());
            assert_eq!(
                stack.providers().contains(&ProviderName::KUBERNETES),
                crate::uses_kubernetes(kind)
            );
        }
        let pr = crate::PrNumber::parse("12").expect("pr");
        assert_eq!(
            PreviewPr.instance_name(Some(&pr)).expect("name"),
            "preview-pr-12"
        );
        let missing = PreviewPr.instance_name(None).expect_err("no pr");
        assert_eq!(
            missing.to_string(),
            "missing --pr: preview-pr needs the pull-request number, e.g. --pr 123"
        );
        assert_eq!(
            PreviewBase.instance_name(None).expect("name"),
            "preview-base"
        );
    }

    #[test]
    fn a_build_without_its_configuration_is_an_error_naming_the_stack() {
        let (params, settings, refs) = (
            crate::StackParams::default(),
            Settings::none(),
            References::new(),
        );
        let input = StackInput {
            instance: "local",
            params: &params,
            settings: &settings,
            references: &refs,
            secrets: &crate::EnvSecrets,
        };
        let error = Local.build(&input).expect_err("no config");
        assert!(
            error
                .to_string()
                .contains("the local stack needs its configuration")
        );
    }
}
