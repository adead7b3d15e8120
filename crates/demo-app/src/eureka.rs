//! Registering in Eureka the way a Spring Cloud app does: register at start
//! (status UP), heartbeat every 30 s with a 90 s lease, and cancel the
//! registration at shutdown (unless told not to). Cancelling does not make a
//! naive app safe: every client keeps the instance in its cache for up to a
//! fetch interval and its load balancer's refresh, and calls it meanwhile.

use std::time::Duration;

use lameduck_drain::format_duration;
use lameduck_eureka::{
    client::{keep_registered, Client},
    model::Instance,
};
use serde_json::json;
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};

use crate::{Error, EurekaConfig};

/// A running registration: the heartbeat loop and what is needed to end it.
#[derive(Debug)]
pub(crate) struct Registration {
    client: Client,
    instance: Instance,
    deregister: bool,
    timeout: Duration,
    stop: oneshot::Sender<()>,
    heartbeat: JoinHandle<()>,
}

impl Registration {
    /// Registers `config`'s instance on `port` and keeps it registered.
    pub(crate) fn start(config: &EurekaConfig, port: u16) -> Result<Registration, Error> {
        let client = Client::new(&config.url, config.timeout).map_err(|source| Error::Eureka {
            url: config.url.clone(),
            source,
        })?;
        let instance = instance(config, port)?;
        tracing::info!(server = %config.url, app = %instance.app, id = %instance.id, "Eureka: registering (status UP)");
        let (stop, stopped) = oneshot::channel();
        let heartbeat = tokio::spawn({
            let (client, instance, every) = (client.clone(), instance.clone(), config.renew_every);
            async move {
                let stopped = async {
                    let _ = stopped.await;
                };
                keep_registered(&client, &instance, every, stopped).await;
            }
        });
        Ok(Registration {
            client,
            instance,
            deregister: config.deregister,
            timeout: config.timeout,
            stop,
            heartbeat,
        })
    }

    /// The bound on one call to the server.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Stops the heartbeats (after the one in progress, so that it cannot
    /// register the instance again behind the cancel), then cancels the
    /// registration if asked; never past `until`.
    pub(crate) async fn end(self, until: Instant) {
        let started = Instant::now();
        let _ = self.stop.send(());
        if tokio::time::timeout_at(until, self.heartbeat)
            .await
            .is_err()
        {
            tracing::warn!("Eureka: a heartbeat was still running at the deadline");
            return;
        }
        if !self.deregister {
            tracing::info!(
                "Eureka: heartbeats stopped; registration left in place (deregistration is off)"
            );
            return;
        }
        let (app, id) = (&self.instance.app, &self.instance.id);
        let result = tokio::time::timeout_at(until, self.client.cancel(app, id)).await;
        let took = format_duration(started.elapsed());
        match result {
            Ok(Ok(true)) => tracing::info!(took = %took, "Eureka: registration cancelled"),
            Ok(Ok(false)) => tracing::info!(took = %took, "Eureka: instance already gone"),
            Ok(Err(e)) => {
                tracing::warn!(took = %took, "Eureka: could not cancel the registration: {e}")
            }
            Err(_) => tracing::warn!(took = %took, "Eureka: cancel still running at the deadline"),
        }
    }
}

/// The instance record, as Spring Cloud writes it.
fn instance(config: &EurekaConfig, port: u16) -> Result<Instance, Error> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let app = config.app.to_ascii_lowercase();
    let body = json!({
        "instanceId": config.instance_id,
        "hostName": config.ip,
        "app": config.app.to_ascii_uppercase(),
        "ipAddr": config.ip,
        "vipAddress": app,
        "secureVipAddress": app,
        "status": "UP",
        "port": {"$": port, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"},
        "homePageUrl": format!("http://{}:{port}/", config.ip),
        "healthCheckUrl": format!("http://{}:{port}/healthz", config.ip),
        "dataCenterInfo": {
            "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
            "name": "MyOwn"
        },
        "leaseInfo": {
            "renewalIntervalInSecs": config.renew_every.as_secs().max(1),
            "durationInSecs": config.lease.as_secs().max(1)
        },
        "metadata": {"registered-by": "lameduck-demo-app"},
        "lastDirtyTimestamp": now_ms.to_string(),
    });
    Instance::from_value(&body).map_err(|e| Error::Instance(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_carries_the_address_and_is_up() {
        let config = EurekaConfig::new("http://127.0.0.1:1/eureka/", "demo", "pod-1", "10.0.0.7");
        let i = instance(&config, 8080).unwrap();
        assert_eq!((i.app.as_str(), i.id.as_str()), ("DEMO", "pod-1"));
        assert_eq!((i.ip_addr.as_str(), i.port.port), ("10.0.0.7", 8080));
        assert_eq!(i.status, lameduck_eureka::model::Status::Up);
    }
}
