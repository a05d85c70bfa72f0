//! Parsing, checking and the schema of app specs.

use super::*;

/// The checked-in schema, relative to this crate.
const SCHEMA_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../schemas/preview-app.schema.json"
);

/// A small valid spec the error cases edit.
const MINIMAL: &str = r#"
version: 1
services:
  - name: api
    image: api
    port: 3000
routes:
  - name: app
    host: "{pr}.pr.{domain}"
    service: api
"#;

fn parse(text: &str) -> Result<App, SpecError> {
    App::parse("preview-app.yaml", text)
}

#[test]
fn the_builtin_spec_parses_and_names_its_images() {
    let app = App::builtin();
    assert_eq!(app.origin, DEFAULT_ORIGIN);
    assert_eq!(app.image_keys(), ["api", "web"]);
    assert!(app.spec.addons.postgres.is_some());
    assert_eq!(parse(MINIMAL).expect("minimal").image_keys(), ["api"]);
}

#[test]
fn the_checked_in_schema_is_the_generated_one() {
    let generated = schema_json();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(SCHEMA_PATH, &generated).expect("write the schema");
    }
    let checked_in = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schemas/preview-app.schema.json is stale: run `UPDATE_SCHEMA=1 cargo test -p stacks --lib app_spec` and commit it"
    );
}

/// Every error names the file, the key path and what is expected.
#[test]
fn errors_name_the_key_path() {
    let cases: Vec<(&str, String)> = vec![
        (
            "unknown key",
            MINIMAL.replace("    port: 3000", "    prot: 3000"),
        ),
        ("wrong type", MINIMAL.replace("port: 3000", "port: http")),
        ("missing key", MINIMAL.replace("    image: api\n", "")),
        (
            "per-stack typo",
            MINIMAL.replace("\"{pr}.pr.{domain}\"", "{preview: x}"),
        ),
        ("version", MINIMAL.replace("version: 1", "version: 2")),
        ("bad name", MINIMAL.replace("name: api", "name: API")),
        (
            "unknown placeholder",
            MINIMAL.replace("{pr}.pr.{domain}", "{pr}.pr.{domian}"),
        ),
        (
            "unknown route",
            format!("{MINIMAL}env:\n  URL: \"{{url.web}}\"\n"),
        ),
        (
            "database without add-on",
            format!("{MINIMAL}env:\n  DB: \"{{db.host}}\"\n"),
        ),
        (
            "secret outside secretEnv",
            format!("{MINIMAL}addons: {{postgres: {{}}}}\nenv:\n  PW: \"{{db.password}}\"\n"),
        ),
        ("bad brace", format!("{MINIMAL}env:\n  X: \"{{pr\"\n")),
        (
            "unknown value",
            format!("{MINIMAL}env:\n  X: \"{{values.level}}\"\n"),
        ),
        (
            "route to nothing",
            MINIMAL.replace("service: api", "service: web"),
        ),
        (
            "gate on no job",
            MINIMAL.replace("    port: 3000", "    port: 3000\n    after: [migrate]"),
        ),
        (
            "field of another kind",
            MINIMAL.replace("    port: 3000", "    kind: static-site\n    port: 3000"),
        ),
        (
            "two static sites",
            MINIMAL.replace(
                "services:\n",
                "services:\n  - {name: a, kind: static-site, image: a, jsConfig: {apiUri: x}}\n  - {name: b, kind: static-site, image: b, jsConfig: {apiUri: x}}\n",
            ),
        ),
        (
            "job without a command",
            format!("{MINIMAL}jobs:\n  - name: migrate\n    image: api\n"),
        ),
        (
            "resources shape",
            MINIMAL.replace("    port: 3000", "    port: 3000\n    resources: [1]"),
        ),
        (
            "egress without a target",
            format!("{MINIMAL}network:\n  egress:\n    - name: out\n      ports: [443]\n"),
        ),
    ];
    let mut report = String::new();
    for (what, text) in cases {
        let err = parse(&text).expect_err(what);
        report.push_str(&format!("{what}:\n  {err}\n"));
    }
    insta::assert_snapshot!(report);
}

#[test]
fn per_stack_values() {
    use crate::StackKind;
    let app = App::builtin();
    let env = &app.spec.env;
    assert_eq!(
        env["PR_NUMBER"].for_stack(StackKind::PreviewPr),
        Some("{pr}")
    );
    assert_eq!(env["PR_NUMBER"].for_stack(StackKind::Local), None);
    assert_eq!(
        env["APP_COOKIE_DOMAIN"].for_stack(StackKind::Production),
        Some(".{domain}")
    );
}
