//! The proxy's configuration: TOML in, a checked [`Config`] out.
//!
//! Reading happens in two stages, like the command line: serde reads the TOML
//! into raw structs that mirror the file (unknown keys are errors, so a typo
//! never silently does nothing), then [`Config::from_toml`] checks what serde
//! cannot (routes naming an upstream that does not exist, durations, addresses,
//! the drain plan that start checks) and reports every problem with the key
//! and the line it is on. A reload runs
//! the same check first: an invalid file is rejected and the old config serves on.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use lameduck_drain::{parse_duration, LameDuckWait, Names, Plan, PlanError, Setting, Timing};
use serde::Deserialize;

pub use crate::tls::Tls;
use toml::Spanned;

/// A config that could not be read. `Display` gives `line N: key: problem`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{key}: {message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ConfigError {
    /// The line of the offending key, when known.
    pub line: Option<usize>,
    /// The key, as a path (`upstream[1].endpoints[0]`).
    pub key: String,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

/// The checked configuration the proxy runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Drain and client-side settings.
    pub proxy: ProxySettings,
    /// Where the admin API listens, if anywhere (probes, metrics, and the
    /// endpoints that change the config).
    pub admin: Option<SocketAddr>,
    /// The bearer token the admin API asks for (all but its probes), from
    /// `admin.token_file` or `LAMEDUCK_ADMIN_TOKEN`; required off loopback.
    pub admin_token: Option<AdminToken>,
    /// Where the probe listener listens, if anywhere: `/healthz`, `/readyz`
    /// and `/metrics` only, safe on the pod IP.
    pub probe: Option<SocketAddr>,
    /// Listeners, in file order.
    pub listeners: Vec<Listener>,
    /// Routes, in file order (matching picks the most specific, see `router`).
    pub routes: Vec<Route>,
    /// Upstream pools by name.
    pub upstreams: BTreeMap<String, Upstream>,
}

/// The environment variable that gives the admin API's bearer token when
/// `admin.token_file` does not.
pub const ADMIN_TOKEN_ENV: &str = "LAMEDUCK_ADMIN_TOKEN";

/// The admin API's bearer token (the rule and the constant-time check are
/// the shared admin listener's); never printed.
pub type AdminToken = lameduck_admin::Token;

/// `[proxy]`: drain timing and client-side limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    pub grace: Duration,
    pub margin: Duration,
    pub stop_reserve: Duration,
    pub drain_delay: Option<Duration>,
    pub until_quiet: Option<Duration>,
    pub keepalive_timeout: Duration,
    pub keepalive_requests: u64,
    pub header_read_timeout: Duration,
    /// The longest wait for the next bytes of an HTTP/1 request body.
    pub body_idle_timeout: Duration,
    pub max_body_bytes: Option<u64>,
    pub max_connections: usize,
}

/// `[[listener]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub listen: SocketAddr,
    /// HTTPS with ALPN `h2`/`http/1.1` when set; plain HTTP/1.1 and h2c otherwise.
    pub tls: Option<Tls>,
}

/// `[[route]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub listener: String,
    /// `*`, an exact host, or `*.example.com`.
    pub host: String,
    pub path_prefix: String,
    pub upstream: String,
}

/// How the proxy talks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keepalive (the default).
    Http1,
    /// HTTP/2 over cleartext (prior knowledge), needed for gRPC.
    Http2,
}

/// `[[upstream]]`
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    pub protocol: UpstreamProtocol,
    pub connect_timeout: Duration,
    /// Time to wait for the response head after the request was sent.
    pub response_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    /// Consecutive failures that eject an endpoint.
    pub eject_after: u32,
    /// How long an ejected endpoint is skipped.
    pub eject_for: Duration,
    /// Where the endpoints come from when not listed.
    pub discovery: Option<Discovery>,
}

/// `discovery = { eureka = "http://…/eureka/", app = "MDL-WEB" }`: the pool is
/// the UP instances of `app`, kept current from a Eureka server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The Eureka service URL.
    pub eureka: String,
    /// The application whose UP instances make the pool.
    pub app: String,
    /// Delta polling interval (when the server has no change feed).
    pub interval: Duration,
    /// Use lameduck registry's change feed when the server has it.
    pub feed: bool,
}

