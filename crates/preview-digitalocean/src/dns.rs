//! `DomainRecord`: DNS records in a DigitalOcean zone, with ownership TXT markers
//! (see the module docs of [`super`] and [`super::record`]). A `dataFrom` is
//! resolved by the engine: dry-run and apply get the record's `data`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::record::{self, DesiredRecord, RecordData, RecordKey};
use super::{DigitalOceanProvider, DomainRecord, RecordFields, api_error, other};
use preview_core::events::{Event, EventSink};
use preview_core::observe::DryRun;
use preview_core::provider::{ProviderError, WaitOptions};
use preview_core::resource::{Resource, ResourceId};
use preview_core::values::ValueFrom;

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

    /// The data to write: the literal, checked against the record's type. A
    /// `dataFrom` reaches the provider resolved by the engine; an unresolved one
    /// is refused.
    fn desired_data(desired: &DesiredRecord, id: &ResourceId) -> Result<String, ProviderError> {
        let data = match &desired.data {
            RecordData::Literal(data) => data.clone(),
            RecordData::From(from) => {
                return Err(other(
                    id,
                    format!(
                        "field dataFrom ({} {}) reached the DigitalOcean provider unresolved (the engine sets data from it before a record is applied)",
                        from.describe(),
                        from.path
                    ),
                ));
            }
        };
        record::check_data(&desired.key.record_type, &data)
            .map_err(|m| other(id, format!("field data: {m}")))?;
        Ok(data)
    }

    /// The values a record reads from a cluster object (its `dataFrom`).
    pub(super) fn record_values_from(res: &Resource) -> Result<Vec<ValueFrom>, ProviderError> {
        match Self::desired_record(res)?.data {
            RecordData::From(from) => Ok(vec![from.value_from()]),
            RecordData::Literal(_) => Ok(Vec::new()),
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
        Ok(Some(record::live_value(
            &key,
            Some(live.id),
            &live.data,
            live.ttl,
            owner,
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
        let data = match Self::desired_data(&desired, &res.id) {
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
        };
        Ok(DryRun::Accepted {
            object: record::live_value(
                &desired.key,
                observed.record.as_ref().map(|r| r.id),
                &data,
                desired.ttl,
                Some(&desired.owner),
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
        let data = Self::desired_data(&desired, id)?;
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
