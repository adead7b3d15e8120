//! What Eureka stores about an instance, and how it is read from and written to
//! the JSON shape that both wire formats share.
//!
//! Eureka clients disagree on details: py-eureka-client sends `overriddenstatus`
//! in JSON where Java sends `overriddenStatus`, ports come as `8080`, `"8080"` or
//! `{"$": 8080, "@enabled": "true"}`, booleans as `true` or `"true"`. So reading is
//! done by hand from a [`serde_json::Value`], leniently, with an error that names
//! the field; writing produces exactly what the Eureka server writes. XML is
//! converted to and from this same shape in [`crate::wire`], so both formats go
//! through one reader and one writer.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

/// Why a request body could not be accepted. The text is sent to the client
/// with a 400, so it names the field and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

fn bad(msg: impl Into<String>) -> BadInput {
    BadInput(msg.into())
}

/// An instance's status, as Eureka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Ready to receive traffic.
    Up,
    /// Do not send traffic: the instance said so, or an operator did.
    Down,
    /// Not ready yet.
    Starting,
    /// Taken out of service by an operator (an override).
    OutOfService,
    /// Not known; as a stored override it means "no override".
    Unknown,
}

impl Status {
    /// Every status, for error messages.
    pub const ALL: [Status; 5] = [
        Status::Up,
        Status::Down,
        Status::Starting,
        Status::OutOfService,
        Status::Unknown,
    ];

    /// The wire name: `UP`, `DOWN`, `STARTING`, `OUT_OF_SERVICE`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
            Status::Starting => "STARTING",
            Status::OutOfService => "OUT_OF_SERVICE",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// Reads a wire name, in any case.
    pub fn parse(s: &str) -> Result<Status, BadInput> {
        let upper = s.trim().to_ascii_uppercase();
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == upper)
            .ok_or_else(|| {
                bad(format!(
                    "unknown status {s:?}: use UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN"
                ))
            })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to an instance, as carried by the delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Registered (also a re-registration).
    Added,
    /// Status, override or metadata changed.
    Modified,
    /// Cancelled or evicted.
    Deleted,
}

impl Action {
    /// The wire name: `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Added => "ADDED",
            Action::Modified => "MODIFIED",
            Action::Deleted => "DELETED",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ADDED" => Some(Action::Added),
            "MODIFIED" => Some(Action::Modified),
            "DELETED" => Some(Action::Deleted),
            _ => None,
        }
    }
}

/// A port and whether it is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// The port number.
    pub port: u16,
    /// Whether clients may use it.
    pub enabled: bool,
}

/// The lease times an instance asked for, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    /// How often the client renews (informational).
    pub renewal_interval_secs: u64,
    /// How long the lease lasts without a renewal.
    pub duration_secs: u64,
}

/// The lease timestamps the server reports, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseStamps {
    /// When the instance was registered.
    pub registration: u64,
    /// When it last renewed.
    pub last_renewal: u64,
    /// When it was evicted or cancelled (0 while registered).
    pub eviction: u64,
    /// When it first turned UP.
    pub service_up: u64,
}

/// One registered instance: what the client sent, plus what the server tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The id used in URLs (`instanceId`, or `hostName` when that is absent).
    pub id: String,
    /// Host name clients connect to.
    pub host_name: String,
    /// Application name, upper case.
    pub app: String,
    /// IP address.
    pub ip_addr: String,
    /// The effective status.
    pub status: Status,
    /// The status an operator set, or [`Status::Unknown`] for none.
    pub overridden_status: Status,
    /// Plain port.
    pub port: Port,
    /// TLS port.
    pub secure_port: Port,
    /// Numeric country id (Eureka's legacy field, kept as sent).
    pub country_id: u64,
    /// `dataCenterInfo` as sent (`@class`, `name`, maybe `metadata`).
    pub data_center_info: Map<String, Value>,
    /// Lease the client asked for.
    pub lease: LeaseTimes,
    /// Lease timestamps (server side).
    pub stamps: LeaseStamps,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
    /// Optional URLs and names, passed through as strings.
    pub urls: Urls,
    /// Last change of this record on the server, ms since the epoch.
    pub last_updated: u64,
    /// Last change the client made to its own record, ms since the epoch.
    pub last_dirty: u64,
    /// Set on delta entries.
    pub action: Option<Action>,
}

