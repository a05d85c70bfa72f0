//! The library's driver in a program of one's own, run in-process: a stack
//! defined in code whose only resource belongs to a provider the program
//! registers (`Driver::provider`), so no cluster is involved: `preview`
//! (with `--detailed-exitcode`), `up`, a no-op `up`, `outputs`, `destroy`
//! (verified through the provider's `list_owned`), each checked in the
//! provider's store and the state directory.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use preview_core::events::EventSink;
use preview_core::observe::DryRun;
use preview_core::provider::{Provider, ProviderError, WaitOptions};
use preview_core::resource::STACK_LABEL;
use preview_core::state::Output;
use preview_core::{ProviderName, Resource, ResourceId, ResourceOptions};
use serde_json::{Value, json};
use stacks::{Stack, StackBuild, StackError, StackInput};
use stacks_cli::Driver;

fn memory() -> ProviderName {
    ProviderName::new("memory").expect("valid name")
}

fn note_id(name: &str) -> ResourceId {
    ResourceId {
        provider: memory(),
        api_version: "notes.example.dev/v1".into(),
        kind: "Note".into(),
        namespace: None,
        name: name.into(),
    }
}

/// Objects kept in memory, by name; counts the writes.
#[derive(Default)]
struct Memory {
    objects: Mutex<BTreeMap<String, Value>>,
    writes: Mutex<usize>,
}

impl Memory {
    fn objects(&self) -> BTreeMap<String, Value> {
        self.objects.lock().expect("lock").clone()
    }

    fn writes(&self) -> usize {
        *self.writes.lock().expect("lock")
    }
}

#[async_trait]
impl Provider for Memory {
    async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
        Ok(self.objects.lock().expect("lock").get(&id.name).cloned())
    }

    async fn dry_run(&self, resource: &Resource, _force: bool) -> Result<DryRun, ProviderError> {
        Ok(DryRun::Accepted {
            object: resource.body.clone(),
        })
    }

    async fn apply(&self, resource: &Resource, _force: bool) -> Result<Value, ProviderError> {
        *self.writes.lock().expect("lock") += 1;
        self.objects
            .lock()
            .expect("lock")
            .insert(resource.id.name.clone(), resource.body.clone());
        Ok(resource.body.clone())
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        *self.writes.lock().expect("lock") += 1;
        self.objects.lock().expect("lock").remove(&id.name);
        Ok(())
    }

    async fn wait_ready(
        &self,
        resource: &Resource,
        _opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<Value, ProviderError> {
        self.read(&resource.id)
            .await?
            .ok_or_else(|| ProviderError::NotReady {
                id: resource.id.clone(),
                message: "gone after the write".into(),
            })
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
        stack: &str,
        _kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError> {
        Ok(self
            .objects()
            .iter()
            .filter(|(_, v)| {
                v.pointer("/metadata/labels")
                    .and_then(|l| l.get(STACK_LABEL))
                    == Some(&json!(stack))
            })
            .map(|(name, _)| note_id(name))
            .collect())
    }
}

/// `notes`: one note; its text is `--web-image`, for the sake of the test.
struct Notes;

impl Stack for Notes {
    fn name(&self) -> &str {
        "notes"
    }

    fn providers(&self) -> Vec<ProviderName> {
        vec![memory()]
    }

    fn build(&self, input: &StackInput<'_>) -> Result<StackBuild, StackError> {
        let text = input.params.image("web").unwrap_or("first");
        let note = Resource {
            id: note_id("todo"),
            body: json!({
                "apiVersion": "notes.example.dev/v1",
                "kind": "Note",
                "metadata": {"name": "todo", "labels": {STACK_LABEL: input.instance}},
                "text": text,
            }),
            depends_on: BTreeSet::new(),
            options: ResourceOptions::default(),
        };
        let mut build = StackBuild::new(input.instance, vec![note]);
        build
            .outputs
            .insert("text".to_owned(), Output::Plain(text.into()));
        Ok(build)
    }
}

#[tokio::test]
async fn a_program_of_ones_own_runs_its_stack_on_its_own_provider() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(Memory::default());
    let backend = format!("file://{}", dir.path().display());
    let run = |args: &[&str]| {
        let mut argv = vec!["notes", "--backend", &backend, "--progress", "none"];
        argv.extend_from_slice(args);
        let argv: Vec<String> = argv.into_iter().map(str::to_owned).collect();
        let driver = Driver::new("notes")
            .stack(Notes)
            .provider(memory(), store.clone());
        async move { driver.run_from(argv).await }
    };

    let pending = run(&["preview", "notes", "--detailed-exitcode"]).await;
    assert_eq!(
        pending,
        ExitCode::from(2),
        "changes pending before the first up"
    );
    assert!(store.objects().is_empty(), "preview writes nothing");

    assert_eq!(run(&["up", "notes"]).await, ExitCode::SUCCESS);
    let objects = store.objects();
    assert_eq!(objects["todo"]["text"], "first");
    assert_eq!(objects["todo"]["metadata"]["labels"][STACK_LABEL], "notes");
    assert!(dir.path().join("notes.json").is_file(), "state recorded");
    let writes = store.writes();

    assert_eq!(run(&["up", "notes"]).await, ExitCode::SUCCESS);
    assert_eq!(store.writes(), writes, "a no-op up writes nothing");
    let none = run(&["preview", "notes", "--detailed-exitcode"]).await;
    assert_eq!(none, ExitCode::SUCCESS, "no changes");

    assert_eq!(
        run(&["up", "notes", "--web-image", "second"]).await,
        ExitCode::SUCCESS
    );
    assert_eq!(store.objects()["todo"]["text"], "second");
    assert_eq!(run(&["outputs", "notes"]).await, ExitCode::SUCCESS);

    assert_eq!(run(&["destroy", "notes"]).await, ExitCode::SUCCESS);
    assert!(store.objects().is_empty(), "destroyed");
    assert!(!dir.path().join("notes.json").exists(), "state removed");
    // --pr is for stacks that take one.
    assert_eq!(run(&["up", "notes", "--pr", "3"]).await, ExitCode::FAILURE);
    assert!(store.objects().is_empty());
}
