//! Values read from another resource (`dataFrom`): known after apply while the
//! source changes in the plan, resolved from the observed source otherwise, and
//! records written before the engine resolved values (an old state file) that
//! stay no-ops.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::*;
use crate::ResourceOptions;
use crate::render::{TextOptions, json as render_json, text};
use crate::schema::dns_record::{DataFrom, DesiredRecord, RecordData, RecordKey, live_value};
use crate::state::format::{Codec, Purpose};
use crate::values::Resolution;

const BASE: &str = "preview-base";
const ADDRESS: &str = "10.240.0.100";

/// The Gateway the records read from (as the old-format fixture was made with).
fn gateway() -> Resource {
    Resource::kubernetes(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "preview-gateway", "namespace": "nginx-gateway"},
        "spec": {"gatewayClassName": "nginx",
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }))
    .expect("gateway")
}

fn source() -> DataFrom {
    DataFrom {
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "Gateway".into(),
        namespace: Some("nginx-gateway".into()),
        name: "preview-gateway".into(),
        path: "/status/addresses/0/value".into(),
    }
}

fn dns_record(name: &str) -> Resource {
    let desired = DesiredRecord {
        key: RecordKey::new("example.com", "A", name),
        ttl: 300,
        data: RecordData::From(source()),
        owner: BASE.into(),
    };
    Resource {
        id: desired.key.id(),
        body: desired.body(),
        depends_on: BTreeSet::from([gateway().id]),
        options: ResourceOptions::default(),
    }
}

/// The graph with the records' `dataFrom` declared, as the engine attaches it.
fn base_graph() -> DesiredGraph {
    let resources = vec![gateway(), dns_record("*.pr"), dns_record("*.pr-api")];
    let values = resources
        .iter()
        .filter(|r| r.id.kind == "DomainRecord")
        .map(|r| (r.id.clone(), vec![source().value_from()]))
        .collect::<BTreeMap<_, _>>();
    DesiredGraph::new(BASE, resources)
        .expect("graph")
        .with_values_from(values)
        .expect("sources are dependencies")
}

/// The Gateway as the API server reports it, with `address` in its status.
fn gateway_live(graph: &DesiredGraph, address: Option<&str>) -> Value {
    let mut live = graph.get(&gateway().id).expect("gateway").body.clone();
    live["metadata"]["uid"] = json!("uid-gateway");
    live["status"] = match address {
        Some(ip) => json!({"addresses": [{"type": "IPAddress", "value": ip}]}),
        None => json!({}),
    };
    live
}

fn record_live(name: &str, uid: u64, data: &str) -> Value {
    live_value(
        &RecordKey::new("example.com", "A", name),
        Some(uid),
        data,
        300,
        Some(BASE),
    )
}

fn observation(live: Option<Value>) -> Observation {
    Observation {
        live,
        dry_run: None,
    }
}

