//! `preview-cluster` through the `stacks` binary against the DigitalOcean fake
//! (every exchange checked against DigitalOcean's OpenAPI description), with no
//! Kubernetes connection (`--kubeconfig` points at a file that does not exist):
//! bad input fails before anything is sent; `up` creates the cluster, waits until
//! it runs and records its outputs with the kubeconfig sealed; a second `up`
//! writes nothing, to DigitalOcean or to the state; `stacks kubeconfig` exports
//! exactly what DigitalOcean served; `destroy` is refused while protected and
//! deletes the cluster once `protect: false` is recorded. The token and the
//! kubeconfig's credentials appear in no other command's output and never in
//! the raw state.

mod support_command;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use digitalocean_fake::DigitalOceanFake;
use preview_core::secret::SecretString;
use preview_digitalocean::DoClient;
use serde_json::Value;

const TOKEN: &str = "dop_v1_cluster_token_canary_5d7e";
const PASSPHRASE: &str = "preview-cluster test passphrase canary-93b1";
/// What the fake's kubeconfigs carry as credentials.
const KUBECONFIG_TOKEN: &str = "fake-doks-token";
const CLUSTER: &str = "aphiria-previews";

struct Run {
    config_dir: PathBuf,
    state: PathBuf,
    api_url: String,
}

impl Run {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = support_command::stacks(
            &self.config_dir.join("no-such-kubeconfig"),
            &self.state,
            &self.config_dir,
        );
        c.args(args)
            .env("PREVIEW_DIGITALOCEAN_TOKEN", TOKEN)
            .env("PREVIEW_DIGITALOCEAN_API_URL", &self.api_url)
            .env("PREVIEW_DIGITALOCEAN_POLL_INTERVAL", "20ms")
            .env("PREVIEW_STATE_PASSPHRASE", PASSPHRASE)
            .env_remove("PREVIEW_DIGITALOCEAN_TOKEN_FILE")
            .env_remove("PREVIEW_STATE_PASSPHRASE_FILE")
            // Set for the whole job: the commands about preview-cluster ignore it.
            .env("PREVIEW_KUBECONFIG_FROM", "preview-cluster")
            .env_remove("KUBECONFIG")
            .env_remove("PREVIEW_BACKEND")
            .env_remove("PREVIEW_CONFIG_DIR");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run stacks");
        assert_no_secret(&out, args);
        out
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        support_command::assert_success(args, &out);
        out
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "stacks {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn state_text(&self) -> String {
        std::fs::read_to_string(self.state.join("preview-cluster.json")).expect("state file")
    }
}

/// Neither the API token, the passphrase nor the kubeconfig's credentials are
/// printed by any command except `kubeconfig`.
fn assert_no_secret(out: &Output, args: &[&str]) {
    let exporting = args.first() == Some(&"kubeconfig");
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(TOKEN), "stacks {args:?} printed the token");
        assert!(
            !text.contains(PASSPHRASE),
            "stacks {args:?} printed the passphrase"
        );
        if !exporting {
            assert!(
                !text.contains(KUBECONFIG_TOKEN),
                "stacks {args:?} printed the kubeconfig"
            );
        }
    }
}

