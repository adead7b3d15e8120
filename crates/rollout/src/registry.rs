//! Registry mode: instead of an endpoints feed, the router discovers the pods
//! through a Eureka registry (`lameduck registry`, in this process), and each
//! pod registers itself, as a Spring Cloud app does.
//!
//! The engine tells the pods where the registry is the way a cluster would:
//! through their environment. An env var whose name has `EUREKA` in it and
//! whose value is a URL (`EUREKA_URL`, `EUREKA_CLIENT_SERVICEURL_DEFAULTZONE`,
//! …) gets the local registry's URL.
//!
//! The pods' registry state (UP, DOWN, gone) goes on the timeline as the
//! router's view when the router follows the registry's change feed; with
//! `cache` (Eureka clients' fetch interval, modelled by polling), the router
//! learns of it up to that much later.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use lameduck_drain::Phase;
use lameduck_eureka::{client::Client, model::Status};
use lameduck_registry::Config;
use tokio::{net::TcpListener, sync::watch};

use crate::timeline::{Kind, Timeline};

/// How the router finds the pods in registry mode.
#[derive(Debug, Clone)]
pub struct RegistryMode {
    /// The Eureka application the pods register as.
    pub app: String,
    /// Model Eureka clients' cache: the router polls every this long instead
    /// of following the change feed.
    pub cache: Option<Duration>,
}

/// A running registry.
#[derive(Debug)]
pub(crate) struct Registry {
    /// `http://127.0.0.1:PORT/eureka/`.
    pub(crate) url: String,
    stop: watch::Sender<Phase>,
}

impl Registry {
    /// Starts a registry on a free port.
    pub(crate) async fn start() -> std::io::Result<Registry> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}/eureka/", listener.local_addr()?);
        let (stop, rx) = watch::channel(Phase::Serving);
        let config = Config {
            eviction_interval: Duration::from_secs(5),
            ..Config::default()
        };
        tokio::spawn(async move {
            if let Err(e) = lameduck_registry::serve(config, listener, None, rx).await {
                tracing::warn!("the registry stopped: {e}");
            }
        });
        Ok(Registry { url, stop })
    }

    /// Stops the registry (after the router, so no client is left).
    pub(crate) fn stop(&self) {
        let _ = self.stop.send(Phase::Drain);
    }

    /// Puts every change of `app`'s instances on the timeline, until the
    /// run ends; pods are matched by instance id (the pod's name).
    pub(crate) fn watch(&self, app: &str, revision_of: fn(&str) -> u32, timeline: Timeline) {
        let Ok(client) = Client::new(&self.url, Duration::from_secs(2)) else {
            return;
        };
        let app = app.to_string();
        let stop = self.stop.subscribe();
        tokio::spawn(async move {
            let mut seen: BTreeMap<String, bool> = BTreeMap::new();
            while *stop.borrow() == Phase::Serving {
                let now: BTreeMap<String, bool> = match client.fetch_app(&app).await {
                    Ok(Some(list)) => list
                        .into_iter()
                        .map(|i| (i.id, i.status == Status::Up))
                        .collect(),
                    Ok(None) => BTreeMap::new(),
                    Err(_) => seen.clone(),
                };
                for (id, up) in &now {
                    if seen.get(id) != Some(up) {
                        let kind = if *up {
                            Kind::RouterAdded
                        } else {
                            Kind::RouterRemoved
                        };
                        let rev = revision_of(id);
                        timeline.pod(
                            &(id.clone(), rev),
                            kind,
                            if *up {
                                "UP in the registry"
                            } else {
                                "DOWN in the registry"
                            },
                        );
                    }
                }
                for (id, up) in &seen {
                    if *up && !now.contains_key(id) {
                        let rev = revision_of(id);
                        timeline.pod(
                            &(id.clone(), rev),
                            Kind::RouterRemoved,
                            "gone from the registry",
                        );
                    }
                }
                seen = now;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// How many instances of `app` are UP.
    pub(crate) async fn up(&self, app: &str) -> usize {
        let Ok(client) = Client::new(&self.url, Duration::from_secs(2)) else {
            return 0;
        };
        match client.fetch_app(app).await {
            Ok(Some(list)) => list.iter().filter(|i| i.status == Status::Up).count(),
            _ => 0,
        }
    }
}

/// `EUREKA_URL=http://eureka:8761/eureka` becomes the local registry's URL.
pub(crate) fn remap_eureka_value(name: &str, value: String, url: Option<&str>) -> String {
    match url {
        Some(url)
            if name.to_ascii_uppercase().contains("EUREKA")
                && (value.starts_with("http://") || value.starts_with("https://")) =>
        {
            url.to_string()
        }
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eureka_urls_in_the_environment_point_at_the_local_registry() {
        const URL: &str = "http://127.0.0.1:1/eureka/";
        let local = Some(URL);
        assert_eq!(
            remap_eureka_value(
                "EUREKA_CLIENT_SERVICEURL_DEFAULTZONE",
                "http://eureka:8761/eureka/".into(),
                local
            ),
            URL
        );
        assert_eq!(
            remap_eureka_value("EUREKA_APP", "orders".into(), local),
            "orders"
        );
        assert_eq!(
            remap_eureka_value("BACKEND_URL", "http://x/".into(), local),
            "http://x/"
        );
        assert_eq!(
            remap_eureka_value("EUREKA_URL", "http://e/".into(), None),
            "http://e/"
        );
    }
}