/// One step's text and JSON renderings.
fn rendered(plan: &Plan, name: &str) -> String {
    let text = text(plan, &TextOptions::default());
    let json = render_json(plan);
    let step = json["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["resource"]["name"] == name)
        .cloned()
        .unwrap_or_default();
    format!(
        "{text}\n{}",
        serde_json::to_string_pretty(&step).expect("json")
    )
}

#[test]
fn a_value_from_a_source_the_plan_creates_is_known_after_apply() {
    let g = base_graph();
    let plan = plan(
        &g,
        &StackState::new(BASE),
        &nothing_live(&g),
        &hasher(),
        &PlanOptions::default(),
    )
    .expect("plan");
    assert_eq!(plan.summary().create, 3);
    snap!("value_from_a_created_source", rendered(&plan, "A:*.pr"));
    // Apply resolves it: the graph apply uses keeps the reference.
    let resolutions = resolve_values(
        &g,
        &StackState::new(BASE),
        &nothing_live(&g),
        &hasher(),
        &PlanOptions::default(),
    );
    assert!(matches!(
        resolutions.get(&dns_record("*.pr").id),
        Some(Resolution::Unknown { unknown, .. }) if unknown.len() == 1
    ));
    let applied = g.with_resolutions(&resolutions);
    assert_eq!(applied.values_from(&dns_record("*.pr").id).len(), 1);
}

/// The state and observations after an `up` of `g` whose Gateway reports
/// `ADDRESS`: the records hold the resolved bodies' hashes.
fn applied_base(g: &DesiredGraph) -> (StackState, Observed) {
    let mut state = StackState::new(BASE);
    let mut observed = Observed::new();
    let gw = gateway_live(g, Some(ADDRESS));
    observed.insert(gateway().id, observation(Some(gw.clone())));
    let gateway_res = g.get(&gateway().id).expect("gateway");
    state
        .resources
        .insert(gateway().id, record(g, gateway_res, &gw));
    for (name, uid) in [("*.pr", 28_448_003), ("*.pr-api", 28_448_004)] {
        let res = dns_record(name);
        let live = record_live(name, uid, ADDRESS);
        let resolved = crate::values::resolved(&res, &[(&source().value_from(), json!(ADDRESS))]);
        state
            .resources
            .insert(res.id.clone(), record(g, &resolved, &live));
        observed.insert(res.id.clone(), observation(Some(live)));
    }
    (state, observed)
}

#[test]
fn a_value_from_a_source_the_plan_changes_is_known_after_apply() {
    let g = base_graph();
    let (state, mut observed) = applied_base(&g);
    // Unchanged: no-ops, nothing to dry-run.
    let unchanged = plan(&g, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    assert!(unchanged.is_empty(), "{}", outline(&unchanged));
    // The Gateway's listeners change: it is updated, the records' address is
    // known only once it is ready again.
    let mut changed = gateway();
    changed.body["spec"]["listeners"][0]["port"] = json!(8080);
    let g2 = DesiredGraph::new(
        BASE,
        vec![changed, dns_record("*.pr"), dns_record("*.pr-api")],
    )
    .expect("graph")
    .with_values_from(
        [dns_record("*.pr").id, dns_record("*.pr-api").id]
            .into_iter()
            .map(|id| (id, vec![source().value_from()]))
            .collect(),
    )
    .expect("graph");
    accept_dry_run(&g2, &mut observed, &gateway().id);
    let plan = plan(&g2, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    let actions: Vec<Action> = plan.steps.iter().map(|s| s.action).collect();
    assert_eq!(actions, [Action::Update, Action::Update, Action::Update]);
    snap!("value_from_a_changed_source", rendered(&plan, "A:*.pr"));
}

#[test]
fn a_value_from_an_unchanged_source_is_read_from_its_observed_object() {
    let g = base_graph();
    let (state, mut observed) = applied_base(&g);
    // The load balancer is recreated: the Gateway's spec is unchanged (a
    // no-op), its status has another address, so the records' desired bodies
    // changed and the engine dry-runs them with the new address.
    let moved = "10.240.0.101";
    observed.insert(
        gateway().id,
        observation(Some(gateway_live(&g, Some(moved)))),
    );
    let resolutions = resolve_values(&g, &state, &observed, &hasher(), &PlanOptions::default());
    let id = dns_record("*.pr").id;
    let Some(Resolution::Known(resolved)) = resolutions.get(&id) else {
        panic!("{resolutions:?}");
    };
    assert_eq!(resolved.body["data"], moved);
    assert!(resolved.body.get("dataFrom").is_none());
    let live = observed[&id].live.clone();
    assert!(needs_dry_run_resolved(
        g.get(&id).expect("record"),
        resolved,
        state.resources.get(&id),
        live.as_ref(),
        &hasher()
    ));
    for (name, uid) in [("*.pr", 28_448_003), ("*.pr-api", 28_448_004)] {
        let id = dns_record(name).id;
        observed.entry(id).or_default().dry_run = Some(DryRun::Accepted {
            object: record_live(name, uid, moved),
        });
    }
    let plan = plan(&g, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    snap!("value_from_an_unchanged_source", outline(&plan));
}

#[test]
fn an_unchanged_source_without_the_value_yet_is_known_after_apply() {
    let g = base_graph();
    let (state, mut observed) = applied_base(&g);
    observed.insert(gateway().id, observation(Some(gateway_live(&g, None))));
    let plan = plan(&g, &state, &observed, &hasher(), &PlanOptions::default()).expect("plan");
    let record = plan
        .steps
        .iter()
        .find(|s| s.id == dns_record("*.pr").id)
        .expect("step");
    assert_eq!(record.action, Action::Update);
    assert_eq!(record.diff.len(), 1);
    assert_eq!(
        record.diff[0].new,
        Some(crate::plan::Shown::KnownAfterApply(
            crate::plan::AfterApplyMarker
        ))
    );
}

#[test]
fn a_source_that_is_not_a_dependency_is_refused() {
    let mut record = dns_record("*.pr");
    record.depends_on.clear();
    let err = DesiredGraph::new(BASE, vec![gateway(), record.clone()])
        .expect("graph")
        .with_values_from(BTreeMap::from([(record.id, vec![source().value_from()])]))
        .expect_err("not a dependency");
    assert_eq!(err.len(), 1);
    assert_eq!(
        err[0].to_string(),
        "digitalocean DomainRecord example.com/A:*.pr reads dataFrom from Gateway nginx-gateway/preview-gateway, which it does not depend on"
    );
}

/// A state file written before the engine resolved `dataFrom` (by main at
/// 50331a3: the DigitalOcean provider read the Gateway itself and recorded the
/// hashes of the body holding `dataFrom`).
fn old_format_state() -> StackState {
    let bytes = include_bytes!("../../../tests/fixtures/state/format-2-data-from.json");
    Codec::plain()
        .decode(bytes, BASE, Purpose::Read)
        .expect("the old state reads")
}

#[test]
fn records_of_the_old_format_with_the_same_value_plan_no_change() {
    let state = old_format_state();
    let hasher = RecordHasher::without_passphrase(&state);
    let g = base_graph();
    let mut observed = Observed::new();
    observed.insert(
        gateway().id,
        observation(Some(gateway_live(&g, Some(ADDRESS)))),
    );
    for (name, uid) in [("*.pr", 28_448_003), ("*.pr-api", 28_448_004)] {
        observed.insert(
            dns_record(name).id,
            observation(Some(record_live(name, uid, ADDRESS))),
        );
    }
    // No dry-run needed, and nothing to do.
    let resolutions = resolve_values(&g, &state, &observed, &hasher, &PlanOptions::default());
    for (id, resolution) in &resolutions {
        let Resolution::Known(resolved) = resolution else {
            panic!("{id}: {resolution:?}");
        };
        assert!(!needs_dry_run_resolved(
            g.get(id).expect("record"),
            resolved,
            state.resources.get(id),
            observed[id].live.as_ref(),
            &hasher
        ));
    }
    let unchanged = plan(&g, &state, &observed, &hasher, &PlanOptions::default()).expect("plan");
    assert!(unchanged.is_empty(), "{}", outline(&unchanged));
    assert_eq!(unchanged.summary().no_op, 3);

    // A record whose data is not the Gateway's address is changed.
    let id = dns_record("*.pr").id;
    observed.insert(
        id.clone(),
        observation(Some(record_live("*.pr", 28_448_003, "192.0.2.50"))),
    );
    let Some(Resolution::Known(resolved)) =
        resolve_values(&g, &state, &observed, &hasher, &PlanOptions::default()).remove(&id)
    else {
        panic!("known");
    };
    assert!(needs_dry_run_resolved(
        g.get(&id).expect("record"),
        &resolved,
        state.resources.get(&id),
        observed[&id].live.as_ref(),
        &hasher
    ));
}