impl Config {
    /// Reads and checks a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let message = e.message().trim().to_string();
            ConfigError {
                line,
                key: "config".into(),
                message,
            }
        })?;
        Check { text }.config(raw)
    }

    /// Sets the admin API's address outside a file (the quick mode's
    /// `--admin`), with the same rule as `admin.listen`: its token comes from
    /// `LAMEDUCK_ADMIN_TOKEN`, and off loopback one is required.
    pub fn set_admin(&mut self, addr: SocketAddr) -> Result<(), ConfigError> {
        self.admin_token = admin_token(addr, None).map_err(|message| ConfigError {
            line: None,
            key: "--admin".into(),
            message,
        })?;
        self.admin = Some(addr);
        Ok(())
    }

    /// The config of the quick mode: one listener, one upstream, one route.
    pub fn quick(listen: SocketAddr, endpoints: Vec<SocketAddr>) -> Config {
        let upstream = Upstream {
            name: "app".into(),
            endpoints,
            ..Upstream::defaults()
        };
        Config {
            proxy: ProxySettings::defaults(),
            admin: None,
            admin_token: None,
            probe: None,
            listeners: vec![Listener {
                name: "web".into(),
                listen,
                tls: None,
            }],
            routes: vec![Route {
                listener: "web".into(),
                host: "*".into(),
                path_prefix: "/".into(),
                upstream: "app".into(),
            }],
            upstreams: BTreeMap::from([("app".into(), upstream)]),
        }
    }
}

/// The `[proxy]` keys the drain plan is made of, as errors name them.
const KEYS: Names = Names {
    grace: "proxy.grace",
    margin: "proxy.margin",
    stop_reserve: "proxy.stop_reserve",
    drain_delay: "proxy.drain_delay",
    until_quiet: "proxy.until_quiet",
};

impl ProxySettings {
    /// The drain plan these settings make; every config read is checked with
    /// it, so `--check`, start and reloads refuse the same files.
    pub fn plan(&self) -> Result<Plan, PlanError> {
        let timing = Timing {
            grace: self.grace,
            margin: self.margin,
            stop_reserve: self.stop_reserve,
        };
        let wait = match (self.until_quiet, self.drain_delay) {
            (Some(quiet), max) => LameDuckWait::UntilQuiet { quiet, max },
            (None, Some(d)) => LameDuckWait::Fixed(d),
            (None, None) => LameDuckWait::None,
        };
        Plan::new(timing, wait)
    }

    fn defaults() -> ProxySettings {
        ProxySettings {
            grace: Duration::from_secs(30),
            margin: Duration::from_secs(2),
            stop_reserve: Duration::from_secs(5),
            drain_delay: None,
            until_quiet: None,
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_body_bytes: None,
            max_connections: 10_000,
        }
    }
}

impl Upstream {
    fn defaults() -> Upstream {
        Upstream {
            name: String::new(),
            endpoints: Vec::new(),
            protocol: UpstreamProtocol::Http1,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(60),
            max_idle_per_endpoint: 64,
            eject_after: 3,
            eject_for: Duration::from_secs(10),
            discovery: None,
        }
    }
}

/// The admin API's token: `from_file`, else `LAMEDUCK_ADMIN_TOKEN`. Without
/// one, an admin API off loopback is refused (the message says what to do).
fn admin_token(
    addr: SocketAddr,
    from_file: Option<AdminToken>,
) -> Result<Option<AdminToken>, String> {
    let token = from_file.or_else(|| {
        std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .and_then(|t| AdminToken::new(&t))
    });
    if AdminToken::check_bind(addr, token.as_ref()).is_err() {
        return Err(format!(
            "{addr} is off loopback, and the admin API can change all routing: give it a \
             bearer token (admin.token_file, or {ADMIN_TOKEN_ENV}), or listen on 127.0.0.1 \
             and serve the kubelet's probes with [probe] listen = \"0.0.0.0:PORT\""
        ));
    }
    Ok(token)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

// ---- raw structs: exactly the file's shape ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    proxy: Option<RawProxy>,
    #[serde(default)]
    admin: Option<RawAdmin>,
    #[serde(default)]
    probe: Option<RawProbe>,
    #[serde(default)]
    listener: Vec<RawListener>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    upstream: Vec<RawUpstream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    grace: Option<Spanned<String>>,
    margin: Option<Spanned<String>>,
    stop_reserve: Option<Spanned<String>>,
    drain_delay: Option<Spanned<String>>,
    until_quiet: Option<Spanned<String>>,
    keepalive_timeout: Option<Spanned<String>>,
    keepalive_requests: Option<Spanned<u64>>,
    header_read_timeout: Option<Spanned<String>>,
    body_idle_timeout: Option<Spanned<String>>,
    max_body_bytes: Option<u64>,
    max_connections: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Spanned<String>,
    token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    listen: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Spanned<String>,
    listen: Spanned<String>,
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Spanned<String>,
    key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    listener: Option<Spanned<String>>,
    #[serde(default)]
    host: Option<Spanned<String>>,
    #[serde(default)]
    path_prefix: Option<Spanned<String>>,
    upstream: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: Spanned<String>,
    endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    discovery: Option<Spanned<RawDiscovery>>,
    protocol: Option<UpstreamProtocol>,
    connect_timeout: Option<Spanned<String>>,
    response_timeout: Option<Spanned<String>>,
    max_idle_per_endpoint: Option<usize>,
    eject_after: Option<u32>,
    eject_for: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    eureka: Spanned<String>,
    app: Spanned<String>,
    interval: Option<Spanned<String>>,
    feed: Option<bool>,
}

