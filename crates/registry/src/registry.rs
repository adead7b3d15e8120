//! The registry's state and Eureka's rules, with no I/O and no clock of its own.
//!
//! Every operation is told the time (`now`, milliseconds on a clock that only
//! moves forward), like the drain state machine, so each rule — lease expiry,
//! eviction, self-preservation, the three-minute delta window — is tested in
//! microseconds instead of waiting 90 seconds. The server owns one `Registry`
//! behind a mutex and passes the time in.
//!
//! The rules, as the Eureka server applies them:
//!
//! - **Leases.** A registration lasts `leaseInfo.durationInSecs` (default 90 s)
//!   after the last renewal. A renewal of an unknown instance answers "not
//!   found", and so does one whose `lastDirtyTimestamp` is newer than ours: the
//!   client then registers again. That is also how clients recover after this
//!   in-memory registry restarts.
//! - **Status precedence.** An instance's own DOWN, STARTING or UNKNOWN wins;
//!   otherwise a stored override (`PUT …/status`) wins; otherwise its own status.
//!   Cancelling forgets the override. Deleting the override sets the status to
//!   the given value, UNKNOWN by default, so the next renewal answers "not found"
//!   and the client re-registers with its own status.
//! - **Delta.** Every change (ADDED, MODIFIED, DELETED) is kept for three minutes;
//!   `/apps/delta` lists the latest change per instance in that window, with the
//!   reconcile hashcode of the *full* registry so a client can check its merge.
//!   Each change also gets a sequence number (`versions__delta`), which the
//!   change feed uses. Numbering starts at the registry's start time in
//!   milliseconds, so a version from an earlier run is recognisably too old.
//! - **Eviction and self-preservation.** The eviction pass removes expired leases,
//!   at most 15 % of the registry per pass, and none at all while renewals in the
//!   last minute are at or below 85 % of those expected (each registered instance
//!   is expected to renew twice a minute): then the registry assumes a network
//!   problem rather than mass death, as Eureka does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use lameduck_eureka::model::{hashcode, Action, Instance, Status};

/// Milliseconds since the Unix epoch, as the registry's clock gives them.
pub type Millis = u64;

/// The knobs of the registry's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Whether self-preservation may stop eviction.
    pub self_preservation: bool,
    /// Share of expected renewals below which self-preservation starts (0.85).
    pub renewal_percent_threshold: f64,
    /// The renewal interval clients are expected to use (30 s).
    pub expected_renewal_interval: Duration,
    /// How long a change stays in the delta (3 minutes).
    pub delta_retention: Duration,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            self_preservation: true,
            renewal_percent_threshold: 0.85,
            expected_renewal_interval: Duration::from_secs(30),
            delta_retention: Duration::from_secs(180),
        }
    }
}

/// Why a registration was refused (answered with 400 and this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mismatched app: the URL says {path} but the body says {body}")]
pub struct AppMismatch {
    /// The app in the URL.
    pub path: String,
    /// The app in the body.
    pub body: String,
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Lease renewed (200).
    Renewed,
    /// Not registered here (404): the client must register.
    NotFound,
    /// Its status is UNKNOWN (404): the client must register with its own status.
    StatusUnknown,
    /// The client's record is newer than ours (404): it must register again.
    ClientNewer,
}

/// What one eviction pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// Self-preservation is on: nothing was evicted.
    SelfPreservation {
        /// Renewals in the last full minute.
        renews_last_min: u64,
        /// The number they must exceed.
        threshold: u64,
    },
    /// These instances (`APP/ID`) were evicted.
    Evicted(Vec<String>),
}

/// The answer of the change feed.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangesSince {
    /// Changes after the given version (maybe none yet), as a delta document.
    Changes(Value),
    /// The version is older than the delta window (or from another registry
    /// run): fetch the full registry again.
    Gone,
}

