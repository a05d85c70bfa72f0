//! The built-in stacks through the [`Stack`] trait build exactly what
//! [`stacks::build`] builds (so the snapshots of `snapshots.rs` hold for the
//! driver's path too), and read their configuration as the binary did.

mod support;

use stacks::config::StackConfig;
use stacks::stack::builtin;
use stacks::{References, Settings, Stack, StackInput, StackKind, StackParams};
use support::{
    FakeSecrets, ROLE_PASSWORD, config, config_dir, manifest, references, request, stack,
};

/// The trait's input for the same run as `support::request(kind, …)`.
fn params(kind: StackKind, pr: Option<&str>) -> StackParams {
    let request = request(kind, pr);
    StackParams {
        pr: request.pr,
        images: request.images,
        generated_password: (kind == StackKind::PreviewPr)
            .then(|| preview_core::secret::SecretString::new(ROLE_PASSWORD)),
    }
}

#[test]
fn every_builtin_stack_builds_what_stacks_build_builds() {
    let kinds = [
        StackKind::Local,
        StackKind::PreviewBase,
        StackKind::PreviewPr,
        StackKind::Production,
        StackKind::PreviewCluster,
    ];
    let all = builtin::all();
    assert_eq!(all.len(), kinds.len());
    for (stack_def, kind) in all.iter().zip(kinds) {
        let pr = (kind == StackKind::PreviewPr).then_some("123");
        let params = params(kind, pr);
        let config = config(kind);
        let settings = Settings::new(config.fingerprint(), config);
        let refs = if kind == StackKind::PreviewPr {
            references()
        } else {
            References::new()
        };
        let instance = stack_def
            .instance_name(params.pr.as_ref())
            .expect("instance name");
        let input = StackInput {
            instance: &instance,
            params: &params,
            settings: &settings,
            references: &refs,
            secrets: &FakeSecrets::all(),
        };
        let built = stack_def.build(&input).expect("builds");
        assert_eq!(built.name, instance);
        assert_eq!(
            manifest(&built),
            manifest(&stack(kind)),
            "{} through the Stack trait",
            kind.as_str()
        );
    }
}

#[test]
fn configure_reads_the_stacks_config_file() {
    for stack_def in builtin::all() {
        let kind = match stack_def.name() {
            "local" => StackKind::Local,
            "preview-base" => StackKind::PreviewBase,
            "preview-pr" => StackKind::PreviewPr,
            "production" => StackKind::Production,
            _ => StackKind::PreviewCluster,
        };
        let dir = config_dir();
        let source = stacks::ConfigSource {
            dir: &dir,
            app: None,
        };
        let settings = stack_def.configure(&source).expect("configure");
        let loaded = StackConfig::load(&config_dir(), kind).expect("load");
        assert_eq!(settings.fingerprint(), loaded.fingerprint());
        assert!(settings.get::<StackConfig>().is_some());
    }
    let missing = builtin::PreviewPr
        .configure(&stacks::ConfigSource {
            dir: std::path::Path::new("/nonexistent-config-dir"),
            app: None,
        })
        .expect_err("preview-pr needs its domain");
    assert!(missing.to_string().contains("domain"), "{missing}");
}

#[test]
fn provider_settings_are_the_database_namespace_and_kubeconfig_expiry() {
    let base = config(StackKind::PreviewBase);
    let settings = Settings::new(base.fingerprint(), base);
    let wiring = builtin::PreviewBase.provider_settings(Some(&settings), &References::new());
    assert_eq!(wiring.database_namespace.as_deref(), Some("default"));
    let pr = builtin::PreviewPr.provider_settings(None, &references());
    assert_eq!(pr.database_namespace.as_deref(), Some("default"));
    let cluster = config(StackKind::PreviewCluster);
    let settings = Settings::new(cluster.fingerprint(), cluster);
    let wiring = builtin::PreviewCluster.provider_settings(Some(&settings), &References::new());
    assert!(wiring.kubeconfig_expiry.is_some());
    assert_eq!(wiring.database_namespace, None);
}
