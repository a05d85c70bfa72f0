//! `preview-base` with `dns:` on the real control plane (node simulator standing in
//! for the gateway controller, which reports the address 10.240.0.100; the real
//! cert-manager issuing the wildcard certificate from a self-signed Issuer) and the
//! DigitalOcean fake (every exchange checked against DigitalOcean's OpenAPI
//! description): an existing record is refused and adopted with `import`, the
//! wildcard records point at the Gateway's address, a second `up` sends nothing to
//! DigitalOcean, drift is repaired, and `destroy` removes the records and their
//! ownership markers while leaving other records of the zone alone.

mod support_command;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use digitalocean_fake::DigitalOceanFake;
use serde_json::Value;
use testkit::{NodeSimulator, TestCluster, default_crd_dir, install_crds};

const TOKEN: &str = "dop_v1_dns_token_canary_42c1";
const ZONE: &str = "aphiria.com";
/// What the node simulator writes as the Gateway's `status.addresses[0].value`.
const GATEWAY_ADDRESS: &str = "10.240.0.100";

struct Run {
    kubeconfig: PathBuf,
    config_dir: PathBuf,
    state: PathBuf,
    api_url: String,
}

impl Run {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = support_command::stacks(&self.kubeconfig, &self.state, &self.config_dir);
        c.args(args)
            .env("PREVIEW_DB_PASSWORD", "db-password-canary-7f3a")
            .env("PREVIEW_DIGITALOCEAN_TOKEN", TOKEN)
            .env("PREVIEW_DIGITALOCEAN_API_URL", &self.api_url)
            .env_remove("PREVIEW_DIGITALOCEAN_TOKEN_FILE")
            .env_remove("KUBECONFIG")
            .env_remove("PREVIEW_BACKEND")
            .env_remove("PREVIEW_DOMAIN")
            .env_remove("PREVIEW_TLS_ISSUER")
            .env_remove("PREVIEW_POSTGRES_URL")
            .env_remove("PREVIEW_POSTGRES_URL_FILE");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run stacks")
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        support_command::assert_success(args, &out);
        assert_no_token(&out);
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_slice(&self.ok(args).stdout).expect("json report")
    }
}

fn assert_no_token(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains("canary_42c1"),
            "the DigitalOcean token was printed"
        );
    }
}

/// The repository's `preview-base.yaml`, with `protect: false`, a `dns:` section
/// and the self-signed issuer: the real cert-manager issues the wildcard
/// certificate (Let's Encrypt over DNS-01 cannot be reached from here).
fn write_config(dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/preview-base.yaml");
    let text = std::fs::read_to_string(repo).expect("config/preview-base.yaml");
    assert!(
        text.contains("\nprotect: true\n"),
        "the example protects the base"
    );
    assert!(
        text.contains("\n  issuer: letsencrypt\n"),
        "the example uses Let's Encrypt"
    );
    let text = text
        .replace("\nprotect: true\n", "\nprotect: false\n")
        .replace("\n  issuer: letsencrypt\n", "\n  issuer: self-signed\n")
        + "\ndns:\n  provider: digitalocean\n  ttl: 300\n";
    std::fs::write(dir.join("preview-base.yaml"), text).expect("write config");
}

/// `(name, data, ttl)` of the A records, sorted.
fn a_records(fake: &DigitalOceanFake) -> Vec<(String, String, i64)> {
    let mut records: Vec<_> = fake
        .records(ZONE)
        .into_iter()
        .filter(|r| r.record_type == "A")
        .map(|r| (r.name, r.data, r.ttl))
        .collect();
    records.sort();
    records
}

fn markers(fake: &DigitalOceanFake) -> Vec<String> {
    let mut markers: Vec<_> = fake
        .records(ZONE)
        .into_iter()
        .filter(|r| r.record_type == "TXT" && r.name == "_preview-envs")
        .map(|r| r.data)
        .collect();
    markers.sort();
    markers
}