/// A registered instance and its lease.
///
/// The instance is shared (`Arc`) with the delta queue, so a registration is
/// stored once, not twice, while its ADDED entry is kept; a renewal touches only
/// the lease, and a change copies the instance only if the queue still holds it.
#[derive(Debug, Clone)]
struct Lease {
    instance: Arc<Instance>,
    last_renewal: Millis,
    duration_ms: u64,
}

impl Lease {
    fn expired(&self, now: Millis) -> bool {
        now > self.last_renewal.saturating_add(self.duration_ms)
    }

    /// The instance as written, with the lease's own renewal time.
    fn value(&self) -> Value {
        let mut v = self.instance.to_value();
        v["leaseInfo"]["lastRenewalTimestamp"] = json!(self.last_renewal);
        v
    }
}

/// One entry of the delta queue: the instance as it was after the change.
#[derive(Debug, Clone)]
struct Change {
    seq: u64,
    at: Millis,
    action: Action,
    instance: Arc<Instance>,
}

impl Change {
    fn value(&self) -> Value {
        let mut v = self.instance.to_value();
        v["actionType"] = json!(self.action.as_str());
        v
    }
}

/// Renewals counted per whole minute, as Eureka's `MeasuredRate` does.
#[derive(Debug, Clone)]
struct RenewRate {
    minute_start: Millis,
    current: u64,
    last: u64,
}

impl RenewRate {
    fn roll(&mut self, now: Millis) {
        if now < self.minute_start + 60_000 {
            return;
        }
        let minutes = (now - self.minute_start) / 60_000;
        self.last = if minutes == 1 { self.current } else { 0 };
        self.current = 0;
        self.minute_start += minutes * 60_000;
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Registered instances.
    pub instances: u64,
    /// Registered applications.
    pub applications: u64,
    /// Renewals in the last full minute.
    pub renews_last_min: u64,
    /// Self-preservation threshold (renewals per minute).
    pub threshold: u64,
    /// Whether self-preservation blocks eviction now.
    pub self_preservation_active: bool,
    /// Current version (sequence number of the last change).
    pub version: u64,
}

/// The whole registry.
#[derive(Debug)]
pub struct Registry {
    rules: Rules,
    apps: BTreeMap<String, BTreeMap<String, Lease>>,
    overrides: HashMap<String, Status>,
    changes: VecDeque<Change>,
    seq: u64,
    pruned_through: u64,
    expected_clients: u64,
    renews: RenewRate,
}

impl Registry {
    /// An empty registry whose minute counter and version numbers start at `now`.
    pub fn new(rules: Rules, now: Millis) -> Registry {
        Registry {
            rules,
            apps: BTreeMap::new(),
            overrides: HashMap::new(),
            changes: VecDeque::new(),
            seq: now,
            pruned_through: now,
            expected_clients: 0,
            renews: RenewRate {
                minute_start: now,
                current: 0,
                last: 0,
            },
        }
    }

    /// The sequence number of the latest change.
    pub fn version(&self) -> u64 {
        self.seq
    }

    /// Registers (or re-registers) `instance` under the app in the URL.
    pub fn register(
        &mut self,
        path_app: &str,
        mut instance: Instance,
        now: Millis,
    ) -> Result<(), AppMismatch> {
        let app = path_app.to_ascii_uppercase();
        if instance.app != app {
            return Err(AppMismatch {
                path: app,
                body: instance.app,
            });
        }
        let existing = self.lease(&app, &instance.id).cloned();
        if let Some(old) = &existing {
            // Eureka keeps the record the client changed last.
            if instance.last_dirty != 0 && old.instance.last_dirty > instance.last_dirty {
                instance = Instance::clone(&old.instance);
            }
        } else {
            self.expected_clients += 1;
        }
        if instance.overridden_status != Status::Unknown {
            self.overrides
                .entry(instance.id.clone())
                .or_insert(instance.overridden_status);
        }
        let stored = self.overrides.get(&instance.id).copied();
        instance.overridden_status = stored.unwrap_or(Status::Unknown);
        instance.status = effective_status(instance.status, stored);
        self.stamp_registration(&mut instance, existing.as_ref(), now);
        let lease = Lease {
            // A client's durationInSecs may be anything: saturate, never overflow.
            duration_ms: instance.lease.duration_secs.saturating_mul(1000),
            instance: Arc::new(instance),
            last_renewal: now,
        };
        self.record(Action::Added, &lease.instance, now);
        self.apps
            .entry(app)
            .or_default()
            .insert(lease.instance.id.clone(), lease);
        Ok(())
    }

