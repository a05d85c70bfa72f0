//! `DomainRecord`: DNS records in a DigitalOcean zone, with ownership TXT markers
//! and `dataFrom` resolution (see the module docs of [`super`] and [`super::record`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::record::{self, DataFrom, DesiredRecord, RecordData, RecordKey};
use super::{DigitalOceanProvider, DomainRecord, RecordFields, api_error, other};
use preview_core::events::{Event, EventSink};
use preview_core::observe::DryRun;
use preview_core::provider::{ProviderError, WaitOptions};
use preview_core::resource::{Resource, ResourceId};
use preview_kubernetes::kinds::api_for;

/// What the API says about one record key.
#[derive(Debug, Default)]
struct Observed {
    /// The record (at most one per type and name).
    record: Option<DomainRecord>,
    /// Ownership TXT records naming this record: (TXT record, stack).
    markers: Vec<(DomainRecord, String)>,
}

impl Observed {
    /// The owning stack, when every marker names the same one.
    fn owner(&self, id: &ResourceId) -> Result<Option<&str>, ProviderError> {
        let mut stacks: Vec<&str> = self.markers.iter().map(|(_, s)| s.as_str()).collect();
        stacks.sort_unstable();
        stacks.dedup();
        match stacks.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(other(
                id,
                format!(
                    "conflicting ownership markers ({} TXT records at {} name stacks {}); remove the wrong ones in DigitalOcean",
                    record::OWNER_RECORD_NAME,
                    id.namespace.as_deref().unwrap_or_default(),
                    many.join(", ")
                ),
            )),
        }
    }
}

impl DigitalOceanProvider {
    fn record_key(id: &ResourceId) -> Result<RecordKey, ProviderError> {
        RecordKey::from_id(id).map_err(|m| other(id, m))
    }

    fn desired_record(res: &Resource) -> Result<DesiredRecord, ProviderError> {
        DesiredRecord::from_resource(res).map_err(|m| other(&res.id, m))
    }

    /// The record and the ownership markers naming it (two GETs, concurrently).
    async fn observe(&self, id: &ResourceId, key: &RecordKey) -> Result<Observed, ProviderError> {
        let marker_fqdn = record::fqdn(record::OWNER_RECORD_NAME, &key.domain);
        let fqdn = key.fqdn();
        let (records, markers) = tokio::join!(
            self.client
                .list_records(&key.domain, Some(&key.record_type), Some(&fqdn)),
            self.client
                .list_records(&key.domain, Some("TXT"), Some(&marker_fqdn)),
        );
        let mut records = records.map_err(|e| api_error(id, "get", e))?;
        if records.len() > 1 {
            return Err(other(
                id,
                format!(
                    "{} {} records are named {fqdn}; the engine manages exactly one record per type and name: remove the extra ones in DigitalOcean",
                    records.len(),
                    key.record_type
                ),
            ));
        }
        let wanted = key.marker_record();
        let markers = markers
            .map_err(|e| api_error(id, "get", e))?
            .into_iter()
            .filter_map(|txt| {
                let (stack, record) = record::parse_marker(&txt.data)?;
                (record == wanted).then_some((txt, stack))
            })
            .collect();
        Ok(Observed {
            record: records.pop(),
            markers,
        })
    }

    /// The current value of a `dataFrom` source.
    async fn resolve(&self, id: &ResourceId, from: &DataFrom) -> Result<String, ProviderError> {
        let object = from.describe();
        let Some(client) = &self.kube else {
            return Err(other(
                id,
                format!(
                    "field dataFrom: reading {object} needs a Kubernetes connection, and the DigitalOcean provider has none (DigitalOceanProvider::with_kube)"
                ),
            ));
        };
        let object_id = from.object_id();
        let kind = self
            .kinds
            .resolve(client, &object_id)
            .await
            .map_err(|e| other(id, format!("field dataFrom: cannot read {object}: {e}")))?;
        let api = api_for(client, &kind, &object_id)
            .map_err(|e| other(id, format!("field dataFrom: {e}")))?;
        let live = api
            .get_opt(&from.name)
            .await
            .map_err(|e| other(id, format!("field dataFrom: cannot read {object}: {e}")))?
            .ok_or_else(|| other(id, format!("field dataFrom: {object} does not exist")))?;
        let live = serde_json::to_value(&live)
            .map_err(|e| other(id, format!("field dataFrom: cannot encode {object}: {e}")))?;
        match live.pointer(&from.path) {
            Some(Value::String(value)) if !value.is_empty() => Ok(value.clone()),
            Some(value) if !value.is_null() && !value.is_string() => Err(other(
                id,
                format!(
                    "field dataFrom: {object} has {value} at {}, not a string",
                    from.path
                ),
            )),
            _ => Err(other(
                id,
                format!(
                    "field dataFrom: {object} has no value at {} yet (is it programmed, with an address assigned by its load balancer?)",
                    from.path
                ),
            )),
        }
    }