fn steps_for<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["plan"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["resource"]["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_records_follow_the_gateway_and_are_removed_by_destroy() {
    let cluster = TestCluster::shared().await.expect("cluster");
    install_crds(&cluster.client().expect("client"), &default_crd_dir())
        .await
        .expect("crds");
    cluster.cert_manager().await.expect("cert-manager");
    NodeSimulator::shared().await.expect("simulator");

    let fake = DigitalOceanFake::start().await.expect("fake");
    fake.add_token(TOKEN);
    fake.add_domain(ZONE);
    // Someone else's records: never touched.
    let www = fake.seed_record(ZONE, "A", "www", "192.0.2.10", 1800);
    fake.seed_record(ZONE, "TXT", "_preview-envs", "v=spf1 -all", 3600);

    let config = tempfile::tempdir().expect("config dir");
    write_config(config.path());
    let state = tempfile::tempdir().expect("state dir");
    let run = Run {
        kubeconfig: cluster.kubeconfig_path().to_path_buf(),
        config_dir: config.path().to_path_buf(),
        state: state.path().to_path_buf(),
        api_url: fake.base_url(),
    };

    // The plan names both records and depends them on the Gateway.
    let plan: Value = serde_json::from_slice(
        &run.ok(&["preview", "preview-base", "--format", "json"])
            .stdout,
    )
    .expect("plan json");
    let records: Vec<&Value> = plan["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["resource"]["kind"] == "DomainRecord")
        .collect();
    assert_eq!(records.len(), 2, "{plan}");
    for step in &records {
        assert_eq!(step["resource"]["provider"], "digitalocean");
        assert!(
            step["after"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["kind"] == "Gateway"),
            "{step}"
        );
    }

    // A record the stack wants, created by hand before the stack existed, is not
    // adopted silently.
    fake.seed_record(ZONE, "A", "*.pr", "192.0.2.99", 1800);
    let refused = run.run(&["up", "preview-base"]);
    assert!(
        !refused.status.success(),
        "up must refuse the unmanaged record"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("digitalocean DomainRecord aphiria.com/A:*.pr already exists and is not managed by stack preview-base"),
        "{stderr}"
    );
    assert!(stderr.contains("import"), "{stderr}");
    assert_no_token(&refused);
    assert_eq!(fake.writes(), 0, "nothing was sent to DigitalOcean");

    // `import` adopts it (marker written, data set to the Gateway's address) and
    // creates everything else.
    let imported = run.json(&["--json", "import", "preview-base"]);
    let dns_steps = steps_for(&imported, "DomainRecord");
    let actions: Vec<&str> = dns_steps
        .iter()
        .map(|s| s["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["import", "create"], "{imported}");
    assert_eq!(
        a_records(&fake),
        [
            ("*.pr".to_owned(), GATEWAY_ADDRESS.to_owned(), 300),
            ("*.pr-api".to_owned(), GATEWAY_ADDRESS.to_owned(), 300),
            ("www".to_owned(), "192.0.2.10".to_owned(), 1800),
        ]
    );
    assert_eq!(
        markers(&fake),
        [
            "heritage=preview-envs,preview-envs/stack=preview-base,preview-envs/record=A *.pr",
            "heritage=preview-envs,preview-envs/stack=preview-base,preview-envs/record=A *.pr-api",
            "v=spf1 -all",
        ]
    );

    // A second up changes nothing: no write to DigitalOcean (nor to the cluster).
    fake.clear_requests();
    let again = run.json(&["--json", "up", "preview-base"]);
    assert_eq!(fake.writes(), 0, "{:?}", fake.requests());
    assert_eq!(again["requests"]["writes"], 0, "{again}");
    for step in steps_for(&again, "DomainRecord") {
        assert_eq!(step["action"], "no-op", "{step}");
    }

    // Drift (someone edits the record by hand) is reported and repaired.
    let pr = fake
        .records(ZONE)
        .into_iter()
        .find(|r| r.record_type == "A" && r.name == "*.pr")
        .expect("*.pr")
        .id;
    fake.set_record_data(ZONE, pr, "192.0.2.50");
    let refresh = run.run(&["refresh", "preview-base"]);
    assert_eq!(refresh.status.code(), Some(3), "drift is exit code 3");
    assert!(
        String::from_utf8_lossy(&refresh.stdout).contains("DomainRecord aphiria.com/A:*.pr"),
        "{}",
        String::from_utf8_lossy(&refresh.stdout)
    );
    fake.clear_requests();
    let repaired = run.json(&["--json", "up", "preview-base"]);
    let updated: Vec<&Value> = steps_for(&repaired, "DomainRecord")
        .into_iter()
        .filter(|s| s["action"] == "update")
        .collect();
    assert_eq!(updated.len(), 1, "{repaired}");
    assert_eq!(updated[0]["resource"]["name"], "A:*.pr");
    let change = &updated[0]["changes"][0];
    assert_eq!(
        (&change["path"], &change["old"], &change["new"]),
        (
            &Value::from("data"),
            &Value::from("192.0.2.50"),
            &Value::from(GATEWAY_ADDRESS)
        ),
        "{repaired}"
    );
    let writes: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, [format!("PATCH /v2/domains/{ZONE}/records/{pr}")]);

    // destroy removes both records and their markers, nothing else.
    run.ok(&["destroy", "preview-base"]);
    assert_eq!(
        a_records(&fake),
        [("www".to_owned(), "192.0.2.10".to_owned(), 1800)]
    );
    assert_eq!(markers(&fake), ["v=spf1 -all"]);
    assert!(fake.records(ZONE).iter().any(|r| r.id == www));
    fake.assert_no_violations();
}
