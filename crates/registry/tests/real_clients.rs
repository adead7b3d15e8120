//! The real Eureka clients, unmodified, against the registry: py-eureka-client
//! (JSON register, XML reads, no Accept header) and eureka-js-client (JSON,
//! `/eureka/v2/`, counts only 204 as registered and 200 as cancelled). Each
//! registers, heartbeats, fetches the full registry then deltas, is marked
//! DOWN, and cancels; and each recovers by itself from a registry restart.
//!
//! The clients are installed by `.ci/setup-eureka-clients.sh`, run on first use.

use lameduck_registry::Config;

use crate::util::*;

/// True when the client's own copy holds `id` with `status`.
fn sees(view: &[(String, String, String)], id: &str, status: &str) -> bool {
    view.iter().any(|(_, i, s)| i == id && s == status)
}

fn instance_on_server(s: &Server, app: &str, id: &str) -> Option<serde_json::Value> {
    let r = get_json(s.addr, &format!("/eureka/apps/{app}/{id}"));
    (r.status == 200).then(|| r.json()["instance"].clone())
}

/// Register, heartbeat, full fetch, delta fetch: the part both clients share.
fn registers_heartbeats_and_fetches(s: &Server, client: &mut RealClient, app: &str, id: &str) {
    let me = wait_for("the client to register", DEADLINE, || {
        instance_on_server(s, app, id)
    });
    assert_eq!(me["status"], "UP");
    let registered = me["leaseInfo"]["registrationTimestamp"].as_u64().unwrap();
    wait_for("a heartbeat", DEADLINE, || {
        let i = instance_on_server(s, app, id)?;
        (i["leaseInfo"]["lastRenewalTimestamp"].as_u64()? > registered).then_some(())
    });
    // BEFORE was registered before the client started, so its first (full)
    // fetch has it; AFTER comes later, so only a delta can bring it.
    wait_for("the full fetch", DEADLINE, || {
        sees(&client.view(), "before-1", "UP").then_some(())
    });
    assert_eq!(register(s.addr, "AFTER", "after-1", 9102).status, 204);
    wait_for("the delta fetch", DEADLINE, || {
        sees(&client.view(), "after-1", "UP").then_some(())
    });
    assert!(s.metric("full_fetches_total") >= 1);
    assert!(s.metric("delta_fetches_total") >= 1);
    assert_eq!(s.metric("bad_requests_total"), 0);
}

fn cancels_on_stop(s: &Server, client: &mut RealClient, app: &str, id: &str) {
    let answer = client.ask("stop");
    assert!(answer["error"].is_null(), "{answer}");
    assert!(client.wait_exit(), "the client script failed");
    assert!(instance_on_server(s, app, id).is_none(), "still registered");
    assert!(s.metric("cancels_total") >= 1);
}

#[test]
fn py_eureka_client_registers_heartbeats_fetches_goes_down_and_cancels() {
    let s = Server::start(Config::default());
    register(s.addr, "BEFORE", "before-1", 9101);
    let mut py = RealClient::python(&s.url(), "PYAPP", "py-1");
    registers_heartbeats_and_fetches(&s, &mut py, "PYAPP", "py-1");
    // The client reports itself DOWN; the server and, through a delta, the
    // client's own copy agree.
    py.ask("down");
    wait_for("DOWN on the server", DEADLINE, || {
        (instance_on_server(&s, "PYAPP", "py-1")?["status"] == "DOWN").then_some(())
    });
    wait_for("DOWN in the client's copy", DEADLINE, || {
        sees(&py.view(), "py-1", "DOWN").then_some(())
    });
    cancels_on_stop(&s, &mut py, "PYAPP", "py-1");
}

#[test]
fn eureka_js_client_registers_heartbeats_fetches_sees_down_and_cancels() {
    let s = Server::start(Config::default());
    register(s.addr, "BEFORE", "before-1", 9101);
    let mut js = RealClient::node(&s.url(), "JSAPP", "js-1");
    registers_heartbeats_and_fetches(&s, &mut js, "JSAPP", "js-1");
    // An operator (or lameduck's drain) marks another instance DOWN; the
    // client's copy learns it through a delta.
    let down = http(
        s.addr,
        "PUT",
        "/eureka/v2/apps/AFTER/after-1/status?value=DOWN",
        &[],
        b"",
    );
    assert_eq!(down.status, 200);
    wait_for("DOWN in the client's copy", DEADLINE, || {
        (!sees(&js.view(), "after-1", "UP")).then_some(())
    });
    cancels_on_stop(&s, &mut js, "JSAPP", "js-1");
}

/// Stops the registry under a running client and starts an empty one on the
/// same port: the client's next heartbeat gets 404 and it registers again.
fn recovers_from_a_restart(start: impl FnOnce(&str) -> RealClient, app: &str, id: &str) {
    let first = Server::start(Config::default());
    let addr = first.addr;
    let _client = start(&first.url());
    wait_for("the first registration", DEADLINE, || {
        instance_on_server(&first, app, id)
    });
    first.stop();
    let second = Server::start_on(addr, Config::default());
    wait_for("the registration after the restart", DEADLINE, || {
        instance_on_server(&second, app, id)
    });
    assert!(second.metric("renewals_not_found_total") >= 1);
}

#[test]
fn py_eureka_client_registers_again_after_a_registry_restart() {
    recovers_from_a_restart(
        |url| RealClient::python(url, "PYAPP", "py-2"),
        "PYAPP",
        "py-2",
    );
}

#[test]
fn eureka_js_client_registers_again_after_a_registry_restart() {
    recovers_from_a_restart(
        |url| RealClient::node(url, "JSAPP", "js-2"),
        "JSAPP",
        "js-2",
    );
}

#[test]
fn py_eureka_client_works_with_basic_auth_in_the_url() {
    let s = Server::start(Config {
        auth: lameduck_registry::BasicAuth::parse("eureka:s3cret"),
        ..Config::default()
    });
    let url = format!("http://eureka:s3cret@{}/eureka/", s.addr);
    let mut py = RealClient::python(&url, "PYAPP", "py-3");
    wait_for("the client's copy to hold itself", DEADLINE, || {
        sees(&py.view(), "py-3", "UP").then_some(())
    });
    // Without the password the registry refuses.
    assert_eq!(get(s.addr, "/eureka/apps", &[]).status, 401);
}
