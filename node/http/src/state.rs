//! The state every handler of both listeners shares (the API's and the portal's).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use lien_node::Node;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::host;
use crate::portal::PortalSettings;

/// Shared state of the API handlers.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) node: Node,
    pub(crate) token: Arc<Zeroizing<String>>,
    /// This listener's request slots.
    pub(crate) permits: Arc<Semaphore>,
    /// The `Host` names this listener answers.
    pub(crate) hosts: Arc<host::HostPolicy>,
    /// Anyone may reach this listener (the portal listener, or an API bound beyond loopback):
    /// on-demand fetches only for held or mirrored datasets, `/node` without addresses and
    /// restricted titles.
    pub(crate) public: bool,
    /// Fetches running on behalf of API clients (`get` and the gateway).
    pub(crate) fetches_active: Arc<AtomicU64>,
    /// One on-demand gateway fetch at a time, so two requests never fill the same folder at once.
    pub(crate) gateway_fetch: Arc<tokio::sync::Mutex<()>>,
    /// The portal's settings (shared by the API and the portal listener).
    pub(crate) portal: Arc<PortalSettings>,
}
