//! In-memory scenario state of the fake and the JSON objects DigitalOcean would
//! return for it.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

/// A DNS record in a domain (zone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Record id (global, increasing).
    pub id: u64,
    /// `A`, `AAAA`, `CNAME`, `TXT`, …
    pub record_type: String,
    /// Name relative to the zone (`www`, `*.pr`, `@` for the apex).
    pub name: String,
    /// Address, target or text.
    pub data: String,
    /// Time to live in seconds.
    pub ttl: i64,
    /// MX/SRV priority.
    pub priority: Option<i64>,
    /// SRV port.
    pub port: Option<i64>,
    /// SRV weight.
    pub weight: Option<i64>,
    /// CAA flags.
    pub flags: Option<i64>,
    /// CAA tag.
    pub tag: Option<String>,
}

impl Record {
    /// Record `id`: `record_type` `name` → `data` with `ttl`, no other fields.
    pub fn new(id: u64, record_type: &str, name: &str, data: &str, ttl: i64) -> Self {
        Record {
            id,
            record_type: record_type.to_owned(),
            name: name.to_owned(),
            data: data.to_owned(),
            ttl,
            priority: None,
            port: None,
            weight: None,
            flags: None,
            tag: None,
        }
    }

    /// The record as the API returns it (`domain_record` schema).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.record_type,
            "name": self.name,
            "data": self.data,
            "priority": self.priority,
            "port": self.port,
            "ttl": self.ttl,
            "weight": self.weight,
            "flags": self.flags,
            "tag": self.tag,
        })
    }

    /// The fully qualified name in `domain` (what the list filter `name` matches).
    pub fn fqdn(&self, domain: &str) -> String {
        if self.name == "@" {
            domain.to_owned()
        } else {
            format!("{}.{domain}", self.name)
        }
    }
}

/// A node pool of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePool {
    /// Pool id (a UUID).
    pub id: String,
    /// Pool name.
    pub name: String,
    /// Droplet size slug.
    pub size: String,
    /// Number of nodes.
    pub count: i64,
}

/// A DOKS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Cluster id (a UUID).
    pub id: String,
    /// Name (unique in the account).
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Version slug (`1.33.1-do.0`).
    pub version: String,
    /// Tags, `k8s` and `k8s:<id>` included.
    pub tags: Vec<String>,
    /// Node pools.
    pub node_pools: Vec<NodePool>,
    /// `provisioning`, `running`, …
    pub state: String,
    /// GETs left before a provisioning cluster is running.
    pub polls_left: u32,
}

impl Cluster {
    /// The API server URL (empty until the cluster runs, like DigitalOcean's).
    pub fn endpoint(&self) -> String {
        if self.state == "running" {
            format!("https://{}.k8s.ondigitalocean.com", self.id)
        } else {
            String::new()
        }
    }

    /// The cluster as the API returns it (`cluster` / `cluster_read` schemas).
    pub fn to_json(&self) -> Value {
        let pools: Vec<Value> = self
            .node_pools
            .iter()
            .map(|p| {
                json!({
                    "id": p.id, "name": p.name, "size": p.size, "count": p.count,
                    "tags": ["k8s", format!("k8s:{}", self.id), "k8s-worker"],
                    "labels": null, "taints": [], "auto_scale": false,
                    "min_nodes": 0, "max_nodes": 0, "nodes": [],
                })
            })
            .collect();
        let running = self.state == "running";
        json!({
            "id": self.id,
            "name": self.name,
            "region": self.region,
            "version": self.version,
            "cluster_subnet": "10.244.0.0/16",
            "service_subnet": "10.245.0.0/16",
            "vpc_uuid": "c33931f2-a26a-4e61-b85c-4e95a2ec431b",
            "ipv4": if running { "203.0.113.200" } else { "" },
            "endpoint": self.endpoint(),
            "tags": self.tags,
            "node_pools": pools,
            "maintenance_policy": {"start_time": "00:00", "duration": "4h0m0s", "day": "any"},
            "auto_upgrade": false,
            "status": {"state": self.state, "message": self.state},
            "created_at": "2026-11-25T00:00:00Z",
            "updated_at": "2026-11-25T00:00:00Z",
            "surge_upgrade": false,
            "registry_enabled": false,
            "ha": false,
        })
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// JSON body, if any (or the raw text as a JSON string when not JSON).
    pub body: Option<Value>,
    /// Whether an `Authorization: Bearer …` header was present (the token itself is
    /// not kept).
    pub authenticated: bool,
    /// The status the fake answered with.
    pub status: u16,
}

impl RecordedRequest {
    /// True for methods that change something (everything but GET/HEAD).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// A failure to serve instead of the real answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Status to answer with.
    pub status: u16,
    /// The error `id` (`too_many_requests`, `server_error`, …).
    pub id: String,
    /// The error message.
    pub message: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// How many matching requests get this answer.
    pub times: u32,
    /// Only requests with this method (any when `None`).
    pub method: Option<String>,
    /// Only requests whose path contains this text (any when `None`).
    pub path_contains: Option<String>,
}

impl Fault {
    /// Any status with an `error` body.
    pub fn status(status: u16, id: &str, message: &str) -> Self {
        Fault {
            status,
            id: id.to_owned(),
            message: message.to_owned(),
            headers: Vec::new(),
            times: 1,
            method: None,
            path_contains: None,
        }
    }

    /// 429 with `ratelimit-remaining: 0`.
    pub fn rate_limited() -> Self {
        let mut fault = Fault::status(429, "too_many_requests", "API rate limit exceeded.");
        fault.headers = vec![("ratelimit-remaining".into(), "0".into())];
        fault
    }

    /// 500 `server_error`.
    pub fn server_error() -> Self {
        Fault::status(500, "server_error", "Unexpected server-side error")
    }

    /// Only for requests with `method`.
    pub fn on(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only for paths containing `text`.
    pub fn path(mut self, text: &str) -> Self {
        self.path_contains = Some(text.to_owned());
        self
    }

    /// For the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = n.max(1);
        self
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            domains: BTreeMap::new(),
            clusters: Vec::new(),
            provision_polls: 2,
            tokens: Vec::new(),
            next_id: 0,
            requests: Vec::new(),
            violations: Vec::new(),
            faults: VecDeque::new(),
        }
    }
}

/// Everything the fake knows.
#[derive(Debug)]
pub(crate) struct State {
    /// Domains (zones) that exist, with their records.
    pub domains: BTreeMap<String, Vec<Record>>,
    /// Kubernetes clusters, in creation order.
    pub clusters: Vec<Cluster>,
    /// GETs a new cluster answers `provisioning` before it is `running`.
    pub provision_polls: u32,
    /// Tokens the API accepts.
    pub tokens: Vec<String>,
    pub next_id: u64,
    pub requests: Vec<RecordedRequest>,
    pub violations: Vec<String>,
    pub faults: VecDeque<Fault>,
}

impl State {
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        28_448_000 + self.next_id
    }

    /// A UUID-shaped id, deterministic per fake.
    pub fn next_uuid(&mut self) -> String {
        self.next_id += 1;
        format!("bd5f5959-5e1e-4205-a714-{:012x}", self.next_id)
    }
}
