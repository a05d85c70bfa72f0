//! A stand-in for the Kubernetes provider in engine tests: one Gateway kept in
//! memory, whose `status.addresses[0].value` (the load balancer's address) the
//! test sets, as a gateway controller would.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use preview_core::events::EventSink;
use preview_core::observe::DryRun;
use preview_core::provider::{Provider, ProviderError, WaitOptions};
use preview_core::resource::{Resource, ResourceId};
use serde_json::{Value, json};

/// The Gateway the records read from.
pub fn gateway() -> Resource {
    Resource::kubernetes(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "preview-gateway", "namespace": "nginx-gateway"},
        "spec": {"gatewayClassName": "nginx",
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }))
    .expect("gateway")
}

/// The `dataFrom` of a record pointing at [`gateway`]'s address.
pub fn gateway_source() -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "namespace": "nginx-gateway", "name": "preview-gateway",
        "path": "/status/addresses/0/value"})
}

/// Objects applied to it, with the status the test sets.
#[derive(Default)]
pub struct Gateways {
    objects: Mutex<BTreeMap<ResourceId, Value>>,
    address: Mutex<Option<String>>,
    /// Applies received, by id.
    pub applies: Mutex<Vec<ResourceId>>,
}

impl Gateways {
    /// Sets (or clears) the address every Gateway reports.
    pub fn set_address(&self, address: Option<&str>) {
        *self.address.lock().expect("lock") = address.map(str::to_owned);
    }

    /// Stores `res` as if an earlier run had applied it (graph-stamped labels
    /// included); not counted in [`Gateways::applies`].
    pub fn seed(&self, res: &Resource, stack: &str) {
        let mut body = res.body.clone();
        body["metadata"]["labels"] = json!({
            preview_core::resource::MANAGED_BY_LABEL: preview_core::resource::MANAGED_BY_VALUE,
            preview_core::resource::STACK_LABEL: stack,
        });
        self.objects
            .lock()
            .expect("lock")
            .insert(res.id.clone(), body);
    }

    fn with_status(&self, mut object: Value) -> Value {
        object["metadata"]["uid"] = json!("uid-gateway");
        object["status"] = match self.address.lock().expect("lock").as_deref() {
            Some(ip) => json!({"addresses": [{"type": "IPAddress", "value": ip}]}),
            None => json!({}),
        };
        object
    }
}

#[async_trait]
impl Provider for Gateways {
    async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
        let object = self.objects.lock().expect("lock").get(id).cloned();
        Ok(object.map(|o| self.with_status(o)))
    }

    async fn dry_run(&self, res: &Resource, _force: bool) -> Result<DryRun, ProviderError> {
        Ok(DryRun::Accepted {
            object: self.with_status(res.body.clone()),
        })
    }

    async fn apply(&self, res: &Resource, _force: bool) -> Result<Value, ProviderError> {
        self.applies.lock().expect("lock").push(res.id.clone());
        self.objects
            .lock()
            .expect("lock")
            .insert(res.id.clone(), res.body.clone());
        Ok(self.with_status(res.body.clone()))
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        self.objects.lock().expect("lock").remove(id);
        Ok(())
    }

    async fn wait_ready(
        &self,
        res: &Resource,
        _opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<Value, ProviderError> {
        Ok(self.read(&res.id).await?.unwrap_or(Value::Null))
    }

    async fn wait_gone(
        &self,
        _id: &ResourceId,
        _opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn list_owned(
        &self,
        _stack: &str,
        _kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError> {
        Ok(Vec::new())
    }
}
