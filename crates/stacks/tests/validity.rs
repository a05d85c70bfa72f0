//! Every stack built from the repository's config passes the engine's static
//! checks and forms a valid graph; building is deterministic; the preview sizes
//! fit the quota.

mod support;

use preview_core::graph::DesiredGraph;
use preview_core::validate::validate;
use stacks::StackKind;
use support::{ALL, manifest, preview, stack};

#[test]
fn every_stack_validates_and_forms_a_graph() {
    for kind in ALL {
        let build = stack(kind);
        validate(&build.resources, &build.policy).unwrap_or_else(|err| panic!("{kind:?}: {err}"));
        let graph = DesiredGraph::new(&build.name, build.resources.clone())
            .unwrap_or_else(|err| panic!("{kind:?}: {err}"));
        assert_eq!(graph.len(), build.resources.len());
    }
    let seven = preview("7");
    validate(&seven.resources, &seven.policy).expect("PR 7 validates");
}

#[test]
fn building_is_deterministic() {
    for kind in ALL {
        let a = serde_json::to_string(&manifest(&stack(kind))).expect("json");
        let b = serde_json::to_string(&manifest(&stack(kind))).expect("json");
        assert_eq!(a, b, "{kind:?}");
        assert_eq!(stack(kind).resources, stack(kind).resources, "{kind:?}");
    }
}

#[test]
fn the_longest_pr_number_still_validates() {
    let build = preview(&"9".repeat(44));
    validate(&build.resources, &build.policy).expect("63-character names are fine");
}

#[test]
fn policies() {
    assert!(stack(StackKind::PreviewPr).policy.require_image_digests);
    assert!(stack(StackKind::PreviewBase).policy.require_image_digests);
    assert!(stack(StackKind::Production).policy.require_image_digests);
    assert!(!stack(StackKind::Local).policy.require_image_digests);
}

/// CPU in millicores or memory in bytes.
fn quantity(value: &str) -> u64 {
    let units: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("m", 1),
        ("", 1000),
    ];
    for (suffix, factor) in units {
        // Plain numbers are CPU cores (×1000 → millicores); memory always has a suffix here.
        if let Some(n) = value.strip_suffix(suffix)
            && let Ok(n) = n.parse::<u64>()
        {
            return n * factor;
        }
    }
    panic!("unexpected quantity {value}")
}

/// The worst case of the preview namespace: web and API rolling (maxSurge 1,
/// so two pods each) while a migration pod runs. Its limits must fit the quota.
#[test]
fn preview_sizes_fit_the_quota() {
    let build = preview("123");
    let quota = &support::find(&build, "ResourceQuota preview-pr-123/preview-pr-123-quota").body["spec"]
        ["hard"];
    let pod_limits = |kind: &str, name: &str| -> (u64, u64, u64) {
        let r = build
            .resources
            .iter()
            .find(|r| r.id.kind == kind && r.id.name.starts_with(name))
            .expect("workload");
        let spec = &r.body["spec"]["template"]["spec"];
        let sum = |list: &str| -> (u64, u64) {
            spec[list]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        quantity(c["resources"]["limits"]["cpu"].as_str().expect("cpu")),
                        quantity(c["resources"]["limits"]["memory"].as_str().expect("memory")),
                    )
                })
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        };
        let (cpu, memory) = sum("containers");
        let (init_cpu, init_memory) = sum("initContainers");
        let replicas = r.body["spec"]["replicas"].as_u64().unwrap_or(1);
        let surge = r.body["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
            .as_u64()
            .unwrap_or(0);
        let pods = replicas + surge;
        (
            cpu.max(init_cpu) * pods,
            memory.max(init_memory) * pods,
            pods,
        )
    };
    let parts = [
        pod_limits("Deployment", "web"),
        pod_limits("Deployment", "api"),
        pod_limits("Job", "db-migration-"),
    ];
    let cpu: u64 = parts.iter().map(|p| p.0).sum();
    let memory: u64 = parts.iter().map(|p| p.1).sum();
    let pods: u64 = parts.iter().map(|p| p.2).sum();
    assert!(
        cpu <= quantity(quota["limits.cpu"].as_str().expect("cpu")),
        "cpu {cpu}m"
    );
    assert!(
        memory <= quantity(quota["limits.memory"].as_str().expect("memory")),
        "memory {memory}"
    );
    assert!(
        pods <= quota["pods"]
            .as_str()
            .expect("pods")
            .parse::<u64>()
            .expect("n")
    );
}
