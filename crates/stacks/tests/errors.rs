//! Bad input at build level: each case gives one clear error naming the flag,
//! secret, referenced stack or config key to fix — and no resources (building
//! is pure, so nothing can have been applied).

mod support;

use stacks::config::StackConfig;
use stacks::{PrNumber, References, StackError, StackKind, StackRequest};
use support::{API_IMAGE, FakeSecrets, build_with, config, config_from, references, request};

fn preview_with(request: &StackRequest) -> Result<stacks::StackBuild, StackError> {
    build_with(
        request,
        &config(StackKind::PreviewPr),
        &references(),
        &FakeSecrets::all(),
    )
}

fn message(result: Result<stacks::StackBuild, StackError>) -> String {
    match result {
        Ok(build) => panic!("{} built, expected an error", build.name),
        Err(err) => err.to_string(),
    }
}

#[test]
fn missing_pr() {
    let mut req = request(StackKind::PreviewPr, Some("123"));
    req.pr = None;
    let err = preview_with(&req).expect_err("no --pr");
    assert!(
        matches!(&err, StackError::Missing { what, .. } if what == "--pr"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "missing --pr: preview-pr needs the pull-request number, e.g. --pr 123"
    );
}

#[test]
fn bad_pr_numbers_are_rejected_before_building() {
    for (raw, expected) in [
        ("0", "--pr 0: pull-request numbers start at 1"),
        ("-1", "--pr -1: a pull-request number is positive (1, 2, …)"),
        (
            "abc",
            "--pr abc: not a number; pass the pull-request number, e.g. --pr 123",
        ),
    ] {
        assert_eq!(PrNumber::parse(raw).expect_err(raw), expected);
    }
}

#[test]
fn pr_number_too_long_for_a_name() {
    let pr = "1".repeat(60);
    let err = preview_with(&request(StackKind::PreviewPr, Some(&pr))).expect_err("too long");
    assert_eq!(
        err.to_string(),
        format!(
            "--pr {pr}: the namespace `preview-pr-{pr}` would be 71 characters long; at most 63 are allowed (PR numbers of up to 44 digits fit)"
        )
    );
    // The binding limit is the Secret's name (also a label value).
    let pr = "9".repeat(45);
    let err = preview_with(&request(StackKind::PreviewPr, Some(&pr))).expect_err("45 digits");
    assert_eq!(
        err.to_string(),
        format!(
            "--pr {pr}: the Secret name `env-var-secrets-pr-{pr}` would be 64 characters long; at most 63 are allowed (PR numbers of up to 44 digits fit)"
        )
    );
    // The longest number that fits builds.
    let pr = "9".repeat(44);
    preview_with(&request(StackKind::PreviewPr, Some(&pr))).expect("44 digits fit");
}

#[test]
fn a_role_name_too_long_is_refused_naming_it() {
    // A long database prefix makes the database and its role the binding limit.
    let text = std::fs::read_to_string(support::config_dir().join("preview-pr.yaml"))
        .expect("config")
        .replace(
            "namePrefix: aphiria_pr_",
            "namePrefix: aphiria_previews_with_a_rather_long_database_prefix_pr_",
        );
    let config = config_from(&text, StackKind::PreviewPr).expect("config");
    let pr = "1234567890";
    let err = build_with(
        &request(StackKind::PreviewPr, Some(pr)),
        &config,
        &references(),
        &FakeSecrets::all(),
    )
    .expect_err("too long");
    assert_eq!(
        err.to_string(),
        format!(
            "--pr {pr}: the PostgreSQL database and role name `aphiria_previews_with_a_rather_long_database_prefix_pr_{pr}` would be 65 characters long; at most 63 are allowed (PR numbers of up to 8 digits fit)"
        )
    );
}

#[test]
fn a_bad_connection_limit_names_the_key() {
    let text = std::fs::read_to_string(support::config_dir().join("preview-pr.yaml"))
        .expect("config")
        .replace(
            "namePrefix: aphiria_pr_",
            "namePrefix: aphiria_pr_\n  connectionLimit: 0",
        );
    let err = config_from(&text, StackKind::PreviewPr).expect_err("0");
    assert!(
        err.to_string().contains("`database.connectionLimit`")
            && err.to_string().contains("1 to 1000"),
        "{err}"
    );
}

#[test]
fn missing_images() {
    let mut req = request(StackKind::PreviewPr, Some("123"));
    req.images.remove("web");
    assert_eq!(
        message(preview_with(&req)),
        "missing --web-image: pass the web image pinned by digest: --web-image NAME@sha256:<64 hex> (or set PREVIEW_WEB_IMAGE)"
    );
    let mut req = request(StackKind::PreviewPr, Some("123"));
    req.images.remove("api");
    assert_eq!(
        message(preview_with(&req)),
        "missing --api-image: pass the API image pinned by digest: --api-image NAME@sha256:<64 hex> (or set PREVIEW_API_IMAGE)"
    );
}

#[test]
fn images_not_pinned_by_a_full_lowercase_digest() {
    let upper = format!("ghcr.io/aphiria/web@sha256:{}", "A".repeat(64));
    for (image, expected) in [
        (
            "ghcr.io/aphiria/web:1.2.3".to_owned(),
            "--web-image ghcr.io/aphiria/web:1.2.3: not pinned by digest; pass NAME@sha256:<64 hex> (the digest your build printed), not a tag".to_owned(),
        ),
        (
            "ghcr.io/aphiria/web@sha256:abc123".to_owned(),
            "--web-image ghcr.io/aphiria/web@sha256:abc123: digest has 6 hex characters, expected 64".to_owned(),
        ),
        (
            upper.clone(),
            format!("--web-image {upper}: digest must be lowercase hex"),
        ),
    ] {
        let mut req = request(StackKind::PreviewPr, Some("123"));
        req.images.insert("web".into(), image.clone());
        let err = preview_with(&req).expect_err(&image);
        assert!(matches!(err, StackError::Invalid(_)), "{err:?}");
        assert_eq!(err.to_string(), expected);
    }
    // The same checks apply to production.
    let mut req = request(StackKind::Production, None);
    req.images
        .insert("api".into(), "ghcr.io/aphiria/api:latest".into());
    let err = build_with(
        &req,
        &config(StackKind::Production),
        &References::new(),
        &FakeSecrets::all(),
    )
    .expect_err("tag");
    assert!(
        err.to_string()
            .starts_with("--api-image ghcr.io/aphiria/api:latest: not pinned by digest"),
        "{err}"
    );
}

#[test]
fn missing_secret() {
    let err = build_with(
        &request(StackKind::PreviewBase, None),
        &config(StackKind::PreviewBase),
        &References::new(),
        &FakeSecrets::without("DB_PASSWORD"),
    )
    .expect_err("no password");
    assert!(
        matches!(&err, StackError::Missing { what, .. } if what == "secret DB_PASSWORD"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "missing secret DB_PASSWORD: set PREVIEW_DB_PASSWORD, or PREVIEW_DB_PASSWORD_FILE to a file containing it"
    );
    // preview-base with Let's Encrypt needs the DNS-01 token too.
    let err = build_with(
        &request(StackKind::PreviewBase, None),
        &config(StackKind::PreviewBase),
        &References::new(),
        &FakeSecrets::without("DIGITALOCEAN_TOKEN"),
    )
    .expect_err("no token");
    assert_eq!(
        err.to_string(),
        "missing secret DIGITALOCEAN_TOKEN: set PREVIEW_DIGITALOCEAN_TOKEN, or PREVIEW_DIGITALOCEAN_TOKEN_FILE to a file containing it"
    );
}

#[test]
fn base_stack_never_deployed() {
    let err = build_with(
        &request(StackKind::PreviewPr, Some("123")),
        &config(StackKind::PreviewPr),
        &References::new(),
        &FakeSecrets::all(),
    )
    .expect_err("no base");
    assert_eq!(
        err.to_string(),
        "missing stack preview-base outputs: run `stacks up preview-base` first (with the same --backend)"
    );
}

#[test]
fn base_outputs_incomplete_or_for_another_domain() {
    let mut refs = references();
    let base = refs.get_mut("preview-base").expect("base");
    base.remove("gatewayName");
    let err = build_with(
        &request(StackKind::PreviewPr, Some("123")),
        &config(StackKind::PreviewPr),
        &refs,
        &FakeSecrets::all(),
    )
    .expect_err("incomplete");
    assert_eq!(
        err.to_string(),
        "missing output `gatewayName` of stack preview-base: the recorded preview-base outputs predate this version; run `stacks up preview-base` again"
    );

    let mut refs = references();
    refs.get_mut("preview-base").expect("base").insert(
        "domain".into(),
        preview_core::state::Output::Plain(serde_json::json!("example.org")),
    );
    let err = build_with(
        &request(StackKind::PreviewPr, Some("123")),
        &config(StackKind::PreviewPr),
        &refs,
        &FakeSecrets::all(),
    )
    .expect_err("other domain");
    assert!(
        err.to_string().starts_with(
            "config key `domain` in config/preview-pr.yaml is aphiria.com, but preview-base serves example.org"
        ),
        "{err}"
    );
}

#[test]
fn missing_required_config_key() {
    let text = std::fs::read_to_string(support::config_dir().join("production.yaml"))
        .expect("production.yaml");
    let without_domain: String = text
        .lines()
        .filter(|l| !l.starts_with("domain:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let err = config_from(&without_domain, StackKind::Production).expect_err("no domain");
    assert!(
        matches!(&err, StackError::Missing { what, .. } if what == "config key `domain` in config/production.yaml"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "missing config key `domain` in config/production.yaml: add `domain: aphiria.com` to config/production.yaml, or set PREVIEW_DOMAIN"
    );

    // No file at all: only `local` has a default for every required key.
    let empty = tempfile::tempdir().expect("tempdir");
    let err = StackConfig::load_with_env(empty.path(), StackKind::Production, &|_| None)
        .expect_err("no file");
    let file = empty.path().join("production.yaml").display().to_string();
    assert_eq!(
        err.to_string(),
        format!(
            "missing config key `domain` in {file}: {file} does not exist; create it with `domain: aphiria.com` (the repository's config/ directory has a file for every stack), or set PREVIEW_DOMAIN"
        )
    );
    StackConfig::load_with_env(empty.path(), StackKind::Local, &|_| None)
        .expect("local has defaults for everything");
}

#[test]
fn unknown_config_key() {
    let err = config_from("domian: aphiria.com\n", StackKind::PreviewPr).expect_err("typo");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "config/preview-pr.yaml: unknown field `domian`, expected one of `domain`"
        ),
        "{text}"
    );
    let err = config_from(
        "domain: aphiria.com\ndatabase:\n  usr: aphiria\n",
        StackKind::PreviewPr,
    )
    .expect_err("nested typo");
    assert!(
        err.to_string()
            .contains("unknown field `usr`, expected one of `user`"),
        "{err}"
    );
}

#[test]
fn config_key_the_stack_does_not_read() {
    let err = config_from(
        "domain: aphiria.com\nimages: {web: x}\n",
        StackKind::Production,
    )
    .expect_err("images in production");
    assert_eq!(
        err.to_string(),
        "config key `images` in config/production.yaml: the production stack does not read it (read by: local); remove it"
    );
}

#[test]
fn resources_must_be_complete_under_a_quota() {
    let text = std::fs::read_to_string(support::config_dir().join("preview-pr.yaml"))
        .expect("preview-pr.yaml");
    let broken = text.replace(
        "    limits: {cpu: 400m, memory: 512Mi, ephemeralStorage: 1Gi}\n",
        "    limits: {memory: 512Mi, ephemeralStorage: 1Gi}\n",
    );
    assert_ne!(broken, text, "the fixture edit applies");
    // Checked against the app's containers when the stack is built.
    let config = config_from(&broken, StackKind::PreviewPr).expect("resolves");
    let err = build_with(
        &request(StackKind::PreviewPr, Some("123")),
        &config,
        &References::new(),
        &FakeSecrets::all(),
    )
    .expect_err("no cpu limit");
    assert_eq!(
        err.to_string(),
        "missing config key `resources.apiPhp.limits.cpu` in config/preview-pr.yaml: the namespace has a ResourceQuota (cpu 2, memory 4Gi, ephemeral storage 4Gi, pods 5), so every container needs cpu, memory and ephemeral-storage requests and limits; add `resources.apiPhp.limits.cpu: …` to config/preview-pr.yaml"
    );
}

#[test]
fn bad_config_values() {
    let text = std::fs::read_to_string(support::config_dir().join("preview-pr.yaml"))
        .expect("preview-pr.yaml");
    let cases = [
        (
            ("  cpu: \"2\"\n", "  cpu: 2 cores\n"),
            "config key `quota.cpu` in config/preview-pr.yaml: \"2 cores\" is not a Kubernetes quantity (e.g. 250m, 1, 512Mi, 4Gi)",
        ),
        (
            ("domain: aphiria.com", "domain: Aphiria.com"),
            "config key `domain` in config/preview-pr.yaml: \"Aphiria.com\" is not a lowercase DNS name such as aphiria.com",
        ),
        (
            ("app: aphiria\n", "app: aphiria\nnginxImage: nginx:1.27\n"),
            "config key `nginxImage` in config/preview-pr.yaml: nginxImage nginx:1.27: not pinned by digest; pass NAME@sha256:<64 hex> (the digest your build printed), not a tag",
        ),
    ];
    for ((from, to), expected) in cases {
        let broken = text.replacen(from, to, 1);
        assert_ne!(broken, text, "{from}");
        assert_eq!(
            config_from(&broken, StackKind::PreviewPr)
                .expect_err(to)
                .to_string(),
            expected
        );
    }
    let err = config_from(
        &std::fs::read_to_string(support::config_dir().join("production.yaml"))
            .expect("file")
            .replace("replicas: 2", "replicas: 1"),
        StackKind::Production,
    )
    .expect_err("one replica");
    assert_eq!(
        err.to_string(),
        "config key `replicas` in config/production.yaml: 1: the production stack needs at least 2"
    );
}

#[test]
fn config_for_another_stack() {
    let err = build_with(
        &request(StackKind::PreviewPr, Some("123")),
        &config(StackKind::Production),
        &references(),
        &FakeSecrets::all(),
    )
    .expect_err("wrong config");
    assert_eq!(
        err.to_string(),
        "the configuration from config/production.yaml was resolved for the production stack, not preview-pr"
    );
}

#[test]
fn images_are_checked_before_secrets_and_references() {
    // Several things wrong at once: the flag is reported first.
    let req = StackRequest {
        kind: StackKind::PreviewPr,
        pr: Some(PrNumber::parse("5").expect("pr")),
        images: [("web", "web:latest"), ("api", API_IMAGE)]
            .into_iter()
            .map(|(key, image)| (key.to_owned(), image.to_owned()))
            .collect(),
        db_role_password: None,
    };
    let err = build_with(
        &req,
        &config(StackKind::PreviewPr),
        &References::new(),
        &FakeSecrets::default(),
    )
    .expect_err("bad");
    assert!(
        err.to_string().starts_with("--web-image web:latest"),
        "{err}"
    );
}

#[test]
fn images_outside_the_allowed_prefixes_are_refused_before_anything_else() {
    const ALLOWED: &str =
        "ghcr.io/aphiria/, docker.io/nginxinc/nginx-unprivileged, docker.io/library/postgres";
    let digest = "@sha256:3333333333333333333333333333333333333333333333333333333333333333";
    // From a flag, naming the image and the allowed prefixes; before secrets and references.
    for (flag, image) in [
        ("--web-image", format!("docker.io/attacker/web{digest}")),
        ("--api-image", format!("ghcr.io/aphiria-evil/api{digest}")),
        // A prefix matches whole path segments only.
        (
            "--web-image",
            format!("docker.io/nginxinc/nginx-unprivileged-x{digest}"),
        ),
    ] {
        let mut req = request(StackKind::PreviewPr, Some("123"));
        if flag == "--web-image" {
            req.images.insert("web".into(), image.clone());
        } else {
            req.images.insert("api".into(), image.clone());
        }
        let err = build_with(
            &req,
            &config(StackKind::PreviewPr),
            &References::new(),
            &FakeSecrets::default(),
        )
        .expect_err(&image);
        assert_eq!(
            err.to_string(),
            format!(
                "{flag} {image}: not an allowed image; only images from {ALLOWED} may run (config key `allowedImages` in config/preview-pr.yaml)"
            )
        );
    }
    // Production, the same.
    let mut req = request(StackKind::Production, None);
    req.images
        .insert("web".into(), format!("registry.example/web{digest}"));
    let err = build_with(
        &req,
        &config(StackKind::Production),
        &References::new(),
        &FakeSecrets::all(),
    )
    .expect_err("production");
    assert!(
        err.to_string().starts_with(&format!(
            "--web-image registry.example/web{digest}: not an allowed image; only images from {ALLOWED} may run"
        )),
        "{err}"
    );
    // From the config file, when the file is read.
    let text = std::fs::read_to_string(support::config_dir().join("preview-pr.yaml"))
        .expect("preview-pr.yaml");
    let nginx = format!("docker.io/library/nginx:1.27-alpine{digest}");
    let err = config_from(
        &format!("{text}\nnginxImage: {nginx}\n"),
        StackKind::PreviewPr,
    )
    .expect_err("upstream nginx");
    assert_eq!(
        err.to_string(),
        format!(
            "config key `nginxImage` in config/preview-pr.yaml: {nginx}: not an allowed image; only images from {ALLOWED} may run (config key `allowedImages` in config/preview-pr.yaml)"
        )
    );
    // Listing it allows it; an empty list or a malformed entry is refused.
    let allowed = text.replace(
        "  - docker.io/library/postgres\n",
        "  - docker.io/library/postgres\n  - docker.io/library/nginx\n",
    );
    assert_ne!(allowed, text);
    let config = config_from(
        &format!("{allowed}\nnginxImage: {nginx}\n"),
        StackKind::PreviewPr,
    )
    .expect("allowed");
    assert_eq!(config.nginx_image.as_deref(), Some(nginx.as_str()));
    for (list, says) in [
        ("allowedImages: []", "lists no prefix"),
        (
            "allowedImages: [\"ghcr.io/a b/\"]",
            "is not an image prefix",
        ),
    ] {
        let edited = text.replace(
            "allowedImages:\n  - ghcr.io/aphiria/\n  - docker.io/nginxinc/nginx-unprivileged\n  - docker.io/library/postgres\n",
            &format!("{list}\n"),
        );
        assert_ne!(edited, text);
        let err = config_from(&edited, StackKind::PreviewPr)
            .expect_err(list)
            .to_string();
        assert!(
            err.starts_with("config key `allowedImages` in config/preview-pr.yaml: "),
            "{err}"
        );
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn the_repository_images_are_allowed_and_local_builds_too() {
    for kind in support::ALL {
        support::stack(kind);
    }
    let local = config(StackKind::Local);
    assert!(local.allowed_images.contains(&"aphiria/".to_owned()));
    assert_eq!(
        config(StackKind::PreviewPr).allowed_images,
        [
            "ghcr.io/aphiria/",
            "docker.io/nginxinc/nginx-unprivileged",
            "docker.io/library/postgres"
        ]
    );
    let mut req = request(StackKind::Local, None);
    req.images.insert("web".into(), "evil/web:local".into());
    let err = build_with(&req, &local, &References::new(), &FakeSecrets::all())
        .expect_err("not allowed locally either");
    assert!(
        err.to_string()
            .starts_with("--web-image evil/web:local: not an allowed image"),
        "{err}"
    );
}

#[test]
fn pod_security_level_is_checked_and_previews_cannot_relax_it() {
    let text = std::fs::read_to_string(support::config_dir().join("production.yaml"))
        .expect("production.yaml");
    let err = config_from(
        &format!("{text}\npodSecurity: lax\n"),
        StackKind::Production,
    )
    .expect_err("bad level");
    assert_eq!(
        err.to_string(),
        "config key `podSecurity` in config/production.yaml: \"lax\": expected restricted, baseline or privileged"
    );
    let text = std::fs::read_to_string(support::config_dir().join("preview-pr.yaml"))
        .expect("preview-pr.yaml");
    let err = config_from(
        &format!("{text}\npodSecurity: baseline\n"),
        StackKind::PreviewPr,
    )
    .expect_err("previews are always restricted");
    assert!(
        err.to_string().starts_with(
            "config key `podSecurity` in config/preview-pr.yaml: the preview-pr stack does not read it"
        ),
        "{err}"
    );
}