    fn stamp_registration(&self, instance: &mut Instance, old: Option<&Lease>, now: Millis) {
        let old_stamps = old.map(|l| l.instance.stamps);
        instance.stamps.registration = now;
        instance.stamps.last_renewal = now;
        instance.stamps.eviction = 0;
        instance.stamps.service_up = old_stamps.map_or(0, |s| s.service_up);
        if instance.status == Status::Up && instance.stamps.service_up == 0 {
            instance.stamps.service_up = now;
        }
        instance.last_updated = now;
        if instance.last_dirty == 0 {
            instance.last_dirty = now;
        }
    }

    /// Renews a lease. `client_dirty` is the `lastDirtyTimestamp` the client sent.
    pub fn renew(
        &mut self,
        app: &str,
        id: &str,
        client_dirty: Option<Millis>,
        now: Millis,
    ) -> Renewal {
        self.renews.roll(now);
        self.renews.current += 1;
        let stored = self.overrides.get(id).copied();
        let Some(lease) = self.lease_mut(app, id) else {
            return Renewal::NotFound;
        };
        let status = effective_status(lease.instance.status, stored);
        if status == Status::Unknown {
            return Renewal::StatusUnknown;
        }
        lease.last_renewal = now;
        let server_dirty = lease.instance.last_dirty;
        if lease.instance.status != status {
            let instance = Arc::make_mut(&mut lease.instance);
            instance.status = status;
            instance.stamps.last_renewal = now;
            let snapshot = Arc::clone(&lease.instance);
            self.record(Action::Modified, &snapshot, now);
        }
        match client_dirty {
            Some(d) if d > server_dirty => Renewal::ClientNewer,
            _ => Renewal::Renewed,
        }
    }

    /// `PUT …/status?value=S`: stores an override and applies it. False if unknown.
    pub fn set_status(&mut self, app: &str, id: &str, status: Status, now: Millis) -> bool {
        if self.lease(app, id).is_none() {
            return false;
        }
        self.overrides.insert(id.to_string(), status);
        self.modify(app, id, now, |i| {
            i.overridden_status = status;
            i.status = status;
        })
    }

    /// `DELETE …/status[?value=S]`: forgets the override and sets the status to
    /// `status` (UNKNOWN when not given, which makes the client re-register).
    pub fn delete_override(&mut self, app: &str, id: &str, status: Status, now: Millis) -> bool {
        if self.lease(app, id).is_none() {
            return false;
        }
        self.overrides.remove(id);
        self.modify(app, id, now, |i| {
            i.overridden_status = Status::Unknown;
            i.status = status;
        })
    }

    /// `PUT …/metadata?k=v`: merges metadata. False if unknown.
    pub fn update_metadata(
        &mut self,
        app: &str,
        id: &str,
        pairs: &[(String, String)],
        now: Millis,
    ) -> bool {
        self.modify(app, id, now, |i| {
            for (k, v) in pairs {
                i.metadata.insert(k.clone(), v.clone());
            }
        })
    }

    fn modify(&mut self, app: &str, id: &str, now: Millis, f: impl FnOnce(&mut Instance)) -> bool {
        let Some(lease) = self.lease_mut(app, id) else {
            return false;
        };
        let last_renewal = lease.last_renewal;
        let instance = Arc::make_mut(&mut lease.instance);
        f(instance);
        instance.last_updated = now;
        instance.stamps.last_renewal = last_renewal;
        let snapshot = Arc::clone(&lease.instance);
        self.record(Action::Modified, &snapshot, now);
        true
    }