/// The string fields Eureka passes through without meaning to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Urls {
    /// `homePageUrl`.
    pub home_page: Option<String>,
    /// `statusPageUrl`.
    pub status_page: Option<String>,
    /// `healthCheckUrl`.
    pub health_check: Option<String>,
    /// `secureHealthCheckUrl`.
    pub secure_health_check: Option<String>,
    /// `vipAddress` (comma-separated list of VIPs).
    pub vip_address: Option<String>,
    /// `secureVipAddress`.
    pub secure_vip_address: Option<String>,
    /// `appGroupName`.
    pub app_group_name: Option<String>,
    /// `asgName`.
    pub asg_name: Option<String>,
}

/// The lease Eureka uses when the client asks for none.
pub const DEFAULT_LEASE_SECS: u64 = 90;
/// The renewal interval Eureka clients use by default.
pub const DEFAULT_RENEWAL_SECS: u64 = 30;

impl Instance {
    /// Reads a register body: `{"instance": {...}}` (or the bare instance).
    /// Control characters (but TAB, LF and CR) are refused anywhere in it:
    /// XML 1.0 cannot carry them, so one such registration would make the
    /// registry's XML for every client unreadable.
    pub fn from_body(body: &Value) -> Result<Instance, BadInput> {
        let inner = body.get("instance").unwrap_or(body);
        refuse_controls(inner, "instance")?;
        Instance::from_value(inner)
    }

    /// Reads one instance object, checking what Eureka requires.
    pub fn from_value(v: &Value) -> Result<Instance, BadInput> {
        let obj = v
            .as_object()
            .ok_or_else(|| bad("the body must be an instance object: {\"instance\": {...}}"))?;
        let host_name = opt_string(obj, "hostName")?;
        let id = match opt_string(obj, "instanceId")? {
            Some(id) => id,
            None => host_name
                .clone()
                .ok_or_else(|| bad("missing instanceId (and no hostName to use instead)"))?,
        };
        let status = opt_string(obj, "status")?
            .map(|s| Status::parse(&s))
            .transpose()?
            .unwrap_or(Status::Up);
        let overridden = opt_string_any(obj, &["overriddenStatus", "overriddenstatus"])?
            .filter(|s| !s.is_empty())
            .map(|s| Status::parse(&s))
            .transpose()?
            .unwrap_or(Status::Unknown);
        Ok(Instance {
            id,
            host_name: host_name.ok_or_else(|| bad("missing hostName"))?,
            app: opt_string(obj, "app")?
                .ok_or_else(|| bad("missing app"))?
                .to_ascii_uppercase(),
            ip_addr: opt_string(obj, "ipAddr")?.ok_or_else(|| bad("missing ipAddr"))?,
            status,
            overridden_status: overridden,
            port: port(
                obj,
                "port",
                Port {
                    port: 7001,
                    enabled: true,
                },
            )?,
            secure_port: port(
                obj,
                "securePort",
                Port {
                    port: 7002,
                    enabled: false,
                },
            )?,
            country_id: opt_u64(obj, "countryId")?.unwrap_or(1),
            data_center_info: data_center_info(obj)?,
            lease: lease_times(obj)?,
            stamps: lease_stamps(obj)?,
            metadata: metadata(obj)?,
            urls: urls(obj)?,
            last_updated: opt_u64(obj, "lastUpdatedTimestamp")?.unwrap_or(0),
            last_dirty: opt_u64(obj, "lastDirtyTimestamp")?.unwrap_or(0),
            action: opt_string(obj, "actionType")?.and_then(|s| Action::parse(&s)),
        })
    }

    /// The JSON object the Eureka server writes for this instance.
    pub fn to_value(&self) -> Value {
        let mut o = Map::new();
        o.insert("instanceId".into(), json!(self.id));
        o.insert("hostName".into(), json!(self.host_name));
        o.insert("app".into(), json!(self.app));
        o.insert("ipAddr".into(), json!(self.ip_addr));
        o.insert("status".into(), json!(self.status.as_str()));
        o.insert(
            "overriddenStatus".into(),
            json!(self.overridden_status.as_str()),
        );
        o.insert("port".into(), port_value(self.port));
        o.insert("securePort".into(), port_value(self.secure_port));
        o.insert("countryId".into(), json!(self.country_id));
        o.insert(
            "dataCenterInfo".into(),
            Value::Object(self.data_center_info.clone()),
        );
        o.insert("leaseInfo".into(), self.lease_value());
        o.insert("metadata".into(), metadata_value(&self.metadata));
        self.insert_urls(&mut o);
        o.insert("isCoordinatingDiscoveryServer".into(), json!("false"));
        o.insert(
            "lastUpdatedTimestamp".into(),
            json!(self.last_updated.to_string()),
        );
        o.insert(
            "lastDirtyTimestamp".into(),
            json!(self.last_dirty.to_string()),
        );
        if let Some(action) = self.action {
            o.insert("actionType".into(), json!(action.as_str()));
        }
        Value::Object(o)
    }

