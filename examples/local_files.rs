//! A provider of your own, registered by name, without touching the core.
//!
//! `local-files` keeps objects of kind `File` (`files.example.dev/v1`) as JSON
//! documents in a directory: one file per object, named after it. The engine
//! plans, applies, records, and destroys them with verification exactly as it
//! does Kubernetes objects: the provider only reads, writes, deletes and lists.
//!
//! Run it (no cluster needed):
//!
//! ```sh
//! cargo run -p preview-examples --example local_files            # in a temporary directory
//! cargo run -p preview-examples --example local_files -- ./demo  # or in ./demo
//! ```
//!
//! It creates two files (the second depends on the first), runs a no-op `up`,
//! changes one file, and destroys the stack; each step's plan is printed, and
//! every step checks what it expects, so the example fails loudly if the seam
//! breaks. `scripts/test.sh` runs it.

// Engine errors name the whole ResourceId they are about (see preview-core).
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use preview_core::engine::{Engine, EngineOptions, Providers};
use preview_core::events::EventSink;
use preview_core::graph::DesiredGraph;
use preview_core::observe::DryRun;
use preview_core::plan::Plan;
use preview_core::provider::{Provider, ProviderError, WaitOptions};
use preview_core::render::{self, TextOptions};
use preview_core::resource::STACK_LABEL;
use preview_core::state::file::FileBackend;
use preview_core::{ProviderName, Resource, ResourceId, ResourceOptions};
use serde_json::{Value, json};

/// `apiVersion` of the objects this provider manages.
const API_VERSION: &str = "files.example.dev/v1";
/// `kind` of the objects this provider manages.
const KIND: &str = "File";

/// The provider's name, as resource ids and state files carry it.
fn provider_name() -> ProviderName {
    ProviderName::new("local-files").expect("a valid constant provider name")
}

/// Objects kept as `<dir>/<name>.json`.
struct DirectoryProvider {
    dir: PathBuf,
}

impl DirectoryProvider {
    fn path(&self, id: &ResourceId) -> PathBuf {
        self.dir.join(format!("{}.json", id.name))
    }

    fn error(id: &ResourceId, what: &str, e: impl std::fmt::Display) -> ProviderError {
        ProviderError::Other {
            id: id.clone(),
            message: format!("{what}: {e}"),
        }
    }
}

#[async_trait]
impl Provider for DirectoryProvider {
    async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
        match tokio::fs::read(self.path(id)).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Self::error(id, "not JSON", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::error(id, "read", e)),
        }
    }

    async fn dry_run(&self, resource: &Resource, _force: bool) -> Result<DryRun, ProviderError> {
        // Nothing is defaulted by this "server": the stored object is the body.
        Ok(DryRun::Accepted {
            object: resource.body.clone(),
        })
    }

    async fn apply(&self, resource: &Resource, _force: bool) -> Result<Value, ProviderError> {
        let text = serde_json::to_vec_pretty(&resource.body)
            .map_err(|e| Self::error(&resource.id, "encode", e))?;
        tokio::fs::write(self.path(&resource.id), text)
            .await
            .map_err(|e| Self::error(&resource.id, "write", e))?;
        Ok(resource.body.clone())
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        match tokio::fs::remove_file(self.path(id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::error(id, "delete", e)),
        }
    }

    async fn wait_ready(
        &self,
        resource: &Resource,
        _opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<Value, ProviderError> {
        // A written file is ready at once.
        self.read(&resource.id)
            .await?
            .ok_or_else(|| Self::error(&resource.id, "wait", "the file vanished after the write"))
    }

    async fn wait_gone(
        &self,
        id: &ResourceId,
        _opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<(), ProviderError> {
        match self.read(id).await? {
            None => Ok(()),
            Some(_) => Err(ProviderError::NotReady {
                id: id.clone(),
                message: "the file still exists".into(),
            }),
        }
    }

    async fn list_owned(
        &self,
        stack: &str,
        _kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError> {
        let dir_id = file_id(".");
        let mut owned = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| Self::error(&dir_id, "list", e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| Self::error(&dir_id, "list", e))?
        {
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .map(str::to_owned)
            else {
                continue;
            };
            let id = file_id(&name);
            let ours = self.read(&id).await?.is_some_and(|v| {
                v.pointer("/metadata/labels")
                    .and_then(|l| l.get(STACK_LABEL))
                    .and_then(Value::as_str)
                    == Some(stack)
            });
            if ours {
                owned.push(id);
            }
        }
        Ok(owned)
    }
}

fn file_id(name: &str) -> ResourceId {
    ResourceId {
        provider: provider_name(),
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        namespace: None,
        name: name.into(),
    }
}

/// A component of this example: a `File` with its content, owned by `stack`
/// (the label is how the engine's ownership checks recognise it).
fn file(stack: &str, name: &str, content: &str, after: &[&str]) -> Resource {
    Resource {
        id: file_id(name),
        body: json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "labels": {STACK_LABEL: stack}},
            "content": content,
        }),
        depends_on: after.iter().map(|n| file_id(n)).collect::<BTreeSet<_>>(),
        options: ResourceOptions::default(),
    }
}

fn show(title: &str, plan: &Plan) {
    println!("== {title}");
    print!(
        "{}",
        render::text(
            plan,
            &TextOptions {
                color: false,
                show_unchanged: false,
            },
        )
    );
}

fn check(ok: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected: {what}").into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let root = match std::env::args().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => scratch.path().to_owned(),
    };
    let objects = root.join("objects");
    std::fs::create_dir_all(&objects)?;
    let stack = "files-demo";

    let providers = Providers::new().with(
        provider_name(),
        Arc::new(DirectoryProvider {
            dir: objects.clone(),
        }),
    );
    let engine = Engine::new(
        providers,
        Arc::new(FileBackend::new(root.join("state"))),
        EventSink::none(),
        EngineOptions::default(),
    );
    let graph = |greeting: &str| {
        DesiredGraph::new(
            stack,
            vec![
                file(stack, "greeting", greeting, &[]),
                file(stack, "reply", "hello to you too", &["greeting"]),
            ],
        )
    };

    let first = engine.up(&graph("hello")?, BTreeMap::new()).await?;
    show("first up", &first.plan);
    check(
        first.plan.summary().create == 2,
        "the first up creates both files",
    )?;
    check(count(&objects)? == 2, "two files exist")?;

    let again = engine.up(&graph("hello")?, BTreeMap::new()).await?;
    show("no-op up", &again.plan);
    check(
        again.plan.summary().no_op == 2,
        "a second up changes nothing",
    )?;

    let changed = engine.up(&graph("good morning")?, BTreeMap::new()).await?;
    show("change", &changed.plan);
    check(changed.plan.summary().update == 1, "one file is updated")?;
    let stored: Value = serde_json::from_slice(&std::fs::read(objects.join("greeting.json"))?)?;
    check(
        stored["content"] == "good morning",
        "the new content is stored",
    )?;

    let destroyed = engine.destroy(stack).await?;
    show(
        "destroy (verified: nothing of the stack is left)",
        &destroyed.plan,
    );
    check(count(&objects)? == 0, "no file is left")?;
    println!("ok: {} under {}", stack, root.display());
    Ok(())
}

fn count(dir: &Path) -> std::io::Result<usize> {
    Ok(std::fs::read_dir(dir)?.count())
}
