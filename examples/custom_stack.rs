//! A stack of your own, defined in code, with the commands of the `stacks`
//! binary: the library as an SDK.
//!
//! `hello` is a namespace (PodSecurity `restricted`), a ConfigMap, a
//! Deployment serving it and a Service, built from the `components` crate and
//! typed `k8s-openapi` objects through the [`Stack`] trait; [`Driver`] gives it
//! `render`, `preview`, `up`, `destroy`, `refresh`, `outputs`, `import` and
//! `state …`, planned and applied by the engine exactly as `stacks` does for
//! its own stacks (ownership labels, no-op runs that send no write, verified
//! destroy). The whole `main` is the `Driver` line.
//!
//! Run it against the local control plane (`scripts/control-plane.sh install`
//! once; `local-cluster --simulate` stands in for the kubelet, so the pods
//! become ready):
//!
//! ```sh
//! cargo run -p testkit --bin local-cluster -- --simulate --kubeconfig-out /tmp/hello-kubeconfig &
//! export KUBECONFIG=/tmp/hello-kubeconfig   # once local-cluster prints `export KUBECONFIG=…`
//! cargo run -p preview-examples --example custom_stack -- render hello
//! cargo run -p preview-examples --example custom_stack -- preview hello
//! cargo run -p preview-examples --example custom_stack -- up hello
//! cargo run -p preview-examples --example custom_stack -- up hello --web-image docker.io/nginxinc/nginx-unprivileged:1.27
//! cargo run -p preview-examples --example custom_stack -- outputs hello
//! cargo run -p preview-examples --example custom_stack -- destroy hello
//! ```
//!
//! State goes to `--backend` (default `file://.preview/state`). The image is
//! `--web-image` (default the pinned `nginx-unprivileged`). `examples/tests/`
//! runs it on the test kit's cluster and checks what it created and destroyed.

use std::collections::BTreeMap;
use std::process::ExitCode;

use components::{EnvConfigMap, Hardening, Labels, PodSecurity, PreviewNamespace};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, PodSpec, PodTemplateSpec,
    ResourceRequirements, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use preview_core::Resource;
use preview_core::state::Output;
use stacks::{Stack, StackBuild, StackError, StackInput};
use stacks_cli::Driver;

/// The namespace everything lives in.
const NAMESPACE: &str = "hello";
/// The port the (unprivileged) web server listens on.
const PORT: i32 = 8080;

/// `hello`: a greeting page.
struct Hello;

impl Stack for Hello {
    fn name(&self) -> &str {
        "hello"
    }

    fn about(&self) -> &str {
        "A greeting page: namespace, ConfigMap, Deployment and Service"
    }

    fn build(&self, input: &StackInput<'_>) -> Result<StackBuild, StackError> {
        let image = input
            .params
            .image("web")
            .unwrap_or(stacks::config::DEFAULT_NGINX_IMAGE);
        let labels = Labels::for_instance("hello", input.instance);
        let namespace = PreviewNamespace {
            labels: labels.clone(),
            pod_security: Some(PodSecurity::default()),
            ..PreviewNamespace::new(NAMESPACE)
        }
        .build()?;
        let config = EnvConfigMap {
            labels: labels.clone(),
            ..EnvConfigMap::new(
                NAMESPACE,
                "greeting",
                BTreeMap::from([(
                    "GREETING".to_owned(),
                    "hello from a stack in code".to_owned(),
                )]),
            )
        }
        .build()?;
        let deployment = Resource::from_typed(&deployment(image, &config.id.name))
            .map_err(|e| StackError::Invalid(format!("Deployment {NAMESPACE}/web: {e}")))?
            .depends_on(&config.id);
        let service = Resource::from_typed(&service())
            .map_err(|e| StackError::Invalid(format!("Service {NAMESPACE}/web: {e}")))?;
        let mut resources = namespace.into_resources();
        resources.extend([config, deployment, service]);
        let mut build = StackBuild::new(input.instance, resources);
        build.outputs.insert(
            "url".to_owned(),
            Output::Plain(format!("http://web.{NAMESPACE}.svc.cluster.local").into()),
        );
        build
            .outputs
            .insert("image".to_owned(), Output::Plain(image.into()));
        Ok(build)
    }
}

/// The web server, restricted-compliant, its environment from the ConfigMap.
fn deployment(image: &str, config_map: &str) -> Deployment {
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_owned(), "web".to_owned())]);
    let quantity = |q: &str| Quantity(q.to_owned());
    let mut pod = PodSpec {
        containers: vec![Container {
            name: "web".into(),
            image: Some(image.into()),
            ports: Some(vec![ContainerPort {
                container_port: PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            }]),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: config_map.into(),
                    optional: Some(false),
                }),
                ..EnvFromSource::default()
            }]),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_owned(), quantity("50m")),
                    ("memory".to_owned(), quantity("64Mi")),
                ])),
                limits: Some(BTreeMap::from([
                    ("cpu".to_owned(), quantity("200m")),
                    ("memory".to_owned(), quantity("128Mi")),
                ])),
                ..ResourceRequirements::default()
            }),
            ..Container::default()
        }],
        ..PodSpec::default()
    };
    Hardening::default().apply(&mut pod);
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(selector.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// Port 80 of Service `web` leads to the pods' 8080.
fn service() -> Service {
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_owned(), "web".to_owned())]);
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(selector.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::Int(PORT)),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    Driver::new("custom_stack")
        .about("A stack defined in code (examples/custom_stack.rs), with the commands of `stacks`.")
        .stack(Hello)
        .run()
        .await
}