    /// `DELETE /apps/APP/ID`: removes the instance and its override. False if unknown.
    pub fn cancel(&mut self, app: &str, id: &str, now: Millis) -> bool {
        if !self.remove(app, id, now) {
            return false;
        }
        self.expected_clients = self.expected_clients.saturating_sub(1);
        true
    }

    fn remove(&mut self, app: &str, id: &str, now: Millis) -> bool {
        let app = app.to_ascii_uppercase();
        let Some(instances) = self.apps.get_mut(&app) else {
            return false;
        };
        let Some(mut lease) = instances.remove(id) else {
            return false;
        };
        if instances.is_empty() {
            self.apps.remove(&app);
        }
        self.overrides.remove(id);
        let last_renewal = lease.last_renewal;
        let instance = Arc::make_mut(&mut lease.instance);
        instance.stamps.eviction = now;
        instance.stamps.last_renewal = last_renewal;
        instance.last_updated = now;
        self.record(Action::Deleted, &lease.instance, now);
        true
    }

    /// Renewals per minute above which leases may expire.
    pub fn threshold(&self) -> u64 {
        let per_client = 60.0 / self.rules.expected_renewal_interval.as_secs_f64().max(1.0);
        (self.expected_clients as f64 * per_client * self.rules.renewal_percent_threshold) as u64
    }

    /// Renewals in the last full minute.
    pub fn renews_last_min(&mut self, now: Millis) -> u64 {
        self.renews.roll(now);
        self.renews.last
    }

    fn self_preservation_active(&mut self, now: Millis) -> bool {
        if !self.rules.self_preservation {
            return false;
        }
        let threshold = self.threshold();
        threshold == 0 || self.renews_last_min(now) <= threshold
    }

    /// One eviction pass at `now`.
    pub fn evict(&mut self, now: Millis) -> Eviction {
        if self.self_preservation_active(now) && self.instance_count() > 0 {
            return Eviction::SelfPreservation {
                renews_last_min: self.renews_last_min(now),
                threshold: self.threshold(),
            };
        }
        let mut expired: Vec<(Millis, String, String)> = self
            .apps
            .iter()
            .flat_map(|(app, instances)| instances.values().map(move |l| (app, l)))
            .filter(|(_, l)| l.expired(now))
            .map(|(app, l)| {
                (
                    l.last_renewal.saturating_add(l.duration_ms),
                    app.clone(),
                    l.instance.id.clone(),
                )
            })
            .collect();
        expired.sort();
        let size = self.instance_count();
        let keep = (size as f64 * self.rules.renewal_percent_threshold) as usize;
        let limit = size - keep.min(size);
        let mut evicted = Vec::new();
        for (_, app, id) in expired.into_iter().take(limit) {
            self.remove(&app, &id, now);
            evicted.push(format!("{app}/{id}"));
        }
        Eviction::Evicted(evicted)
    }

    fn instance_count(&self) -> usize {
        self.apps.values().map(BTreeMap::len).sum()
    }

    fn lease(&self, app: &str, id: &str) -> Option<&Lease> {
        self.apps.get(&app.to_ascii_uppercase())?.get(id)
    }

    fn lease_mut(&mut self, app: &str, id: &str) -> Option<&mut Lease> {
        self.apps.get_mut(&app.to_ascii_uppercase())?.get_mut(id)
    }

    fn record(&mut self, action: Action, instance: &Arc<Instance>, now: Millis) {
        self.seq += 1;
        self.changes.push_back(Change {
            seq: self.seq,
            at: now,
            action,
            instance: Arc::clone(instance),
        });
        self.prune(now);
    }

    fn prune(&mut self, now: Millis) {
        let retention = self.rules.delta_retention.as_millis() as u64;
        while let Some(front) = self.changes.front() {
            if front.at + retention >= now {
                break;
            }
            self.pruned_through = front.seq;
            self.changes.pop_front();
        }
    }

    /// The reconcile hashcode: `STATUS_count_` for each status present, sorted
    /// by name (`DOWN_1_UP_2_`), over every instance.
    pub fn hashcode(&self) -> String {
        hashcode(
            self.apps
                .values()
                .flat_map(|i| i.values().map(|l| l.instance.status)),
        )
    }