// ---- checks: what serde cannot know ----

struct Check<'a> {
    text: &'a str,
}

impl Check<'_> {
    fn err<T>(
        &self,
        key: impl Into<String>,
        at: &Spanned<T>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            line: Some(line_of(self.text, at.span().start)),
            key: key.into(),
            message: message.into(),
        }
    }

    fn duration(
        &self,
        key: &str,
        v: &Option<Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s.get_ref()).map_err(|e| self.err(key, s, e.to_string())),
        }
    }

    /// A timeout: zero would end every connection at once, so it is refused.
    fn timeout(
        &self,
        key: &str,
        v: &Option<Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(key, v, default)?;
        match v {
            Some(s) if d.is_zero() => Err(self.err(key, s, "must be longer than zero")),
            _ => Ok(d),
        }
    }

    /// A count that must be at least one (zero would serve nothing).
    fn count<T: Copy + PartialEq + From<u8>>(
        &self,
        key: &str,
        v: &Option<Spanned<T>>,
        default: T,
    ) -> Result<T, ConfigError> {
        match v {
            Some(n) if *n.get_ref() == T::from(0) => Err(self.err(key, n, "must be at least 1")),
            Some(n) => Ok(*n.get_ref()),
            None => Ok(default),
        }
    }

    fn addr(&self, key: &str, v: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
        v.get_ref().parse().map_err(|_| {
            self.err(
                key,
                v,
                format!(
                    "{:?} is not an IP:port address (e.g. 127.0.0.1:8080)",
                    v.get_ref()
                ),
            )
        })
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let proxy = self.proxy(raw.proxy.unwrap_or_default())?;
        let (admin, admin_token) = match &raw.admin {
            Some(a) => self.admin(a)?,
            None => (None, None),
        };
        let probe = raw
            .probe
            .map(|p| self.addr("probe.listen", &p.listen))
            .transpose()?;
        let listeners = self.listeners(&raw.listener)?;
        let upstreams = self.upstreams(&raw.upstream)?;
        let routes = self.routes(&raw.route, &listeners, &upstreams)?;
        Ok(Config {
            proxy,
            admin,
            admin_token,
            probe,
            listeners,
            routes,
            upstreams,
        })
    }

    /// `[admin]`: its address and token. Off loopback the admin API must ask
    /// for a token: whoever reaches it can reroute all traffic.
    fn admin(&self, a: &RawAdmin) -> Result<(Option<SocketAddr>, Option<AdminToken>), ConfigError> {
        let addr = self.addr("admin.listen", &a.listen)?;
        let file = a
            .token_file
            .as_ref()
            .map(|p| self.token_file(p))
            .transpose()?;
        let token = admin_token(addr, file).map_err(|m| self.err("admin.listen", &a.listen, m))?;
        Ok((Some(addr), token))
    }

    fn token_file(&self, path: &Spanned<String>) -> Result<AdminToken, ConfigError> {
        let key = "admin.token_file";
        let text = std::fs::read_to_string(path.get_ref())
            .map_err(|e| self.err(key, path, format!("cannot read {:?}: {e}", path.get_ref())))?;
        AdminToken::new(&text)
            .ok_or_else(|| self.err(key, path, format!("{:?} is empty", path.get_ref())))
    }

    /// The drain plan check that start runs, with the TOML keys named.
    fn plan(&self, p: &RawProxy, settings: &ProxySettings) -> Result<(), ConfigError> {
        let Err(e) = settings.plan() else {
            return Ok(());
        };
        let (key, at) = match &e {
            PlanError::MarginTooLarge(_) => {
                ("proxy.margin", p.margin.as_ref().or(p.grace.as_ref()))
            }
            PlanError::WaitDoesNotFit {
                what: Setting::UntilQuiet,
                ..
            } => ("proxy.until_quiet", p.until_quiet.as_ref()),
            PlanError::WaitDoesNotFit { .. } => ("proxy.drain_delay", p.drain_delay.as_ref()),
        };
        Err(ConfigError {
            line: at.map(|s| line_of(self.text, s.span().start)),
            key: key.into(),
            message: e.describe(&KEYS),
        })
    }

    fn proxy(&self, p: RawProxy) -> Result<ProxySettings, ConfigError> {
        let d = ProxySettings::defaults();
        let opt = |key: &str,
                   v: &Option<Spanned<String>>|
         -> Result<Option<Duration>, ConfigError> {
            v.as_ref()
                .map(|s| parse_duration(s.get_ref()).map_err(|e| self.err(key, s, e.to_string())))
                .transpose()
        };
        let settings = ProxySettings {
            grace: self.duration("proxy.grace", &p.grace, d.grace)?,
            margin: self.duration("proxy.margin", &p.margin, d.margin)?,
            stop_reserve: self.duration("proxy.stop_reserve", &p.stop_reserve, d.stop_reserve)?,
            drain_delay: opt("proxy.drain_delay", &p.drain_delay)?,
            until_quiet: opt("proxy.until_quiet", &p.until_quiet)?,
            keepalive_timeout: self.timeout(
                "proxy.keepalive_timeout",
                &p.keepalive_timeout,
                d.keepalive_timeout,
            )?,
            keepalive_requests: self.count(
                "proxy.keepalive_requests",
                &p.keepalive_requests,
                d.keepalive_requests,
            )?,
            header_read_timeout: self.timeout(
                "proxy.header_read_timeout",
                &p.header_read_timeout,
                d.header_read_timeout,
            )?,
            body_idle_timeout: self.timeout(
                "proxy.body_idle_timeout",
                &p.body_idle_timeout,
                d.body_idle_timeout,
            )?,
            max_body_bytes: p.max_body_bytes,
            max_connections: self.count(
                "proxy.max_connections",
                &p.max_connections,
                d.max_connections,
            )?,
        };
        self.plan(&p, &settings)?;
        Ok(settings)
    }

    fn listeners(&self, raw: &[RawListener]) -> Result<Vec<Listener>, ConfigError> {
        let mut out: Vec<Listener> = Vec::new();
        for (i, l) in raw.iter().enumerate() {
            let name = l.name.get_ref().clone();
            if out.iter().any(|o| o.name == name) {
                return Err(self.err(
                    format!("listener[{i}].name"),
                    &l.name,
                    format!("duplicate listener name {name:?}"),
                ));
            }
            let listen = self.addr(&format!("listener[{i}].listen"), &l.listen)?;
            let tls = l
                .tls
                .as_ref()
                .map(|t| {
                    Tls::load(t.cert.get_ref().into(), t.key.get_ref().into())
                        .map_err(|e| self.err(format!("listener[{i}].tls"), &t.cert, e.to_string()))
                })
                .transpose()?;
            out.push(Listener { name, listen, tls });
        }
        if out.is_empty() {
            return Err(ConfigError {
                line: None,
                key: "listener".into(),
                message: "no [[listener]]: the proxy needs at least one address to listen on"
                    .into(),
            });
        }
        Ok(out)
    }

    fn upstreams(&self, raw: &[RawUpstream]) -> Result<BTreeMap<String, Upstream>, ConfigError> {
        let mut out = BTreeMap::new();
        for (i, u) in raw.iter().enumerate() {
            let name = u.name.get_ref().clone();
            let key = |k: &str| format!("upstream[{i}].{k}");
            if out.contains_key(&name) {
                return Err(self.err(
                    key("name"),
                    &u.name,
                    format!("duplicate upstream name {name:?}"),
                ));
            }
            let endpoints = match &u.endpoints {
                Some(list) => list
                    .get_ref()
                    .iter()
                    .enumerate()
                    .map(|(j, e)| self.addr(&key(&format!("endpoints[{j}]")), e))
                    .collect::<Result<Vec<_>, _>>()?,
                None if u.discovery.is_some() => Vec::new(),
                None => {
                    return Err(self.err(
                        key("name"),
                        &u.name,
                        "give `endpoints = [...]` or `discovery = { ... }`",
                    ))
                }
            };
            let discovery = u
                .discovery
                .as_ref()
                .map(|d| self.discovery(&key("discovery"), d))
                .transpose()?;
            let d = Upstream::defaults();
            let upstream = Upstream {
                name: name.clone(),
                endpoints,
                protocol: u.protocol.unwrap_or(d.protocol),
                connect_timeout: self.duration(
                    &key("connect_timeout"),
                    &u.connect_timeout,
                    d.connect_timeout,
                )?,
                response_timeout: self.duration(
                    &key("response_timeout"),
                    &u.response_timeout,
                    d.response_timeout,
                )?,
                max_idle_per_endpoint: u.max_idle_per_endpoint.unwrap_or(d.max_idle_per_endpoint),
                eject_after: u.eject_after.unwrap_or(d.eject_after).max(1),
                eject_for: self.duration(&key("eject_for"), &u.eject_for, d.eject_for)?,
                discovery,
            };
            out.insert(name, upstream);
        }
        Ok(out)
    }

    fn discovery(&self, key: &str, d: &Spanned<RawDiscovery>) -> Result<Discovery, ConfigError> {
        let raw = d.get_ref();
        let url = raw.eureka.get_ref();
        if !url.starts_with("http://") {
            return Err(self.err(
                format!("{key}.eureka"),
                &raw.eureka,
                "use http://HOST:PORT/eureka/",
            ));
        }
        if raw.app.get_ref().trim().is_empty() {
            return Err(self.err(
                format!("{key}.app"),
                &raw.app,
                "the Eureka application name is empty",
            ));
        }
        Ok(Discovery {
            eureka: url.clone(),
            app: raw.app.get_ref().to_ascii_uppercase(),
            interval: self.duration(
                &format!("{key}.interval"),
                &raw.interval,
                Duration::from_secs(1),
            )?,
            feed: raw.feed.unwrap_or(true),
        })
    }

    fn routes(
        &self,
        raw: &[RawRoute],
        listeners: &[Listener],
        upstreams: &BTreeMap<String, Upstream>,
    ) -> Result<Vec<Route>, ConfigError> {
        let mut out = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let key = |k: &str| format!("route[{i}].{k}");
            let listener = match &r.listener {
                Some(l) if listeners.iter().any(|x| &x.name == l.get_ref()) => l.get_ref().clone(),
                Some(l) => {
                    let known: Vec<_> = listeners.iter().map(|x| x.name.as_str()).collect();
                    return Err(self.err(
                        key("listener"),
                        l,
                        format!("no listener named {:?} (known: {known:?})", l.get_ref()),
                    ));
                }
                None if listeners.len() == 1 => listeners[0].name.clone(),
                None => {
                    return Err(self.err(
                        key("upstream"),
                        &r.upstream,
                        "several listeners exist: say which with `listener = \"…\"`",
                    ))
                }
            };
            if !upstreams.contains_key(r.upstream.get_ref()) {
                let known: Vec<_> = upstreams.keys().collect();
                return Err(self.err(
                    key("upstream"),
                    &r.upstream,
                    format!(
                        "no [[upstream]] named {:?} (known: {known:?})",
                        r.upstream.get_ref()
                    ),
                ));
            }
            let path_prefix = r
                .path_prefix
                .as_ref()
                .map_or("/".to_string(), |p| p.get_ref().clone());
            if let Some(p) = &r.path_prefix {
                if !p.get_ref().starts_with('/') {
                    return Err(self.err(key("path_prefix"), p, "must start with '/'"));
                }
            }
            let host = r
                .host
                .as_ref()
                .map_or("*".to_string(), |h| h.get_ref().to_ascii_lowercase());
            out.push(Route {
                listener,
                host,
                path_prefix,
                upstream: r.upstream.get_ref().clone(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[admin]
listen = "127.0.0.1:9901"

[[listener]]
name = "web"
listen = "127.0.0.1:8080"

[[route]]
listener = "web"
host = "*"
path_prefix = "/"
upstream = "app"

[[upstream]]
name = "app"
endpoints = ["127.0.0.1:18081", "127.0.0.1:18082"]
"#;

    #[test]
    fn reads_the_documented_example() {
        let c = Config::from_toml(EXAMPLE).unwrap();
        assert_eq!(c.admin, Some("127.0.0.1:9901".parse().unwrap()));
        assert_eq!(c.upstreams["app"].endpoints.len(), 2);
        assert_eq!(c.routes[0].upstream, "app");
        assert_eq!(c.proxy.keepalive_requests, 1000);
    }

    #[test]
    fn a_route_to_an_unknown_upstream_names_key_and_line() {
        let bad = EXAMPLE.replace("upstream = \"app\"", "upstream = \"nope\"");
        let e = Config::from_toml(&bad).unwrap_err();
        assert_eq!(e.line, Some(13), "{e}");
        assert_eq!(e.key, "route[0].upstream");
        assert!(
            e.to_string()
                .starts_with("line 13: route[0].upstream: no [[upstream]] named \"nope\""),
            "{e}"
        );
    }

    #[test]
    fn a_bad_endpoint_names_its_index() {
        let bad = EXAMPLE.replace("127.0.0.1:18082", "localhost");
        let e = Config::from_toml(&bad).unwrap_err();
        assert_eq!(e.key, "upstream[0].endpoints[1]");
        assert_eq!(e.line, Some(17));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_have_lines() {
        let e = Config::from_toml(&EXAMPLE.replace("path_prefix", "path_prefx")).unwrap_err();
        assert_eq!(e.line, Some(12), "{e}");
        assert!(e.message.contains("path_prefx"), "{e}");
        let e = Config::from_toml("[[listener]\nname=").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn durations_are_checked() {
        let e =
            Config::from_toml(&format!("[proxy]\ndrain_delay = \"soon\"\n{EXAMPLE}")).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("proxy.drain_delay", Some(2)));
    }

    #[test]
    fn a_drain_delay_that_does_not_fit_the_grace_names_the_keys() {
        let text = format!("[proxy]\ngrace = \"10s\"\ndrain_delay = \"20s\"\n{EXAMPLE}");
        let e = Config::from_toml(&text).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("proxy.drain_delay", Some(3)));
        assert!(e.message.contains("proxy.grace 10.0s"), "{e}");
        assert!(!e.message.contains("--"), "names keys, not flags: {e}");
        let e = Config::from_toml(&format!("[proxy]\nmargin = \"40s\"\n{EXAMPLE}")).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("proxy.margin", Some(2)));
    }

    #[test]
    fn an_admin_api_off_loopback_needs_a_token() {
        let open = EXAMPLE.replace("127.0.0.1:9901", "0.0.0.0:9901");
        let e = Config::from_toml(&open).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("admin.listen", Some(3)), "{e}");
        assert!(e.message.contains("admin.token_file"), "{e}");
        let dir = std::env::temp_dir().join(format!("ld-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let with = open.replace(
            "listen = \"0.0.0.0:9901\"",
            &format!(
                "listen = \"0.0.0.0:9901\"\ntoken_file = {:?}",
                file.display().to_string()
            ),
        );
        let c = Config::from_toml(&with).unwrap();
        let token = c.admin_token.unwrap();
        assert!(token.accepts(Some(b"Bearer s3cret")));
        assert!(!token.accepts(Some(b"Bearer s3cre")));
        assert!(!token.accepts(Some(b"s3cret")));
        assert!(!token.accepts(None));
        std::fs::write(&file, "\n").unwrap();
        let e = Config::from_toml(&with).unwrap_err();
        assert_eq!(e.key, "admin.token_file", "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn settings_that_would_serve_nothing_are_refused() {
        for (key, value) in [
            ("max_connections", "0"),
            ("keepalive_requests", "0"),
            ("header_read_timeout", "\"0s\""),
            ("keepalive_timeout", "\"0\""),
            ("body_idle_timeout", "\"0ms\""),
        ] {
            let text = format!("[proxy]\n{key} = {value}\n{EXAMPLE}");
            let e = Config::from_toml(&text).unwrap_err();
            assert_eq!(e.key, format!("proxy.{key}"), "{e}");
            assert_eq!(e.line, Some(2), "{e}");
        }
    }

    #[test]
    fn a_duration_too_large_is_an_error_not_a_panic() {
        let e =
            Config::from_toml(&format!("[proxy]\ndrain_delay = \"1e30\"\n{EXAMPLE}")).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("proxy.drain_delay", Some(2)));
        assert!(e.message.contains("\"1e30\""), "{e}");
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../../examples/proxy.toml");
        let c = super::Config::from_toml(text).unwrap();
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.proxy.until_quiet, Some(std::time::Duration::from_secs(2)));
    }
}
