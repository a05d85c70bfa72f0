//! `v1/Service`: ready at once (endpoints follow the pods, which their workloads
//! wait for), except `type: LoadBalancer`, which waits for
//! `status.loadBalancer.ingress` to carry an IP or hostname
//! (kube-runtime's `is_service_loadbalancer_provisioned`).

use serde_json::Value;

use super::Readiness;
use super::conditions::str_at;

/// Readiness of a Service.
pub(super) fn evaluate(svc: &Value) -> Readiness {
    if str_at(svc, "/spec/type") != Some("LoadBalancer") {
        return Readiness::Ready;
    }
    let provisioned = svc
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|ingress| {
            ingress
                .iter()
                .any(|i| i.get("ip").is_some() || i.get("hostname").is_some())
        });
    if provisioned {
        Readiness::Ready
    } else {
        Readiness::InProgress("waiting for the load balancer to get an address".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::fixtures::eval;

    const CLUSTER_IP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: preview-pr-7}
spec:
  clusterIP: 10.96.12.34
  clusterIPs: [10.96.12.34]
  ports:
  - {name: http, port: 80, protocol: TCP, targetPort: http}
  selector: {app.kubernetes.io/name: web}
  sessionAffinity: None
  type: ClusterIP
status:
  loadBalancer: {}
"#;

    #[test]
    fn cluster_ip_service_is_ready() {
        assert_eq!(eval(CLUSTER_IP), Readiness::Ready);
    }

    #[test]
    fn load_balancer_waits_for_ingress() {
        let pending = CLUSTER_IP.replace("type: ClusterIP", "type: LoadBalancer");
        assert_eq!(
            eval(&pending),
            Readiness::InProgress("waiting for the load balancer to get an address".into())
        );
        let provisioned = pending.replace(
            "loadBalancer: {}",
            "loadBalancer: {ingress: [{ip: 203.0.113.10}]}",
        );
        assert_eq!(eval(&provisioned), Readiness::Ready);
    }
}
