//! `/v2/domains/{domain_name}/records[/{domain_record_id}]`: what DigitalOcean does
//! for each request (after the request passed the description's checks).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Value, json};

use crate::model::{Record, State};
use crate::pages::page_of;
use crate::server::{Call, Reply};

/// DigitalOcean's smallest accepted TTL, in seconds.
pub const MIN_TTL: i64 = 30;
/// TTL of a record created without one.
pub const DEFAULT_TTL: i64 = 1800;

pub(crate) fn handle(state: &mut State, call: &Call<'_>) -> Reply {
    let (domain, rest) = match call.segments.as_slice() {
        ["v2", "domains", domain, "records", rest @ ..] => (*domain, rest),
        _ => return Reply::not_found(),
    };
    if !state.domains.contains_key(domain) {
        return Reply::not_found();
    }
    match (call.method, rest) {
        ("GET", []) => list(state, call, domain),
        ("POST", []) => create(state, call, domain),
        (method, [id]) => {
            let Ok(id) = id.parse::<u64>() else {
                return Reply::not_found();
            };
            match method {
                "GET" => get(state, domain, id),
                "PATCH" | "PUT" => update(state, call, domain, id),
                "DELETE" => delete(state, domain, id),
                _ => Reply::not_found(),
            }
        }
        _ => Reply::not_found(),
    }
}

fn records<'s>(state: &'s mut State, domain: &str) -> &'s mut Vec<Record> {
    state.domains.entry(domain.to_owned()).or_default()
}

fn list(state: &mut State, call: &Call<'_>, domain: &str) -> Reply {
    let record_type = call.query("type");
    let name = call.query("name");
    let items: Vec<Value> = records(state, domain)
        .iter()
        .filter(|r| record_type.is_none_or(|t| r.record_type == t))
        .filter(|r| name.is_none_or(|n| r.fqdn(domain).eq_ignore_ascii_case(n)))
        .map(Record::to_json)
        .collect();
    page_of(call, "domain_records", items)
}

fn get(state: &mut State, domain: &str, id: u64) -> Reply {
    match records(state, domain).iter().find(|r| r.id == id) {
        Some(record) => Reply::json(200, json!({"domain_record": record.to_json()})),
        None => Reply::not_found(),
    }
}

fn int(body: &Value, key: &str) -> Option<i64> {
    body.get(key).and_then(Value::as_i64)
}

fn text(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// DigitalOcean's own checks beyond the schema: data fits the type, TTL floor,
/// names are relative to the zone.
fn check(record: &Record, domain: &str) -> Result<(), String> {
    match record.record_type.as_str() {
        "A" if record.data.parse::<Ipv4Addr>().is_err() => {
            return Err(format!(
                "Data needs to be a valid IPv4 address (got {:?}).",
                record.data
            ));
        }
        "AAAA" if record.data.parse::<Ipv6Addr>().is_err() => {
            return Err(format!(
                "Data needs to be a valid IPv6 address (got {:?}).",
                record.data
            ));
        }
        _ => {}
    }
    if record.ttl < MIN_TTL {
        return Err(format!(
            "TTL must be at least {MIN_TTL} seconds (got {}).",
            record.ttl
        ));
    }
    if record.name.is_empty() || record.name.ends_with(&format!(".{domain}")) {
        return Err(format!(
            "Name {:?} must be relative to the domain {domain} (e.g. `www`, `*.pr` or `@`).",
            record.name
        ));
    }
    if record.data.is_empty() {
        return Err("Data can't be blank.".to_owned());
    }
    Ok(())
}

fn create(state: &mut State, call: &Call<'_>, domain: &str) -> Reply {
    let body = &call.body;
    let mut record = Record {
        id: 0,
        record_type: text(body, "type").unwrap_or_default(),
        name: text(body, "name").unwrap_or_default(),
        data: text(body, "data").unwrap_or_default(),
        ttl: int(body, "ttl").unwrap_or(DEFAULT_TTL),
        priority: int(body, "priority"),
        port: int(body, "port"),
        weight: int(body, "weight"),
        flags: int(body, "flags"),
        tag: text(body, "tag"),
    };
    if let Err(message) = check(&record, domain) {
        return Reply::unprocessable(&message);
    }
    record.id = state.next_id();
    let json = record.to_json();
    records(state, domain).push(record);
    Reply::json(201, json!({ "domain_record": json }))
}

fn update(state: &mut State, call: &Call<'_>, domain: &str, id: u64) -> Reply {
    let body = &call.body;
    let Some(current) = records(state, domain).iter().find(|r| r.id == id).cloned() else {
        return Reply::not_found();
    };
    let mut updated = current.clone();
    if let Some(record_type) = text(body, "type")
        && record_type != current.record_type
    {
        return Reply::unprocessable(&format!(
            "The type of a record cannot change ({} to {record_type}); delete it and create a new one.",
            current.record_type
        ));
    }
    if let Some(name) = text(body, "name") {
        updated.name = name;
    }
    if let Some(data) = text(body, "data") {
        updated.data = data;
    }
    if let Some(ttl) = int(body, "ttl") {
        updated.ttl = ttl;
    }
    for (key, slot) in [
        ("priority", &mut updated.priority),
        ("port", &mut updated.port),
        ("weight", &mut updated.weight),
        ("flags", &mut updated.flags),
    ] {
        if body.get(key).is_some() {
            *slot = int(body, key);
        }
    }
    if body.get("tag").is_some() {
        updated.tag = text(body, "tag");
    }
    if let Err(message) = check(&updated, domain) {
        return Reply::unprocessable(&message);
    }
    let json = updated.to_json();
    if let Some(slot) = records(state, domain).iter_mut().find(|r| r.id == id) {
        *slot = updated;
    }
    Reply::json(200, json!({ "domain_record": json }))
}

fn delete(state: &mut State, domain: &str, id: u64) -> Reply {
    let list = records(state, domain);
    let before = list.len();
    list.retain(|r| r.id != id);
    if list.len() == before {
        Reply::not_found()
    } else {
        Reply::no_content()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_checks() {
        let record = |t: &str, name: &str, data: &str, ttl: i64| Record::new(1, t, name, data, ttl);
        assert!(check(&record("A", "*.pr", "10.0.0.1", 300), "example.com").is_ok());
        assert!(check(&record("A", "*.pr", "not-an-ip", 300), "example.com").is_err());
        assert!(check(&record("AAAA", "@", "10.0.0.1", 300), "example.com").is_err());
        assert!(check(&record("A", "x", "10.0.0.1", 10), "example.com").is_err());
        assert!(check(&record("A", "x.example.com", "10.0.0.1", 60), "example.com").is_err());
        assert!(check(&record("TXT", "_x", "hello", 60), "example.com").is_ok());
    }
}
