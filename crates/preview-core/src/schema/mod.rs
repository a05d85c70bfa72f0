//! Typed schemas of the resources that are not Kubernetes objects: the bodies
//! components build and providers read, as plain serde data (no IO). A
//! provider crate works on these types; a component never needs a provider.
//!
//! - [`database`]: the PostgreSQL `Database` (and [`database_role`], its per-PR login role);
//! - [`dns_record`]: a DigitalOcean `DomainRecord`;
//! - [`doks_cluster`]: a DigitalOcean `KubernetesCluster`.

pub mod database;
pub mod database_role;
pub mod dns_record;
pub mod doks_cluster;
