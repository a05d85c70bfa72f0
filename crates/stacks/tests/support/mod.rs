//! Fixtures for the build-level tests: the repository's config files, fake
//! secrets with obviously fake canary values, pinned test images, and a
//! serialisable view of a built stack for snapshots.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use preview_core::secret::SecretString;
use serde_json::{Value, json};
use stacks::config::StackConfig;
use stacks::{
    EnvSecrets, PrNumber, References, SecretSource, StackBuild, StackError, StackKind, StackRequest,
};

/// Canary `DB_PASSWORD`: must never appear in plain text in any rendering.
pub const DB_PASSWORD: &str = "canary-db-password-NOT-REAL";
/// Canary `DIGITALOCEAN_TOKEN`.
pub const DO_TOKEN: &str = "canary-do-token-NOT-REAL";
/// Canary `REGISTRY_TOKEN`.
pub const REGISTRY_TOKEN: &str = "canary-registry-token-NOT-REAL";

/// The web image of the tests, pinned by digest.
pub const WEB_IMAGE: &str = "ghcr.io/aphiria/aphiria.com-web@sha256:1111111111111111111111111111111111111111111111111111111111111111";
/// The API image of the tests, pinned by digest.
pub const API_IMAGE: &str = "ghcr.io/aphiria/aphiria.com-api@sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Secrets from a map; hints as the real environment source gives them.
#[derive(Clone, Debug, Default)]
pub struct FakeSecrets(pub BTreeMap<String, String>);

impl FakeSecrets {
    /// Every secret a stack may ask for, with canary values.
    pub fn all() -> Self {
        FakeSecrets(BTreeMap::from([
            ("DB_PASSWORD".to_owned(), DB_PASSWORD.to_owned()),
            ("DIGITALOCEAN_TOKEN".to_owned(), DO_TOKEN.to_owned()),
            ("REGISTRY_TOKEN".to_owned(), REGISTRY_TOKEN.to_owned()),
        ]))
    }

    /// [`FakeSecrets::all`] without `name`.
    pub fn without(name: &str) -> Self {
        let mut all = FakeSecrets::all();
        all.0.remove(name);
        all
    }
}

impl SecretSource for FakeSecrets {
    fn get(&self, name: &str) -> Option<SecretString> {
        self.0.get(name).map(SecretString::new)
    }

    fn hint(&self, name: &str) -> String {
        EnvSecrets.hint(name)
    }
}

/// The repository's `config/` directory.
pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// The repository's config for `kind`, without environment overrides, with the
/// origin spelled `config/<stack>.yaml` (stable in snapshots and messages).
pub fn config(kind: StackKind) -> StackConfig {
    let path = config_dir().join(format!("{}.yaml", kind.as_str()));
    let text = std::fs::read_to_string(&path).expect("config file");
    StackConfig::from_yaml(&text, kind).expect("the repository's config resolves")
}

/// `text` resolved for `kind` (as `config/<stack>.yaml`).
pub fn config_from(text: &str, kind: StackKind) -> Result<StackConfig, StackError> {
    StackConfig::from_yaml(text, kind)
}

/// The request for `kind` with the test images (and `pr` for preview-pr).
pub fn request(kind: StackKind, pr: Option<&str>) -> StackRequest {
    StackRequest {
        kind,
        pr: pr.map(|p| PrNumber::parse(p).expect("valid PR number")),
        images: if kind != StackKind::Local || pr.is_some() {
            [("web", WEB_IMAGE), ("api", API_IMAGE)]
                .into_iter()
                .map(|(key, image)| (key.to_owned(), image.to_owned()))
                .collect()
        } else {
            Default::default()
        },
        // What the binary generates and seals; fixed here so builds are comparable.
        db_role_password: (kind == StackKind::PreviewPr)
            .then(|| preview_core::secret::SecretString::new(ROLE_PASSWORD)),
    }
}

/// The database role password the test requests carry (a canary: it must
/// appear only in the preview's Secret).
pub const ROLE_PASSWORD: &str = "role-password-canary-3d9b";

/// `preview-base` built from the repository's config.
pub fn base() -> StackBuild {
    build_with(
        &request(StackKind::PreviewBase, None),
        &config(StackKind::PreviewBase),
        &References::new(),
        &FakeSecrets::all(),
    )
    .expect("preview-base builds")
}

/// References holding the outputs of [`base`].
pub fn references() -> References {
    References::from([("preview-base".to_owned(), base().outputs)])
}

/// Builds with explicit inputs.
pub fn build_with(
    request: &StackRequest,
    config: &StackConfig,
    references: &References,
    secrets: &dyn SecretSource,
) -> Result<StackBuild, StackError> {
    stacks::build(request, config, references, secrets)
}

/// `preview-pr` for `pr` from the repository's config and base.
pub fn preview(pr: &str) -> StackBuild {
    build_with(
        &request(StackKind::PreviewPr, Some(pr)),
        &config(StackKind::PreviewPr),
        &references(),
        &FakeSecrets::all(),
    )
    .expect("preview-pr builds")
}

/// Any stack from the repository's config (preview-pr as PR 123).
pub fn stack(kind: StackKind) -> StackBuild {
    match kind {
        StackKind::PreviewPr => preview("123"),
        StackKind::PreviewBase => base(),
        _ => build_with(
            &request(kind, None),
            &config(kind),
            &References::new(),
            &FakeSecrets::all(),
        )
        .expect("stack builds"),
    }
}

/// All four stacks.
pub const ALL: [StackKind; 4] = [
    StackKind::Local,
    StackKind::PreviewBase,
    StackKind::PreviewPr,
    StackKind::Production,
];

/// The resource with display id `id` (`Deployment preview-pr-123/api`).
pub fn find<'a>(build: &'a StackBuild, id: &str) -> &'a preview_core::Resource {
    build
        .resources
        .iter()
        .find(|r| r.id.to_string() == id)
        .unwrap_or_else(|| panic!("no {id} in {}", build.name))
}

/// A serialisable view of a whole build: name, policy, outputs, and every
/// resource with its explicit dependencies and options.
pub fn manifest(build: &StackBuild) -> Value {
    let resources: Vec<Value> = build
        .resources
        .iter()
        .map(|r| {
            let mut entry = serde_json::Map::new();
            entry.insert("id".into(), json!(r.id.to_string()));
            if !r.depends_on.is_empty() {
                let deps: Vec<String> = r.depends_on.iter().map(ToString::to_string).collect();
                entry.insert("dependsOn".into(), json!(deps));
            }
            if r.options != preview_core::ResourceOptions::default() {
                entry.insert("options".into(), json!(r.options));
            }
            entry.insert("body".into(), r.body.clone());
            Value::Object(entry)
        })
        .collect();
    json!({
        "name": build.name,
        "policy": build.policy,
        "outputs": build.outputs,
        "resources": resources,
    })
}