    /// `GET /apps`: the full registry document.
    pub fn applications(&self) -> Value {
        let apps = self
            .apps
            .iter()
            .map(|(name, instances)| application_value(name, instances.values().map(Lease::value)));
        self.applications_doc(apps.collect())
    }

    fn applications_doc(&self, apps: Vec<Value>) -> Value {
        json!({"applications": {
            "versions__delta": self.seq.to_string(),
            "apps__hashcode": self.hashcode(),
            "application": apps,
        }})
    }

    /// `GET /apps/delta`: the latest change per instance in the last three minutes.
    pub fn delta(&mut self, now: Millis) -> Value {
        self.prune(now);
        self.changes_doc(0)
    }

    /// The change feed: changes after `version`, or [`ChangesSince::Gone`].
    pub fn changes_since(&mut self, version: u64, now: Millis) -> ChangesSince {
        self.prune(now);
        if version > self.seq || version < self.pruned_through {
            return ChangesSince::Gone;
        }
        ChangesSince::Changes(self.changes_doc(version))
    }

    fn changes_doc(&self, after: u64) -> Value {
        let mut latest: BTreeMap<&str, BTreeMap<&str, &Change>> = BTreeMap::new();
        for change in self.changes.iter().filter(|c| c.seq > after) {
            let i = &change.instance;
            latest.entry(&i.app).or_default().insert(&i.id, change);
        }
        let apps = latest
            .iter()
            .map(|(name, changes)| application_value(name, changes.values().map(|c| c.value())));
        self.applications_doc(apps.collect())
    }

    /// `GET /apps/APP`, if registered.
    pub fn application(&self, app: &str) -> Option<Value> {
        let name = app.to_ascii_uppercase();
        let instances = self.apps.get(&name)?;
        Some(json!({
            "application": application_value(&name, instances.values().map(Lease::value))
        }))
    }

    /// `GET /apps/APP/ID`, if registered.
    pub fn instance(&self, app: &str, id: &str) -> Option<Value> {
        let lease = self.lease(app, id)?;
        Some(json!({"instance": lease.value()}))
    }

    /// `GET /instances/ID`: the instance in whichever app holds it.
    pub fn instance_by_id(&self, id: &str) -> Option<Value> {
        let lease = self.apps.values().find_map(|i| i.get(id))?;
        Some(json!({"instance": lease.value()}))
    }

    /// `GET /vips/VIP` (`secure` = `/svips/SVIP`): the instances with that VIP.
    pub fn by_vip(&self, vip: &str, secure: bool) -> Value {
        let apps = self.apps.iter().filter_map(|(name, instances)| {
            let matching: Vec<_> = instances
                .values()
                .filter(|l| l.instance.has_vip(vip, secure))
                .map(Lease::value)
                .collect();
            (!matching.is_empty()).then(|| application_value(name, matching.into_iter()))
        });
        self.applications_doc(apps.collect())
    }

    /// Counts for `/metrics`.
    pub fn stats(&mut self, now: Millis) -> Stats {
        Stats {
            instances: self.instance_count() as u64,
            applications: self.apps.len() as u64,
            renews_last_min: self.renews_last_min(now),
            threshold: self.threshold(),
            self_preservation_active: self.self_preservation_active(now),
            version: self.seq,
        }
    }
}

/// The status an instance gets: its own DOWN/STARTING/UNKNOWN wins, then a
/// stored override, then its own status.
pub fn effective_status(own: Status, stored_override: Option<Status>) -> Status {
    match (own, stored_override) {
        (Status::Up | Status::OutOfService, Some(o)) if o != Status::Unknown => o,
        _ => own,
    }
}

fn application_value(name: &str, instances: impl Iterator<Item = Value>) -> Value {
    let mut app = Map::new();
    app.insert("name".into(), json!(name));
    app.insert("instance".into(), Value::Array(instances.collect()));
    Value::Object(app)
}

#[cfg(test)]
mod tests;
