//! Failure injection registered at run time, for pods whose templates a test
//! cannot annotate (a stack built by the `stacks` binary in another process).
//!
//! A rule says: pods in `namespace` whose name starts with `pod_prefix` behave
//! as if they carried these [`annotations`](super::annotations). The pod's own
//! annotations win over a rule's; the pod object in the cluster is not changed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Pod;

#[derive(Debug, Clone)]
struct Rule {
    namespace: String,
    pod_prefix: String,
    annotations: BTreeMap<String, String>,
}

/// The rules a [`NodeSimulator`](super::NodeSimulator) applies; cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct PodInjections(Arc<RwLock<Vec<Rule>>>);

impl PodInjections {
    /// Pods in `namespace` named `pod_prefix…` behave as if annotated with `annotations`.
    pub fn add(&self, namespace: &str, pod_prefix: &str, annotations: BTreeMap<String, String>) {
        if let Ok(mut rules) = self.0.write() {
            rules.push(Rule {
                namespace: namespace.to_owned(),
                pod_prefix: pod_prefix.to_owned(),
                annotations,
            });
        }
    }

    /// Removes every rule for `namespace`.
    pub fn clear(&self, namespace: &str) {
        if let Ok(mut rules) = self.0.write() {
            rules.retain(|r| r.namespace != namespace);
        }
    }

    /// The pod's annotations with the matching rules' filled in (the pod's own win).
    pub(crate) fn annotations_of(&self, pod: &Pod) -> Option<BTreeMap<String, String>> {
        let own = pod.metadata.annotations.clone();
        let (Some(namespace), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            return own;
        };
        let Ok(rules) = self.0.read() else {
            return own;
        };
        let mut merged: BTreeMap<String, String> = BTreeMap::new();
        for rule in rules
            .iter()
            .filter(|r| r.namespace == namespace && name.starts_with(&r.pod_prefix))
        {
            merged.extend(rule.annotations.clone());
        }
        if merged.is_empty() {
            return own;
        }
        merged.extend(own.unwrap_or_default());
        Some(merged)
    }

    /// A copy of `pod` whose annotations include the matching rules'.
    pub(crate) fn apply(&self, pod: &Pod) -> Pod {
        let mut pod = pod.clone();
        pod.metadata.annotations = self.annotations_of(&pod);
        pod
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::annotations::{MESSAGE, SIMULATE};

    #[test]
    fn rules_fill_in_and_the_pod_wins() {
        let injections = PodInjections::default();
        injections.add(
            "ns",
            "web-",
            BTreeMap::from([
                (SIMULATE.to_owned(), "CrashLoopBackOff".to_owned()),
                (MESSAGE.to_owned(), "from the rule".to_owned()),
            ]),
        );
        let pod: Pod = serde_yaml_ng::from_str(&format!(
            "metadata: {{name: web-7c9-abc, namespace: ns, annotations: {{'{MESSAGE}': own}}}}"
        ))
        .expect("pod");
        let a = injections
            .apply(&pod)
            .metadata
            .annotations
            .expect("annotations");
        assert_eq!(a[SIMULATE], "CrashLoopBackOff");
        assert_eq!(a[MESSAGE], "own");
        let other: Pod =
            serde_yaml_ng::from_str("metadata: {name: api-1, namespace: ns}").expect("pod");
        assert_eq!(injections.apply(&other).metadata.annotations, None);
        injections.clear("ns");
        assert_eq!(
            injections.apply(&pod).metadata.annotations.expect("own")[MESSAGE],
            "own"
        );
        assert!(
            !injections
                .apply(&pod)
                .metadata
                .annotations
                .expect("own")
                .contains_key(SIMULATE)
        );
    }
}