fn write_config(dir: &Path, edit: impl Fn(String) -> String) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/preview-cluster.yaml");
    let text = std::fs::read_to_string(repo).expect("config/preview-cluster.yaml");
    assert!(text.contains("\nprotect: true\n"), "the example protects");
    assert!(
        text.contains("version: 1.33.1-do.0"),
        "the example's version"
    );
    std::fs::write(dir.join("preview-cluster.yaml"), edit(text)).expect("write config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_from_the_cli_with_its_kubeconfig_sealed() {
    let fake = DigitalOceanFake::start().await.expect("fake");
    fake.add_token(TOKEN);
    fake.set_provision_polls(3);
    let config = tempfile::tempdir().expect("config dir");
    let state = tempfile::tempdir().expect("state dir");
    let run = Run {
        config_dir: config.path().to_path_buf(),
        state: state.path().to_path_buf(),
        api_url: fake.base_url(),
    };

    // Bad input fails before anything is sent to DigitalOcean.
    write_config(config.path(), |t| {
        t.replace("region: fra1", "region: Frankfurt")
    });
    let err = run.fails(&["up", "preview-cluster"]);
    assert!(err.contains("config key `cluster.region`"), "{err}");
    assert!(
        err.contains("\"Frankfurt\" is not a DigitalOcean region slug"),
        "{err}"
    );
    write_config(config.path(), |t| t);
    let mut no_token = run.command(&["up", "preview-cluster"]);
    no_token.env_remove("PREVIEW_DIGITALOCEAN_TOKEN");
    let out = no_token.output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing secret DIGITALOCEAN_TOKEN: set PREVIEW_DIGITALOCEAN_TOKEN"),
        "{err}"
    );
    let mut no_passphrase = run.command(&["up", "preview-cluster"]);
    no_passphrase.env_remove("PREVIEW_STATE_PASSPHRASE");
    let out = no_passphrase.output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PREVIEW_STATE_PASSPHRASE"), "{err}");
    assert!(
        fake.requests().is_empty(),
        "nothing was sent: {:?}",
        fake.requests()
    );
    assert!(!state.path().join("preview-cluster.json").exists());

    // The plan needs no Kubernetes connection and names the cluster.
    let plan: Value = serde_json::from_slice(
        &run.ok(&["preview", "preview-cluster", "--format", "json"])
            .stdout,
    )
    .expect("plan json");
    let steps = plan["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "{plan}");
    assert_eq!(steps[0]["action"], "create", "{plan}");
    assert_eq!(steps[0]["resource"]["kind"], "KubernetesCluster", "{plan}");
    assert_eq!(fake.writes(), 0);

    // up: creates the cluster, waits until it runs, records the outputs.
    let out = run.ok(&["--json", "up", "preview-cluster"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("up json");
    let clusters = fake.clusters();
    assert_eq!(clusters.len(), 1);
    let cluster = &clusters[0];
    assert_eq!(cluster.state, "running");
    assert_eq!(cluster.name, CLUSTER);
    assert_eq!(cluster.region, "fra1");
    assert_eq!(cluster.node_pools[0].size, "s-2vcpu-4gb");
    assert_eq!(cluster.node_pools[0].count, 2);
    assert!(
        cluster
            .tags
            .contains(&"preview-envs-stack:preview-cluster".to_owned())
    );
    let outputs = &report["outputs"];
    assert_eq!(outputs["clusterName"], CLUSTER, "{report}");
    assert_eq!(outputs["clusterId"], cluster.id.as_str(), "{report}");
    assert_eq!(outputs["endpoint"], cluster.endpoint(), "{report}");
    assert_eq!(
        outputs["kubeContext"], "do-fra1-aphiria-previews",
        "{report}"
    );
    assert_eq!(outputs["kubeconfig"], "[secret]", "{report}");
    assert_eq!(report["kubeconfigRecorded"], true, "{report}");
    let stored = run.state_text();
    assert!(
        !stored.contains(KUBECONFIG_TOKEN),
        "the kubeconfig is sealed"
    );
    assert!(!stored.contains("certificate-authority-data"));
    assert!(!stored.contains(TOKEN) && !stored.contains(PASSPHRASE));
    assert!(stored.contains("xc20p1:"), "a sealed output");

    // A second up is a no-op: no write to DigitalOcean, none to the state.
    fake.clear_requests();
    let out = run.ok(&["up", "preview-cluster"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("preview-cluster: no changes"), "{stdout}");
    assert!(stdout.contains("kubeconfig"), "{stdout}");
    assert_eq!(fake.writes(), 0, "{:?}", fake.requests());
    assert_eq!(run.state_text(), stored, "a no-op up writes no state");

    // The export is exactly what DigitalOcean served.
    let served = DoClient::new(&fake.base_url(), SecretString::new(TOKEN))
        .expect("client")
        .kubeconfig(&cluster.id, Some(7 * 24 * 3600))
        .await
        .expect("kubeconfig");
    let out = run.ok(&["kubeconfig", "preview-cluster"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), served.expose());
    let file = config.path().join("exported-kubeconfig");
    run.ok(&["kubeconfig", "-o", file.to_str().expect("utf-8 path")]);
    assert_eq!(
        std::fs::read_to_string(&file).expect("exported"),
        served.expose()
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner reads it");
    }
    let mut wrong = run.command(&["kubeconfig", "preview-cluster"]);
    wrong.env(
        "PREVIEW_STATE_PASSPHRASE",
        "a wrong passphrase, long enough",
    );
    let out = wrong.output().expect("run");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");

    // The other commands show it only as [secret].
    for args in [
        &["outputs", "preview-cluster"][..],
        &["--json", "outputs", "preview-cluster"],
        &["state", "show", "preview-cluster"],
        &["refresh", "preview-cluster"],
        &["preview", "preview-cluster", "--format", "markdown"],
        &["render", "preview-cluster"],
    ] {
        run.ok(args);
    }
    let shown =
        String::from_utf8_lossy(&run.ok(&["outputs", "preview-cluster"]).stdout).into_owned();
    assert!(shown.contains("[secret]"), "{shown}");

    // --kubeconfig-from reads the sealed kubeconfig (here: of a stack without one).
    let err = run.fails(&[
        "--kubeconfig-from",
        "preview-base",
        "preview",
        "preview-base",
    ]);
    assert!(err.contains("--kubeconfig-from preview-base"), "{err}");
    assert!(err.contains("stack preview-base has no state"), "{err}");

    // Protected: destroy is refused and the cluster stays.
    fake.clear_requests();
    let err = run.fails(&["destroy", "preview-cluster"]);
    assert!(err.contains("protect"), "{err}");
    assert!(err.contains("KubernetesCluster aphiria-previews"), "{err}");
    assert_eq!(fake.clusters().len(), 1);
    assert_eq!(fake.writes(), 0);

    // A change the provider cannot make in place is refused while protected.
    write_config(config.path(), |t| t.replace("count: 2", "count: 3"));
    let err = run.fails(&["up", "preview-cluster"]);
    assert!(err.contains("protected"), "{err}");
    assert_eq!(fake.clusters()[0].node_pools[0].count, 2);

    // protect: false, recorded by up; then destroy deletes it and its kubeconfig.
    write_config(config.path(), |t| {
        t.replace("\nprotect: true\n", "\nprotect: false\n")
    });
    run.ok(&["up", "preview-cluster"]);
    let out = run.ok(&["destroy", "preview-cluster"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("preview-cluster: destroyed 1 resources"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(fake.clusters().is_empty());
    // The verified destroy removed the state, with the sealed kubeconfig in it.
    assert!(!run.state.join("preview-cluster.json").exists());
    let err = run.fails(&["kubeconfig", "preview-cluster"]);
    assert!(err.contains("has no state"), "{err}");
    fake.assert_no_violations();
}

#[test]
fn help_teaches_the_cluster_stack() {
    let out = Command::new(env!("CARGO_BIN_EXE_stacks"))
        .arg("--help")
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "stacks up preview-cluster",
        "stacks kubeconfig preview-cluster",
        "--kubeconfig-from",
        "kubeconfig",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_stacks"))
        .args(["up", "--help"])
        .output()
        .expect("help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("preview-cluster"), "{text}");
}