    /// The data the record should have now.
    async fn desired_data(
        &self,
        desired: &DesiredRecord,
        id: &ResourceId,
    ) -> Result<String, ProviderError> {
        let data = match &desired.data {
            RecordData::Literal(data) => data.clone(),
            RecordData::From(from) => self.resolve(id, from).await?,
        };
        Self::checked(desired, id, data)
    }

    /// `data` when it suits the record's type; the error names the field.
    fn checked(
        desired: &DesiredRecord,
        id: &ResourceId,
        data: String,
    ) -> Result<String, ProviderError> {
        record::check_data(&desired.key.record_type, &data).map_err(|m| {
            let field = match &desired.data {
                RecordData::Literal(_) => "field data".to_owned(),
                RecordData::From(from) => {
                    format!("field dataFrom ({} {})", from.describe(), from.path)
                }
            };
            other(id, format!("{field}: {m}"))
        })?;
        Ok(data)
    }

    /// The registered source of `id` when the record's `data` equals its value now.
    async fn in_sync_source(&self, id: &ResourceId, data: &str) -> Option<&DataFrom> {
        let from = self.sources.get(id)?;
        match self.resolve(id, from).await {
            Ok(value) if value == data => Some(from),
            _ => None,
        }
    }

    /// The source to echo after an apply wrote `data` from `desired`.
    fn applied_source<'a>(
        &'a self,
        id: &ResourceId,
        desired: &'a DesiredRecord,
    ) -> Option<&'a DataFrom> {
        match &desired.data {
            RecordData::From(from) if self.sources.get(id) == Some(from) => Some(from),
            _ => None,
        }
    }

    async fn ensure_marker(
        &self,
        id: &ResourceId,
        desired: &DesiredRecord,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let key = &desired.key;
        let text = record::marker_text(key, &desired.owner);
        let fields = RecordFields::simple(
            "TXT",
            record::OWNER_RECORD_NAME,
            &text,
            record::OWNER_RECORD_TTL,
        );
        let mut ours = false;
        for (txt, stack) in &observed.markers {
            if *stack == desired.owner && !ours {
                ours = true;
                continue;
            }
            // Another stack's marker (this is an import / forced take-over), or a
            // duplicate of ours: the record has one owner.
            if !ours {
                self.client
                    .update_record(&key.domain, txt.id, &fields)
                    .await
                    .map_err(|e| api_error(id, "apply", e))?;
                ours = true;
            } else {
                self.client
                    .delete_record(&key.domain, txt.id)
                    .await
                    .map_err(|e| api_error(id, "apply", e))?;
            }
        }
        if !ours {
            self.client
                .create_record(&key.domain, &fields)
                .await
                .map_err(|e| api_error(id, "apply", e))?;
        }
        Ok(())
    }
    pub(super) async fn record_read(
        &self,
        id: &ResourceId,
    ) -> Result<Option<Value>, ProviderError> {
        let key = Self::record_key(id)?;
        let observed = self.observe(id, &key).await?;
        let owner = observed.owner(id)?;
        let Some(live) = &observed.record else {
            return Ok(None);
        };
        let in_sync = self.in_sync_source(id, &live.data).await;
        Ok(Some(record::live_value(
            &key,
            Some(live.id),
            &live.data,
            live.ttl,
            owner,
            in_sync,
        )))
    }

    pub(super) async fn record_dry_run(
        &self,
        res: &Resource,
        force: bool,
    ) -> Result<DryRun, ProviderError> {
        let desired = Self::desired_record(res)?;
        let observed = self.observe(&res.id, &desired.key).await?;
        let owner = observed.owner(&res.id)?;
        if observed.record.is_some() && owner != Some(desired.owner.as_str()) && !force {
            return Ok(DryRun::Rejected {
                code: 409,
                message: not_owned(&desired, owner),
            });
        }
        // A source that cannot be read yet (the Gateway is created or changed in
        // the same run) is shown as such; apply reads it once the Gateway is ready.
        let resolved = match &desired.data {
            RecordData::Literal(data) => Some(data.clone()),
            RecordData::From(from) => self.resolve(&res.id, from).await.ok(),
        };
        let data = match (resolved, &desired.data) {
            (Some(data), _) => match Self::checked(&desired, &res.id, data) {
                Ok(data) => data,
                Err(e) => {
                    return Ok(DryRun::Rejected {
                        code: 422,
                        message: match e {
                            ProviderError::Other { message, .. } => message,
                            e => e.to_string(),
                        },
                    });
                }
            },
            (None, RecordData::From(from)) => {
                format!("(read when applied: {} {})", from.describe(), from.path)
            }
            (None, RecordData::Literal(data)) => data.clone(),
        };
        Ok(DryRun::Accepted {
            object: record::live_value(
                &desired.key,
                observed.record.as_ref().map(|r| r.id),
                &data,
                desired.ttl,
                Some(&desired.owner),
                self.applied_source(&res.id, &desired),
            ),
        })
    }

    pub(super) async fn record_apply(
        &self,
        res: &Resource,
        force: bool,
    ) -> Result<Value, ProviderError> {
        let desired = Self::desired_record(res)?;
        let id = &res.id;
        let key = &desired.key;
        let observed = self.observe(id, key).await?;
        let owner = observed.owner(id)?;
        if observed.record.is_some() && owner != Some(desired.owner.as_str()) && !force {
            return Err(other(
                id,
                format!("{}; refusing to take it over", not_owned(&desired, owner)),
            ));
        }
        let data = self.desired_data(&desired, id).await?;
        // The marker first: a record never exists without its owner's marker.
        self.ensure_marker(id, &desired, &observed).await?;
        let fields = RecordFields::simple(&key.record_type, &key.name, &data, desired.ttl);
        let written = match &observed.record {
            None => self
                .client
                .create_record(&key.domain, &fields)
                .await
                .map_err(|e| api_error(id, "apply", e))?,
            Some(live) if live.data != fields.data || live.ttl != fields.ttl => self
                .client
                .update_record(&key.domain, live.id, &fields)
                .await
                .map_err(|e| api_error(id, "apply", e))?,
            Some(live) => live.clone(),
        };
        Ok(record::live_value(
            key,
            Some(written.id),
            &written.data,
            written.ttl,
            Some(&desired.owner),
            self.applied_source(id, &desired),
        ))
    }

    pub(super) async fn record_delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        let key = Self::record_key(id)?;
        let observed = self.observe(id, &key).await?;
        if let Some(live) = &observed.record {
            if observed.markers.is_empty() {
                return Err(other(
                    id,
                    format!(
                        "{} record {} carries no preview-envs ownership marker ({} TXT record); refusing to delete it",
                        key.record_type,
                        key.fqdn(),
                        record::OWNER_RECORD_NAME
                    ),
                ));
            }
            self.client
                .delete_record(&key.domain, live.id)
                .await
                .map_err(|e| api_error(id, "delete", e))?;
        }
        // The markers go last (also when the record was already gone).
        for (txt, _) in &observed.markers {
            self.client
                .delete_record(&key.domain, txt.id)
                .await
                .map_err(|e| api_error(id, "delete", e))?;
        }
        Ok(())
    }

    pub(super) async fn record_wait_ready(
        &self,
        res: &Resource,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<Value, ProviderError> {
        // The API is synchronous: a record exists once its POST returned.
        let deadline = Instant::now() + opts.timeout;
        loop {
            if let Some(live) = self.record_read(&res.id).await? {
                return Ok(live);
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::NotReady {
                    id: res.id.clone(),
                    message: "the DNS record does not exist after it was created".into(),
                });
            }
            events.emit(Event::Waiting {
                id: res.id.clone(),
                reason: "waiting for the DNS record to appear".into(),
                failing: false,
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(super) async fn record_wait_gone(
        &self,
        id: &ResourceId,
        opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<(), ProviderError> {
        let deadline = Instant::now() + opts.timeout;
        loop {
            if self.record_read(id).await?.is_none() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::NotReady {
                    id: id.clone(),
                    message: "the DNS record still exists after DELETE".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(super) async fn record_list_owned(
        &self,
        stack: &str,
        kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError> {
        let mut zones: BTreeMap<&str, &ResourceId> = BTreeMap::new();
        for id in kinds {
            if let Some(zone) = id.namespace.as_deref() {
                zones.entry(zone).or_insert(id);
            }
        }
        let mut owned = Vec::new();
        for (zone, probe) in zones {
            let marker_fqdn = record::fqdn(record::OWNER_RECORD_NAME, zone);
            let markers = self
                .client
                .list_records(zone, Some("TXT"), Some(&marker_fqdn))
                .await
                .map_err(|e| api_error(probe, "list", e))?;
            for txt in markers {
                let Some((owner, record)) = record::parse_marker(&txt.data) else {
                    continue;
                };
                let Some((record_type, name)) = record.split_once(' ') else {
                    continue;
                };
                if owner != stack {
                    continue;
                }
                let key = RecordKey::new(zone, record_type, name);
                let exists = !self
                    .client
                    .list_records(zone, Some(record_type), Some(&key.fqdn()))
                    .await
                    .map_err(|e| api_error(probe, "list", e))?
                    .is_empty();
                if exists {
                    owned.push(key.id());
                }
            }
        }
        Ok(owned)
    }
}

/// "… exists and is owned by stack X" / "… carries no ownership marker".
fn not_owned(desired: &DesiredRecord, owner: Option<&str>) -> String {
    let key = &desired.key;
    match owner {
        Some(owner) => format!(
            "{} record {} exists and is owned by stack {owner}, not by stack {}",
            key.record_type,
            key.fqdn(),
            desired.owner
        ),
        None => format!(
            "{} record {} exists and carries no preview-envs ownership marker",
            key.record_type,
            key.fqdn()
        ),
    }
}
