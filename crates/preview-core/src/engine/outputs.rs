//! The outputs an `up` records: the ones the caller gives (known when the
//! stack is built), and the ones providers compute from ready resources
//! ([`Provider::outputs`]), secret ones sealed here with the stack's data key.
//!
//! A computed output replaces a given one of the same name. A
//! [`ComputedOutput::Kept`] output keeps the value the state recorded; a secret
//! that seals the same plain text keeps its recorded sealed value
//! ([`Sealer::seal_keeping`]), so a run whose outputs are still good changes
//! nothing and writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Engine, EngineError};
use crate::graph::DesiredGraph;
use crate::observe::Observed;
use crate::plan::{Action, Plan};
use crate::provider::ComputedOutput;
use crate::resource::ResourceId;
use crate::state::crypto::Sealer;
use crate::state::{Output, StackState};

/// The outputs to record and the names providers computed anew (not kept).
pub(super) struct Recorded {
    /// Every output of the stack after the run.
    pub(super) outputs: BTreeMap<String, Output>,
    /// Outputs providers computed in this run ([`ComputedOutput::Plain`] or
    /// [`ComputedOutput::Secret`]), by name.
    pub(super) computed: BTreeSet<String>,
}

impl Engine {
    /// The first resource of `graph` whose provider may compute secret outputs
    /// ([`crate::provider::Provider::secret_outputs`]).
    pub(super) fn with_secret_outputs<'g>(
        &self,
        graph: &'g DesiredGraph,
    ) -> Option<&'g ResourceId> {
        graph
            .resources()
            .find(|res| {
                self.providers
                    .for_resource(&res.id)
                    .is_ok_and(|p| p.secret_outputs(res))
            })
            .map(|res| &res.id)
    }

    /// Refuses an `up` that could not seal its secret outputs (no sealer),
    /// before anything is read or sent.
    pub(super) fn check_sealer(&self, graph: &DesiredGraph) -> Result<(), EngineError> {
        match (&self.options.sealer, self.with_secret_outputs(graph)) {
            (None, Some(id)) => Err(EngineError::NoSealer(id.clone())),
            _ => Ok(()),
        }
    }

    /// The stack's sealer for this run: opened (or created, recorded in
    /// `state`) before anything is sent when a resource has secret outputs,
    /// so a wrong or missing passphrase fails first.
    pub(super) fn open_sealer(
        &self,
        graph: &DesiredGraph,
        state: &mut StackState,
    ) -> Result<Option<Sealer>, EngineError> {
        let Some(id) = self.with_secret_outputs(graph) else {
            return Ok(None);
        };
        match &self.options.sealer {
            Some(sealer) => Ok(Some(sealer.open(state)?)),
            None => Err(EngineError::NoSealer(id.clone())),
        }
    }

    /// The outputs to record after every step of `plan` succeeded: `given`,
    /// with what each ready resource's provider computes from its live object
    /// (`ready`: as this run's wait returned it; else as observed).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn record_outputs(
        &self,
        graph: &DesiredGraph,
        plan: &Plan,
        observed: &Observed,
        ready: &BTreeMap<ResourceId, Value>,
        recorded: &BTreeMap<String, Output>,
        sealer: Option<&Sealer>,
        given: BTreeMap<String, Output>,
    ) -> Result<Recorded, EngineError> {
        let mut out = Recorded {
            outputs: given,
            computed: BTreeSet::new(),
        };
        for step in &plan.steps {
            let Some(res) = graph.get(&step.id) else {
                continue;
            };
            let live = match ready.get(&step.id) {
                Some(live) => live,
                None if step.action == Action::NoOp => {
                    match observed.get(&step.id).and_then(|o| o.live.as_ref()) {
                        Some(live) => live,
                        None => continue,
                    }
                }
                None => continue,
            };
            let provider = self.providers.for_resource(&step.id)?;
            let computed = provider
                .outputs(res, live, recorded, &self.events)
                .await
                .map_err(EngineError::Outputs)?;
            for (name, value) in computed {
                let output = match value {
                    ComputedOutput::Plain(v) => Output::Plain(v),
                    ComputedOutput::Secret(secret) => {
                        let sealer =
                            sealer.ok_or_else(|| EngineError::NoSealer(step.id.clone()))?;
                        sealer.seal_keeping(&name, &secret, recorded.get(&name))?
                    }
                    ComputedOutput::Kept => match recorded.get(&name) {
                        Some(previous) => {
                            out.outputs.insert(name, previous.clone());
                            continue;
                        }
                        None => {
                            out.outputs.remove(&name);
                            continue;
                        }
                    },
                };
                out.computed.insert(name.clone());
                out.outputs.insert(name, output);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use serde_json::json;

    use super::super::{EngineOptions, Providers};
    use super::*;
    use crate::events::EventSink;
    use crate::observe::DryRun;
    use crate::provider::{Provider, ProviderError, WaitOptions};
    use crate::resource::{ProviderName, Resource};
    use crate::secret::SecretString;
    use crate::state::StateBackend;
    use crate::state::crypto::{KdfParams, StackSealer};
    use crate::state::file::FileBackend;

    const PASSPHRASE: &str = "outputs test passphrase, long enough";
    const CANARY: &str = "computed-secret-canary-51c2";

    /// Objects in memory; computes `endpoint` (plain) and `token` (secret)
    /// for each object, or keeps both once `keep` is set; `fail` fails.
    #[derive(Default)]
    struct Computing {
        objects: Mutex<BTreeMap<ResourceId, Value>>,
        token: Mutex<String>,
        keep: std::sync::atomic::AtomicBool,
        fail: std::sync::atomic::AtomicBool,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Provider for Computing {
        async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(self.objects.lock().expect("lock").get(id).cloned())
        }
        async fn dry_run(&self, res: &Resource, _: bool) -> Result<DryRun, ProviderError> {
            Ok(DryRun::Accepted {
                object: res.body.clone(),
            })
        }
        async fn apply(&self, res: &Resource, _: bool) -> Result<Value, ProviderError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut live = res.body.clone();
            live["status"] = json!({"endpoint": format!("https://{}.example", res.id.name)});
            self.objects
                .lock()
                .expect("lock")
                .insert(res.id.clone(), live.clone());
            Ok(live)
        }
        async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
            self.objects.lock().expect("lock").remove(id);
            Ok(())
        }
        async fn wait_ready(
            &self,
            res: &Resource,
            _: WaitOptions,
            _: &EventSink,
        ) -> Result<Value, ProviderError> {
            Ok(self
                .objects
                .lock()
                .expect("lock")
                .get(&res.id)
                .cloned()
                .unwrap_or(Value::Null))
        }
        async fn wait_gone(
            &self,
            _: &ResourceId,
            _: WaitOptions,
            _: &EventSink,
        ) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn list_owned(
            &self,
            _: &str,
            _: &[ResourceId],
        ) -> Result<Vec<ResourceId>, ProviderError> {
            Ok(Vec::new())
        }
        async fn outputs(
            &self,
            res: &Resource,
            live: &Value,
            _: &BTreeMap<String, Output>,
            _: &EventSink,
        ) -> Result<BTreeMap<String, ComputedOutput>, ProviderError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(ProviderError::Other {
                    id: res.id.clone(),
                    message: "the endpoint could not be read".into(),
                });
            }
            if self.keep.load(Ordering::SeqCst) {
                return Ok(BTreeMap::from([
                    ("endpoint".to_owned(), ComputedOutput::Kept),
                    ("token".to_owned(), ComputedOutput::Kept),
                ]));
            }
            let token = self.token.lock().expect("lock").clone();
            Ok(BTreeMap::from([
                (
                    "endpoint".to_owned(),
                    ComputedOutput::Plain(live["status"]["endpoint"].clone()),
                ),
                (
                    "token".to_owned(),
                    ComputedOutput::Secret(SecretString::new(token)),
                ),
            ]))
        }
        fn secret_outputs(&self, _: &Resource) -> bool {
            true
        }
    }

    struct World {
        dir: tempfile::TempDir,
        provider: Arc<Computing>,
    }

    fn world() -> World {
        let provider = Arc::new(Computing::default());
        *provider.token.lock().expect("lock") = CANARY.to_owned();
        World {
            dir: tempfile::tempdir().expect("tempdir"),
            provider,
        }
    }

    impl World {
        fn backend(&self) -> FileBackend {
            FileBackend::new(self.dir.path())
        }
        fn engine(&self, passphrase: Option<&str>) -> Engine {
            let name = ProviderName::new("computing").expect("name");
            Engine::new(
                Providers::new().with(name, self.provider.clone()),
                Arc::new(self.backend()),
                EventSink::none(),
                EngineOptions {
                    sealer: passphrase.map(|p| {
                        StackSealer::new(SecretString::new(p))
                            .with_params(KdfParams::insecure_for_tests())
                    }),
                    ..EngineOptions::default()
                },
            )
        }
        fn state_text(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("s.json")).expect("state file")
        }
    }

    fn graph() -> DesiredGraph {
        let id = ResourceId {
            provider: ProviderName::new("computing").expect("name"),
            api_version: "example.com/v1".into(),
            kind: "Thing".into(),
            namespace: None,
            name: "one".into(),
        };
        let res = Resource {
            body: json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "one"}}),
            id,
            depends_on: Default::default(),
            options: Default::default(),
        };
        DesiredGraph::new("s", vec![res]).expect("graph")
    }

    fn given() -> BTreeMap<String, Output> {
        BTreeMap::from([("name".to_owned(), Output::Plain(json!("one")))])
    }

    #[tokio::test]
    async fn computed_outputs_are_recorded_and_secrets_sealed() {
        let w = world();
        let engine = w.engine(Some(PASSPHRASE));
        let report = engine.up(&graph(), given()).await.expect("up");
        assert_eq!(report.plan.summary().create, 1);
        assert_eq!(
            report.computed,
            BTreeSet::from(["endpoint".to_owned(), "token".to_owned()])
        );
        let stored = w.backend().read("s").await.expect("read").expect("state");
        assert_eq!(stored.outputs, report.outputs);
        assert_eq!(stored.outputs["name"], Output::Plain(json!("one")));
        assert_eq!(
            stored.outputs["endpoint"],
            Output::Plain(json!("https://one.example"))
        );
        assert!(!w.state_text().contains(CANARY), "the secret is sealed");
        let sealer = Sealer::open(&stored, &SecretString::new(PASSPHRASE)).expect("open");
        let token = sealer
            .unseal("token", &stored.outputs["token"])
            .expect("unseal");
        assert_eq!(token.expose(), CANARY);

        // The same secret again: the sealed value is kept, nothing is written.
        let text = w.state_text();
        let report = engine.up(&graph(), given()).await.expect("no-op");
        assert!(report.plan.is_empty());
        assert_eq!(w.state_text(), text, "nothing changed, nothing written");

        // Kept outputs stay as recorded, also when not given again.
        w.provider.keep.store(true, Ordering::SeqCst);
        let report = engine.up(&graph(), BTreeMap::new()).await.expect("kept");
        assert!(report.computed.is_empty());
        let stored = w.backend().read("s").await.expect("read").expect("state");
        assert!(!stored.outputs.contains_key("name"), "not given: gone");
        assert_eq!(
            stored.outputs["endpoint"],
            Output::Plain(json!("https://one.example"))
        );
        assert!(matches!(stored.outputs["token"], Output::Secret(_)));

        // A new secret value is sealed anew.
        w.provider.keep.store(false, Ordering::SeqCst);
        *w.provider.token.lock().expect("lock") = "rotated".into();
        let report = engine.up(&graph(), BTreeMap::new()).await.expect("rotated");
        let sealer = Sealer::open(
            &w.backend().read("s").await.expect("read").expect("state"),
            &SecretString::new(PASSPHRASE),
        )
        .expect("open");
        let token = sealer
            .unseal("token", &report.outputs["token"])
            .expect("unseal");
        assert_eq!(token.expose(), "rotated");
    }

    #[tokio::test]
    async fn secret_outputs_need_the_right_sealer_before_anything_is_sent() {
        let w = world();
        let err = w
            .engine(None)
            .up(&graph(), given())
            .await
            .expect_err("no sealer");
        assert!(matches!(err, EngineError::NoSealer(_)), "{err}");
        assert!(err.to_string().contains("Thing one"), "{err}");
        assert_eq!(w.provider.calls.load(Ordering::SeqCst), 0, "nothing read");
        assert!(!w.dir.path().join("s.json").exists());

        // A passphrase too short for a new key fails before anything is sent.
        let err = w
            .engine(Some("short"))
            .up(&graph(), given())
            .await
            .expect_err("too short");
        assert!(err.to_string().contains("too short"), "{err}");
        assert_eq!(w.provider.calls.load(Ordering::SeqCst), 0, "nothing read");

        w.engine(Some(PASSPHRASE))
            .up(&graph(), given())
            .await
            .expect("up");
        let calls = w.provider.calls.load(Ordering::SeqCst);
        let err = w
            .engine(Some("another passphrase, also long"))
            .up(&graph(), given())
            .await
            .expect_err("wrong passphrase");
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        assert_eq!(
            w.provider.calls.load(Ordering::SeqCst),
            calls,
            "nothing read with the wrong passphrase"
        );

        // Preview needs no sealer.
        w.engine(None).preview(&graph()).await.expect("preview");
    }

    #[tokio::test]
    async fn failed_outputs_keep_the_steps_and_the_old_outputs() {
        let w = world();
        w.provider.fail.store(true, Ordering::SeqCst);
        let err = w
            .engine(Some(PASSPHRASE))
            .up(&graph(), given())
            .await
            .expect_err("outputs fail");
        assert!(matches!(err, EngineError::Outputs(_)), "{err}");
        assert!(
            err.to_string().contains("the endpoint could not be read"),
            "{err}"
        );
        let stored = w.backend().read("s").await.expect("read").expect("state");
        assert_eq!(stored.resources.len(), 1, "the applied step is recorded");
        assert!(stored.pending.is_empty());
        assert!(stored.outputs.is_empty(), "no outputs recorded");
    }
}
