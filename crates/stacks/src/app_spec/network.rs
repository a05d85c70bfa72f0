//! The NetworkPolicy rules an app spec implies: ingress from the gateway on the
//! container ports of the routed services (Aphiria: 8080, where its nginx pods
//! listen behind Service port 80).

use super::App;
use super::check::container_port;

/// The container ports the gateway may reach: those of the services a route
/// points at, sorted, without repeats (8080 when there are no routes, the
/// component's default).
pub fn ingress_ports(app: &App) -> Vec<u16> {
    let mut ports: Vec<u16> = app
        .spec
        .routes
        .iter()
        .filter_map(|route| app.spec.services.iter().find(|s| s.name == route.service))
        .filter_map(container_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        ports.push(components::web::HTTP_PORT);
    }
    ports
}
