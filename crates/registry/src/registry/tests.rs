//! One test per registry rule, on a clock the test moves by hand.

use serde_json::json;

use super::*;

const T0: Millis = 1_700_000_000_000;
const SEC: Millis = 1000;
const MIN: Millis = 60 * SEC;

fn instance(app: &str, id: &str) -> Instance {
    Instance::from_body(&json!({"instance": {
        "instanceId": id, "hostName": id, "app": app, "ipAddr": "127.0.0.1",
        "status": "UP", "port": {"$": 8080, "@enabled": "true"},
        "dataCenterInfo": {"@class": "x", "name": "MyOwn"},
        "leaseInfo": {"durationInSecs": 90},
    }}))
    .unwrap()
}

fn registry() -> Registry {
    Registry::new(Rules::default(), T0)
}

fn status_of(r: &Registry, app: &str, id: &str) -> String {
    r.instance(app, id).unwrap()["instance"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn delta_actions(r: &mut Registry, now: Millis) -> Vec<(String, String)> {
    let doc = r.delta(now);
    let mut out = Vec::new();
    for app in doc["applications"]["application"].as_array().unwrap() {
        for i in app["instance"].as_array().unwrap() {
            out.push((
                i["instanceId"].as_str().unwrap().to_string(),
                i["actionType"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

#[test]
fn register_then_read_back_under_the_upper_cased_app() {
    let mut r = registry();
    r.register("web", instance("web", "a"), T0).unwrap();
    assert_eq!(status_of(&r, "WEB", "a"), "UP");
    assert!(r.application("Web").is_some());
    assert!(r.instance_by_id("a").is_some());
    assert_eq!(r.hashcode(), "UP_1_");
}

#[test]
fn register_refuses_a_body_for_another_app_and_keeps_state() {
    let mut r = registry();
    r.register("WEB", instance("web", "a"), T0).unwrap();
    let err = r.register("API", instance("web", "b"), T0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mismatched app: the URL says API but the body says WEB"
    );
    assert!(r.instance("WEB", "a").is_some());
    assert!(r.instance("API", "b").is_none() && r.instance("WEB", "b").is_none());
}

#[test]
fn renew_answers_not_found_for_unknown_instances() {
    let mut r = registry();
    assert_eq!(r.renew("WEB", "a", None, T0), Renewal::NotFound);
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    assert_eq!(r.renew("WEB", "a", None, T0 + SEC), Renewal::Renewed);
}

#[test]
fn renew_answers_not_found_when_the_client_is_dirtier() {
    let mut r = registry();
    let mut i = instance("WEB", "a");
    i.last_dirty = T0;
    r.register("WEB", i, T0).unwrap();
    assert_eq!(r.renew("WEB", "a", Some(T0), T0), Renewal::Renewed);
    assert_eq!(r.renew("WEB", "a", Some(T0 - 1), T0), Renewal::Renewed);
    assert_eq!(r.renew("WEB", "a", Some(T0 + 1), T0), Renewal::ClientNewer);
}

#[test]
fn a_restarted_registry_makes_clients_register_again() {
    // In memory by design: after a restart the registry is empty, the next
    // heartbeat gets "not found", the client registers and all is back.
    let mut before = registry();
    before.register("WEB", instance("WEB", "a"), T0).unwrap();
    let mut after = Registry::new(Rules::default(), T0 + MIN);
    assert_eq!(
        after.renew("WEB", "a", Some(T0), T0 + MIN),
        Renewal::NotFound
    );
    after
        .register("WEB", instance("WEB", "a"), T0 + MIN)
        .unwrap();
    assert_eq!(
        after.renew("WEB", "a", None, T0 + MIN + SEC),
        Renewal::Renewed
    );
    assert_eq!(after.hashcode(), "UP_1_");
}

#[test]
fn an_override_wins_over_up_and_survives_re_registration() {
    let mut r = registry();
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    assert!(r.set_status("WEB", "a", Status::OutOfService, T0));
    assert_eq!(status_of(&r, "WEB", "a"), "OUT_OF_SERVICE");
    r.register("WEB", instance("WEB", "a"), T0 + SEC).unwrap();
    assert_eq!(status_of(&r, "WEB", "a"), "OUT_OF_SERVICE");
    assert_eq!(
        r.instance("WEB", "a").unwrap()["instance"]["overriddenStatus"],
        "OUT_OF_SERVICE"
    );
    assert_eq!(r.renew("WEB", "a", None, T0 + 2 * SEC), Renewal::Renewed);
    assert_eq!(status_of(&r, "WEB", "a"), "OUT_OF_SERVICE");
}

#[test]
fn the_instances_own_down_or_starting_wins_over_an_override() {
    let mut r = registry();
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    r.set_status("WEB", "a", Status::Up, T0);
    for own in [Status::Down, Status::Starting] {
        let mut i = instance("WEB", "a");
        i.status = own;
        r.register("WEB", i, T0 + SEC).unwrap();
        assert_eq!(status_of(&r, "WEB", "a"), own.as_str());
    }
}

#[test]
fn deleting_the_override_makes_the_client_re_register() {
    let mut r = registry();
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    r.set_status("WEB", "a", Status::Down, T0);
    assert!(r.delete_override("WEB", "a", Status::Unknown, T0));
    assert_eq!(r.renew("WEB", "a", None, T0 + SEC), Renewal::StatusUnknown);
    r.register("WEB", instance("WEB", "a"), T0 + SEC).unwrap();
    assert_eq!(status_of(&r, "WEB", "a"), "UP");
    // With a value, the status is set at once.
    r.set_status("WEB", "a", Status::Down, T0);
    r.delete_override("WEB", "a", Status::Up, T0 + 2 * SEC);
    assert_eq!(status_of(&r, "WEB", "a"), "UP");
}

#[test]
fn cancel_forgets_the_override() {
    let mut r = registry();
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    r.set_status("WEB", "a", Status::OutOfService, T0);
    assert!(r.cancel("WEB", "a", T0));
    assert!(!r.cancel("WEB", "a", T0));
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    assert_eq!(status_of(&r, "WEB", "a"), "UP");
}

#[test]
fn unknown_instances_are_not_found_for_every_write() {
    let mut r = registry();
    assert!(!r.set_status("WEB", "a", Status::Down, T0));
    assert!(!r.delete_override("WEB", "a", Status::Unknown, T0));
    assert!(!r.update_metadata("WEB", "a", &[], T0));
    assert!(!r.cancel("WEB", "a", T0));
}

#[test]
fn metadata_is_merged() {
    let mut r = registry();
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    let pairs = [("zone".to_string(), "b".to_string())];
    assert!(r.update_metadata("WEB", "a", &pairs, T0));
    assert_eq!(
        r.instance("WEB", "a").unwrap()["instance"]["metadata"]["zone"],
        "b"
    );
}

#[test]
fn delta_lists_the_latest_change_per_instance_for_three_minutes() {
    let mut r = registry();
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    r.register("WEB", instance("WEB", "b"), T0).unwrap();
    r.set_status("WEB", "a", Status::Down, T0 + SEC);
    r.cancel("WEB", "b", T0 + 2 * SEC);
    assert_eq!(
        delta_actions(&mut r, T0 + 2 * SEC),
        [
            ("a".into(), "MODIFIED".into()),
            ("b".into(), "DELETED".into())
        ]
    );
    let doc = r.delta(T0 + 2 * SEC);
    // The hashcode is over the full registry (only `a`, DOWN), not the delta.
    assert_eq!(doc["applications"]["apps__hashcode"], "DOWN_1_");
    assert_eq!(doc["applications"]["versions__delta"], (T0 + 4).to_string());
    assert_eq!(delta_actions(&mut r, T0 + 2 * SEC + 3 * MIN + 1), []);
}

#[test]
fn hashcode_counts_statuses_sorted_by_name() {
    let statuses = [Status::Up, Status::Down, Status::Up, Status::OutOfService];
    assert_eq!(
        hashcode(statuses.into_iter()),
        "DOWN_1_OUT_OF_SERVICE_1_UP_2_"
    );
    assert_eq!(hashcode(std::iter::empty()), "");
}

#[test]
fn the_change_feed_answers_from_a_version_or_says_gone() {
    let mut r = registry();
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    let v = r.version();
    let ChangesSince::Changes(none) = r.changes_since(v, T0) else {
        panic!("gone")
    };
    assert_eq!(none["applications"]["application"], json!([]));
    r.set_status("WEB", "a", Status::Down, T0 + SEC);
    let ChangesSince::Changes(one) = r.changes_since(v, T0 + SEC) else {
        panic!("gone")
    };
    assert_eq!(
        one["applications"]["application"][0]["instance"][0]["status"],
        "DOWN"
    );
    assert_eq!(r.changes_since(v + 100, T0 + SEC), ChangesSince::Gone);
    assert_eq!(r.changes_since(v, T0 + 4 * MIN), ChangesSince::Gone);
    // A version from an earlier run of the registry is older than any of this one.
    let mut restarted = Registry::new(Rules::default(), T0 + MIN);
    assert_eq!(restarted.changes_since(v, T0 + MIN), ChangesSince::Gone);
}

#[test]
fn leases_expire_and_are_evicted_without_self_preservation() {
    let rules = Rules {
        self_preservation: false,
        ..Rules::default()
    };
    let mut r = Registry::new(rules, T0);
    r.register("WEB", instance("WEB", "a"), T0).unwrap();
    assert_eq!(r.evict(T0 + 90 * SEC), Eviction::Evicted(vec![]));
    assert_eq!(
        r.evict(T0 + 90 * SEC + 1),
        Eviction::Evicted(vec!["WEB/a".into()])
    );
    assert_eq!(
        delta_actions(&mut r, T0 + 91 * SEC),
        [("a".into(), "DELETED".into())]
    );
}

#[test]
fn the_clients_lease_duration_is_honoured() {
    let rules = Rules {
        self_preservation: false,
        ..Rules::default()
    };
    let mut r = Registry::new(rules, T0);
    let mut i = instance("WEB", "a");
    i.lease.duration_secs = 5;
    r.register("WEB", i, T0).unwrap();
    assert_eq!(
        r.evict(T0 + 6 * SEC),
        Eviction::Evicted(vec!["WEB/a".into()])
    );
}

#[test]
fn self_preservation_stops_eviction_when_renewals_drop() {
    let mut r = registry();
    for n in 0..10 {
        r.register("WEB", instance("WEB", &format!("i{n}")), T0)
            .unwrap();
    }
    // 10 instances × 2 renewals/min × 0.85 = 17 expected.
    assert_eq!(r.threshold(), 17);
    // Nobody renews: after the lease, the registry protects itself.
    let later = T0 + 3 * MIN;
    assert_eq!(
        r.evict(later),
        Eviction::SelfPreservation {
            renews_last_min: 0,
            threshold: 17
        }
    );
    assert_eq!(r.stats(later).instances, 10);
}

#[test]
fn healthy_renewals_let_eviction_remove_the_dead_at_15_percent_per_pass() {
    let mut r = registry();
    for n in 0..20 {
        r.register("WEB", instance("WEB", &format!("i{n:02}")), T0)
            .unwrap();
    }
    let renew_alive = |r: &mut Registry, at: Millis| {
        for n in 5..20 {
            r.renew("WEB", &format!("i{n:02}"), None, at);
        }
    };
    // i00..i04 die; the 15 others renew twice a minute: 30 renewals a minute,
    // not above 20 expected × 2 × 0.85 = 34, so the registry protects itself.
    for k in 1..=6 {
        renew_alive(&mut r, T0 + k * 30 * SEC);
    }
    let now = T0 + 3 * MIN;
    assert!(matches!(r.evict(now), Eviction::SelfPreservation { .. }));
    // The operator cancels two dead ones (threshold 18 × 2 × 0.85 = 30) and the
    // others renew more often for a minute (45 > 30): eviction may run.
    r.cancel("WEB", "i00", now);
    r.cancel("WEB", "i01", now);
    renew_alive(&mut r, now + 10 * SEC);
    renew_alive(&mut r, now + 20 * SEC);
    let now = now + MIN;
    let Eviction::Evicted(gone) = r.evict(now) else {
        panic!("self-preservation still on: {:?}", r.stats(now));
    };
    // 18 instances: at most 18 − floor(18 × 0.85) = 3 per pass, oldest first.
    assert_eq!(gone, ["WEB/i02", "WEB/i03", "WEB/i04"]);
}

#[test]
fn effective_status_follows_eurekas_precedence() {
    use Status::*;
    assert_eq!(effective_status(Up, None), Up);
    assert_eq!(effective_status(Up, Some(OutOfService)), OutOfService);
    assert_eq!(effective_status(Up, Some(Unknown)), Up);
    assert_eq!(effective_status(Down, Some(Up)), Down);
    assert_eq!(effective_status(Starting, Some(Up)), Starting);
    assert_eq!(effective_status(OutOfService, Some(Up)), Up);
}