    fn lease_value(&self) -> Value {
        json!({
            "renewalIntervalInSecs": self.lease.renewal_interval_secs,
            "durationInSecs": self.lease.duration_secs,
            "registrationTimestamp": self.stamps.registration,
            "lastRenewalTimestamp": self.stamps.last_renewal,
            "evictionTimestamp": self.stamps.eviction,
            "serviceUpTimestamp": self.stamps.service_up,
        })
    }

    fn insert_urls(&self, o: &mut Map<String, Value>) {
        let u = &self.urls;
        let fields = [
            ("appGroupName", &u.app_group_name),
            ("homePageUrl", &u.home_page),
            ("statusPageUrl", &u.status_page),
            ("healthCheckUrl", &u.health_check),
            ("secureHealthCheckUrl", &u.secure_health_check),
            ("vipAddress", &u.vip_address),
            ("secureVipAddress", &u.secure_vip_address),
            ("asgName", &u.asg_name),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                o.insert(key.into(), json!(v));
            }
        }
    }

    /// True when `vip` is one of the comma-separated names in `vipAddress`
    /// (`secure` = `secureVipAddress`), compared without case as Eureka does.
    pub fn has_vip(&self, vip: &str, secure: bool) -> bool {
        let list = if secure {
            &self.urls.secure_vip_address
        } else {
            &self.urls.vip_address
        };
        list.as_deref()
            .unwrap_or("")
            .split(',')
            .any(|v| v.trim().eq_ignore_ascii_case(vip))
    }
}

fn port_value(p: Port) -> Value {
    json!({"$": p.port, "@enabled": p.enabled.to_string()})
}

fn metadata_value(m: &BTreeMap<String, String>) -> Value {
    if m.is_empty() {
        return json!({"@class": "java.util.Collections$EmptyMap"});
    }
    Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// Refuses, naming where, a control character other than TAB, LF and CR in
/// any key or string of `v`, and a key that is not an XML name (`@name` for
/// an attribute, `$` for text): keys become XML element names, and a key
/// such as `a><b` would write elements of its own into the registry's XML.
fn refuse_controls(v: &Value, at: &str) -> Result<(), BadInput> {
    let control = |s: &str| {
        s.chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    };
    match v {
        Value::String(s) if control(s) => Err(bad(format!("{at}: a control character"))),
        Value::Array(items) => items.iter().try_for_each(|i| refuse_controls(i, at)),
        Value::Object(fields) => fields.iter().try_for_each(|(k, v)| {
            let at = format!("{at}.{k}");
            match control(k) || !(k == "$" || xml_name(k.strip_prefix('@').unwrap_or(k))) {
                true => Err(bad(format!("{at}: not a name XML can carry"))),
                false => refuse_controls(v, &at),
            }
        }),
        _ => Ok(()),
    }
}

/// An XML name (XML 1.0 §2.3), ASCII punctuation limited to `_ - . :`.
fn xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first = |c: char| c.is_alphabetic() || c == '_' || c == ':';
    let rest = |c: char| first(c) || c.is_alphanumeric() || c == '-' || c == '.';
    chars.next().is_some_and(first) && chars.all(rest)
}

/// A scalar as text: strings as they are, numbers and booleans printed.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, BadInput> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar_text(v)
            .map(Some)
            .ok_or_else(|| bad(format!("{key}: expected a string, got {v}"))),
    }
}

fn opt_string_any(obj: &Map<String, Value>, keys: &[&str]) -> Result<Option<String>, BadInput> {
    for key in keys {
        if let Some(s) = opt_string(obj, key)? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// A number sent as a number or as a string (Eureka writes timestamps as strings).
fn lenient_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if s.trim().is_empty() => Some(0),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lenient_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "TRUE" | "True" => Some(true),
            "false" | "FALSE" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn opt_u64(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, BadInput> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => lenient_u64(v)
            .map(Some)
            .ok_or_else(|| bad(format!("{key}: expected a number, got {v}"))),
    }
}

/// `8080`, `"8080"`, `{"$": 8080, "@enabled": "true"}` or `{"$": "8080", "@enabled": true}`.
fn port(obj: &Map<String, Value>, key: &str, default: Port) -> Result<Port, BadInput> {
    let err = |v: &Value| {
        bad(format!(
            "{key}: expected a port number or {{\"$\": 8080, \"@enabled\": \"true\"}}, got {v}"
        ))
    };
    let Some(v) = obj.get(key).filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    let (number, enabled) = match v {
        Value::Object(o) => (
            o.get("$").ok_or_else(|| err(v))?,
            o.get("@enabled").or_else(|| o.get("enabled")),
        ),
        other => (other, None),
    };
    let port = lenient_u64(number)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| err(v))?;
    let enabled = match enabled {
        None => key == "port",
        Some(e) => lenient_bool(e).ok_or_else(|| err(v))?,
    };
    Ok(Port { port, enabled })
}

