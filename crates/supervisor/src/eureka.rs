//! Eureka in a drain: mark the instance DOWN when the lame-duck phase starts,
//! cancel it when the phase ends, and (for apps that do not speak Eureka)
//! register and heartbeat it while it serves.
//!
//! This replaces the usual preStop script, `curl -X PUT …/status?value=DOWN;
//! sleep 30`. DOWN goes out first, so Eureka clients stop choosing the instance
//! at their next fetch while it still answers; the lame-duck wait covers their
//! caches; the cancel at the end removes it for good. Every call to a registry
//! is retried with backoff but never past the lame-duck share of the budget: a
//! registry that is slow or down is logged, and the drain goes on.

use std::time::Duration;

use lameduck_drain::format_duration;
use lameduck_eureka::{
    client::{keep_registered, retry, Client},
    model::{Instance, Status},
    Error,
};
use serde_json::json;
use tokio::{task::JoinSet, time::Instant};

use crate::ArgError;

/// How this instance is known to Eureka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EurekaConfig {
    /// Service URLs, e.g. `http://eureka:8761/eureka/` (one or more servers).
    pub servers: Vec<String>,
    /// The application name (upper-cased by Eureka).
    pub app: String,
    /// The instance id; found by `ip` and `port` when not given.
    pub instance_id: Option<String>,
    /// This pod's IP, as registered.
    pub ip: Option<String>,
    /// The app's port, as registered.
    pub port: Option<u16>,
    /// Register and heartbeat the instance here (the app does not).
    pub register: bool,
    /// Heartbeat interval when registering.
    pub renew_every: Duration,
    /// Lease duration asked for when registering.
    pub lease: Duration,
    /// Bound on one request to a registry.
    pub timeout: Duration,
}

impl EurekaConfig {
    /// Checks what the chosen mode needs; the error names the flag.
    pub fn check(&self) -> Result<(), ArgError> {
        for url in &self.servers {
            Client::new(url, self.timeout).map_err(|e| ArgError::EurekaServer {
                url: url.clone(),
                why: e.to_string(),
            })?;
        }
        if self.app.trim().is_empty() {
            return Err(ArgError::EurekaApp);
        }
        let needs_address = self.register || self.instance_id.is_none();
        if needs_address && (self.ip.is_none() || self.port.is_none()) {
            return Err(ArgError::EurekaAddress);
        }
        Ok(())
    }

    fn clients(&self) -> Vec<(String, Client)> {
        self.servers
            .iter()
            .filter_map(|url| {
                Client::new(url, self.timeout)
                    .ok()
                    .map(|c| (url.clone(), c))
            })
            .collect()
    }

    /// The id lameduck registers under: `IP:APP:PORT`, as Spring Cloud does.
    fn own_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            let ip = self.ip.as_deref().unwrap_or("");
            format!(
                "{ip}:{}:{}",
                self.app.to_ascii_lowercase(),
                self.port.unwrap_or(0)
            )
        })
    }

    /// The instance record lameduck registers.
    fn instance(&self) -> Option<Instance> {
        let (ip, port) = (self.ip.as_deref()?, self.port?);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let body = json!({
            "instanceId": self.own_id(),
            "hostName": ip,
            "app": self.app.to_ascii_uppercase(),
            "ipAddr": ip,
            "status": "UP",
            "port": {"$": port, "@enabled": "true"},
            "securePort": {"$": 443, "@enabled": "false"},
            "dataCenterInfo": {
                "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                "name": "MyOwn"
            },
            "leaseInfo": {
                "renewalIntervalInSecs": self.renew_every.as_secs().max(1),
                "durationInSecs": self.lease.as_secs().max(1)
            },
            "metadata": {"registered-by": "lameduck"},
            "lastDirtyTimestamp": now_ms.to_string(),
        });
        Instance::from_value(&body).ok()
    }
}

/// Registers and heartbeats the instance on every server until `stop` resolves.
pub(crate) async fn keep_registered_everywhere(
    config: &EurekaConfig,
    stop: impl std::future::Future<Output = ()>,
) {
    let Some(instance) = config.instance() else {
        return;
    };
    tracing::info!(app = %instance.app, id = %instance.id, servers = config.servers.len(), "registering with Eureka");
    let mut loops = JoinSet::new();
    for (_, client) in config.clients() {
        let (instance, every) = (instance.clone(), config.renew_every);
        loops.spawn(async move {
            keep_registered(&client, &instance, every, std::future::pending()).await
        });
    }
    stop.await;
    loops.abort_all();
}

/// Marks the instance DOWN on every server, all at once, never past `until`.
pub(crate) async fn mark_down(config: &EurekaConfig, until: Instant) {
    let mut calls = JoinSet::new();
    for (url, client) in config.clients() {
        let config = config.clone();
        calls.spawn(async move {
            let started = Instant::now();
            let result = retry(until, BACKOFF, || async {
                let id = resolve_id(&config, &client).await?;
                client.set_status(&config.app, &id, Status::Down).await.map(|()| id)
            })
            .await;
            let took = format_duration(started.elapsed());
            match result {
                Ok(id) => tracing::info!(server = %url, id = %id, took = %took, "Eureka: instance marked DOWN"),
                Err(e) => tracing::warn!(
                    server = %url, took = %took,
                    "Eureka: could not mark the instance DOWN ({e}); going on with the drain"
                ),
            }
        });
    }
    calls.join_all().await;
}

/// Cancels the instance's registration on every server, never past `until`.
pub(crate) async fn cancel(config: &EurekaConfig, until: Instant) {
    let mut calls = JoinSet::new();
    for (url, client) in config.clients() {
        let config = config.clone();
        calls.spawn(async move {
            let result = retry(until, BACKOFF, || async {
                let id = resolve_id(&config, &client).await?;
                client.cancel(&config.app, &id).await
            })
            .await;
            match result {
                Ok(true) => tracing::info!(server = %url, "Eureka: registration cancelled"),
                Ok(false) => tracing::info!(server = %url, "Eureka: instance already gone"),
                Err(e) => tracing::warn!(server = %url, "Eureka: could not cancel the registration ({e}); going on"),
            }
        });
    }
    calls.join_all().await;
}

/// First wait between retries (doubling up to one second).
const BACKOFF: Duration = Duration::from_millis(50);

/// The given id, the one lameduck registered under, or the one found by address.
async fn resolve_id(config: &EurekaConfig, client: &Client) -> Result<String, Error> {
    if config.instance_id.is_some() || config.register {
        return Ok(config.own_id());
    }
    let (ip, port) = (config.ip.as_deref().unwrap_or(""), config.port.unwrap_or(0));
    match client.find_instance(&config.app, ip, port).await? {
        Some(instance) => Ok(instance.id),
        // Not retried: the app is not registered at this address.
        None => Err(Error::Status {
            url: config.app.to_ascii_uppercase(),
            status: 404,
            body: format!("no instance registered at {ip}:{port}; give --eureka-instance-id"),
        }),
    }
}