fn data_center_info(obj: &Map<String, Value>) -> Result<Map<String, Value>, BadInput> {
    let dci = match obj.get("dataCenterInfo") {
        None | Some(Value::Null) => return Err(bad("missing dataCenterInfo")),
        Some(Value::Object(o)) => o.clone(),
        Some(v) => return Err(bad(format!("dataCenterInfo: expected an object, got {v}"))),
    };
    match dci.get("name").and_then(scalar_text) {
        Some(name) if !name.is_empty() => Ok(dci),
        _ => Err(bad(
            "missing dataCenterInfo name (use \"MyOwn\" outside AWS)",
        )),
    }
}

fn lease_times(obj: &Map<String, Value>) -> Result<LeaseTimes, BadInput> {
    let mut lease = LeaseTimes {
        renewal_interval_secs: DEFAULT_RENEWAL_SECS,
        duration_secs: DEFAULT_LEASE_SECS,
    };
    let Some(Value::Object(li)) = obj.get("leaseInfo") else {
        return Ok(lease);
    };
    if let Some(n) = opt_u64(li, "renewalIntervalInSecs")?.filter(|n| *n > 0) {
        lease.renewal_interval_secs = n;
    }
    if let Some(n) = opt_u64(li, "durationInSecs")?.filter(|n| *n > 0) {
        lease.duration_secs = n;
    }
    Ok(lease)
}

/// The server-side lease timestamps, when reading what a server wrote (a
/// registering client sends zeros, which the registry replaces).
fn lease_stamps(obj: &Map<String, Value>) -> Result<LeaseStamps, BadInput> {
    let Some(Value::Object(li)) = obj.get("leaseInfo") else {
        return Ok(LeaseStamps::default());
    };
    let stamp = |key| opt_u64(li, key).map(Option::unwrap_or_default);
    Ok(LeaseStamps {
        registration: stamp("registrationTimestamp")?,
        last_renewal: stamp("lastRenewalTimestamp")?,
        eviction: stamp("evictionTimestamp")?,
        service_up: stamp("serviceUpTimestamp")?,
    })
}

/// Metadata as a flat map of strings; `@class` (Java's type tag) is dropped.
fn metadata(obj: &Map<String, Value>) -> Result<BTreeMap<String, String>, BadInput> {
    match obj.get("metadata") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .filter(|(k, _)| !k.starts_with('@'))
            .map(|(k, v)| match v {
                Value::Null => Ok((k.clone(), String::new())),
                v => scalar_text(v)
                    .map(|s| (k.clone(), s))
                    .ok_or_else(|| bad(format!("metadata.{k}: expected a string, got {v}"))),
            })
            .collect(),
        Some(v) => Err(bad(format!("metadata: expected an object, got {v}"))),
    }
}

fn urls(obj: &Map<String, Value>) -> Result<Urls, BadInput> {
    Ok(Urls {
        home_page: opt_string(obj, "homePageUrl")?,
        status_page: opt_string(obj, "statusPageUrl")?,
        health_check: opt_string(obj, "healthCheckUrl")?,
        secure_health_check: opt_string(obj, "secureHealthCheckUrl")?,
        vip_address: opt_string(obj, "vipAddress")?,
        secure_vip_address: opt_string(obj, "secureVipAddress")?,
        app_group_name: opt_string(obj, "appGroupName")?,
        asg_name: opt_string(obj, "asgName")?,
    })
}

/// The reconcile hashcode of a set of statuses: `DOWN_1_UP_2_`.
pub fn hashcode(statuses: impl Iterator<Item = Status>) -> String {
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for s in statuses {
        *counts.entry(s.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(status, n)| format!("{status}_{n}_"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Value {
        json!({"instance": {
            "instanceId": "h1:web:8080", "hostName": "h1", "app": "web",
            "ipAddr": "10.0.0.1", "dataCenterInfo": {"@class": "x", "name": "MyOwn"}
        }})
    }

    #[test]
    fn a_registration_with_a_control_character_or_a_key_xml_cannot_carry_is_refused() {
        // Accepted, a NUL made the registry's XML unreadable to every XML
        // client, and a metadata key wrote elements of its own into it.
        let body = json!({"instance": {"hostName": "h", "app": "a\u{0}", "ipAddr": "1"}});
        let e = Instance::from_body(&body).unwrap_err();
        assert!(e.0.contains("instance.app"), "{e}");
        let key = json!({"instance": {"hostName": "h", "app": "a", "ipAddr": "1",
            "metadata": {"x></metadata><evil": "1"}}});
        let e = Instance::from_body(&key).unwrap_err();
        assert!(e.0.contains("not a name XML can carry"), "{e}");
        let tab = json!({"instance": {"hostName": "h\t", "app": "a", "ipAddr": "1",
            "dataCenterInfo": {"name": "MyOwn"}}});
        let tab = Instance::from_body(&tab);
        assert_eq!(tab.map(|i| i.host_name), Ok("h\t".to_string()));
    }

    #[test]
    fn reads_a_minimal_instance_with_eureka_defaults() {
        let i = Instance::from_body(&minimal()).unwrap();
        assert_eq!(i.app, "WEB");
        assert_eq!(i.status, Status::Up);
        assert_eq!(i.overridden_status, Status::Unknown);
        assert_eq!(i.lease.duration_secs, 90);
        assert_eq!(
            i.port,
            Port {
                port: 7001,
                enabled: true
            }
        );
    }

    #[test]
    fn ports_are_read_leniently() {
        for (port, want) in [
            (json!(8080), (8080, true)),
            (json!("8080"), (8080, true)),
            (json!({"$": 8080, "@enabled": "true"}), (8080, true)),
            (json!({"$": "8081", "@enabled": false}), (8081, false)),
            (json!({"$": 8082}), (8082, true)),
        ] {
            let mut body = minimal();
            body["instance"]["port"] = port.clone();
            let i = Instance::from_body(&body).unwrap();
            assert_eq!((i.port.port, i.port.enabled), want, "{port}");
        }
        let mut body = minimal();
        body["instance"]["port"] = json!("http");
        let err = Instance::from_body(&body).unwrap_err();
        assert!(err.0.starts_with("port: expected a port number"), "{err}");
    }

    #[test]
    fn both_spellings_of_the_override_are_read() {
        for key in ["overriddenStatus", "overriddenstatus"] {
            let mut body = minimal();
            body["instance"][key] = json!("OUT_OF_SERVICE");
            let i = Instance::from_body(&body).unwrap();
            assert_eq!(i.overridden_status, Status::OutOfService, "{key}");
        }
    }

    #[test]
    fn missing_fields_are_named() {
        for (field, msg) in [
            ("hostName", "missing hostName"),
            ("ipAddr", "missing ipAddr"),
            ("app", "missing app"),
            ("dataCenterInfo", "missing dataCenterInfo"),
        ] {
            let mut body = minimal();
            body["instance"].as_object_mut().unwrap().remove(field);
            assert_eq!(Instance::from_body(&body).unwrap_err().0, msg, "{field}");
        }
    }

    #[test]
    fn the_id_falls_back_to_the_host_name_as_eureka_does() {
        let mut body = minimal();
        body["instance"]
            .as_object_mut()
            .unwrap()
            .remove("instanceId");
        assert_eq!(Instance::from_body(&body).unwrap().id, "h1");
        body["instance"].as_object_mut().unwrap().remove("hostName");
        assert!(Instance::from_body(&body)
            .unwrap_err()
            .0
            .starts_with("missing instanceId"));
    }

    #[test]
    fn writes_what_eureka_writes() {
        let mut i = Instance::from_body(&minimal()).unwrap();
        i.action = Some(Action::Added);
        i.stamps.registration = 17;
        let v = i.to_value();
        assert_eq!(v["port"], json!({"$": 7001, "@enabled": "true"}));
        assert_eq!(v["overriddenStatus"], "UNKNOWN");
        assert_eq!(v["lastDirtyTimestamp"], "0");
        assert_eq!(v["metadata"]["@class"], "java.util.Collections$EmptyMap");
        assert_eq!(v["actionType"], "ADDED");
        // What is written reads back the same.
        assert_eq!(Instance::from_value(&v).unwrap(), Instance { ..i });
    }
}
