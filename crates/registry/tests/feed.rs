//! lameduck's change feed and the Rust client: a subscriber learns of a DOWN
//! in well under a second, a stale version is told to fetch again, and a copy
//! kept by deltas reconciles with the server's hashcode.

use std::time::{Duration, Instant};

use lameduck_eureka::client::{Changes, Client, Renewed, Snapshot};
use lameduck_eureka::model::Status;
use lameduck_registry::Config;

use crate::util::*;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn client(s: &Server) -> Client {
    Client::new(&s.url(), Duration::from_secs(5)).unwrap()
}

#[test]
fn a_waiting_subscriber_learns_of_a_down_at_once() {
    let s = Server::start(Config::default());
    register(s.addr, "WEB", "web-1", 8081);
    let c = client(&s);
    let full = block_on(c.fetch_full()).unwrap();
    let (url, url_admin) = (s.addr, s.admin);
    let (took, changes) = block_on(async {
        let waiting = tokio::spawn({
            let c = c.clone();
            async move {
                let start = Instant::now();
                let changes = c.changes(full.version, Duration::from_secs(20)).await;
                (start, changes)
            }
        });
        // Once the subscriber is waiting, change something.
        let down_at = tokio::task::spawn_blocking(move || {
            wait_for("the subscriber to wait", DEADLINE, || {
                (metric_at(url_admin, "feed_waiters") == 1).then_some(())
            });
            let down_at = Instant::now();
            http(
                url,
                "PUT",
                "/eureka/apps/WEB/web-1/status?value=DOWN",
                &[],
                b"",
            );
            down_at
        })
        .await
        .unwrap();
        let (_, changes) = waiting.await.unwrap();
        (down_at.elapsed(), changes.unwrap())
    });
    let Changes::Delta(delta) = changes else {
        panic!("gone")
    };
    assert_eq!(delta.instances.len(), 1);
    assert_eq!(delta.instances[0].status, Status::Down);
    assert_eq!(delta.version, full.version + 1);
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[test]
fn a_quiet_feed_answers_an_empty_delta_after_the_wait() {
    let s = Server::start(Config::default());
    register(s.addr, "WEB", "web-1", 8081);
    let c = client(&s);
    let start = Instant::now();
    let v = block_on(c.fetch_full()).unwrap().version;
    let Changes::Delta(d) = block_on(c.changes(v, Duration::from_millis(200))).unwrap() else {
        panic!("gone")
    };
    assert!(d.instances.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(d.version, v);
}

#[test]
fn a_version_from_another_run_is_told_to_fetch_again() {
    let s = Server::start(Config::default());
    let c = client(&s);
    assert_eq!(
        block_on(c.changes(42, Duration::ZERO)).unwrap(),
        Changes::Gone
    );
    let r = get(s.addr, "/eureka/lameduck/changes", &[]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("?after=VERSION"), "{}", r.text());
}

#[test]
fn the_client_registers_renews_and_reconciles_with_deltas() {
    let s = Server::start(Config::default());
    let c = client(&s);
    let body = instance_json("WEB", "web-1", 8081);
    let me = lameduck_eureka::model::Instance::from_body(&body).unwrap();
    block_on(async {
        c.register(&me).await.unwrap();
        assert_eq!(c.renew("WEB", "web-1", None).await.unwrap(), Renewed::Yes);
        assert_eq!(
            c.renew("WEB", "ghost", None).await.unwrap(),
            Renewed::RegisterAgain
        );
        let mut copy = Snapshot::full(c.fetch_full().await.unwrap());
        assert_eq!(copy.up("web").count(), 1);
        let mut other = me.clone();
        other.id = "web-2".into();
        other.port.port = 8082;
        c.register(&other).await.unwrap();
        c.set_status("WEB", "web-1", Status::Down).await.unwrap();
        assert!(
            copy.apply(&c.fetch_delta().await.unwrap()),
            "hashcode mismatch"
        );
        let up: Vec<_> = copy.up("WEB").map(|i| i.id.clone()).collect();
        assert_eq!(up, ["web-2"]);
        // A drain finds an instance by the pod's IP and port.
        let found = c.find_instance("web", "127.0.0.1", 8082).await.unwrap();
        assert_eq!(found.map(|i| i.id).as_deref(), Some("web-2"));
        assert!(c
            .find_instance("web", "127.0.0.1", 9)
            .await
            .unwrap()
            .is_none());
        assert!(c.fetch_app("nope").await.unwrap().is_none());
        c.delete_status_override("WEB", "web-1", Some(Status::Up))
            .await
            .unwrap();
        assert!(c.cancel("WEB", "web-2").await.unwrap());
        assert!(!c.cancel("WEB", "web-2").await.unwrap());
        assert!(copy.apply(&c.fetch_delta().await.unwrap()));
        let up: Vec<_> = copy.up("WEB").map(|i| i.id.clone()).collect();
        assert_eq!(up, ["web-1"]);
        assert!(c.set_status("WEB", "ghost", Status::Down).await.is_err());
    });
}

#[test]
fn the_client_sends_basic_auth_from_the_url() {
    let s = Server::start(Config {
        auth: lameduck_registry::BasicAuth::parse("u:p"),
        ..Config::default()
    });
    let good = Client::new(&format!("http://u:p@{}/eureka/", s.addr), DEADLINE).unwrap();
    assert!(block_on(good.fetch_full()).is_ok());
    let err = block_on(client(&s).fetch_full()).unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[test]
fn keep_registered_registers_renews_and_registers_again_after_a_404() {
    let s = Server::start(Config::default());
    let c = client(&s);
    let me = lameduck_eureka::model::Instance::from_body(&instance_json("SIDE", "side-1", 8081))
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = s.addr;
    let admin = s.admin;
    let sidecar = std::thread::spawn(move || {
        block_on(lameduck_eureka::client::keep_registered(
            &c,
            &me,
            Duration::from_millis(20),
            async {
                let _ = stop_rx.await;
            },
        ))
    });
    let present = || get_json(addr, "/eureka/apps/SIDE/side-1").status == 200;
    wait_for("the registration", DEADLINE, || present().then_some(()));
    wait_for("renewals", DEADLINE, || {
        (metric_at(admin, "renewals_total") >= 2).then_some(())
    });
    // Gone from the registry (as after a restart): the next renewal gets 404
    // and the sidecar registers again.
    assert_eq!(
        http(addr, "DELETE", "/eureka/apps/SIDE/side-1", &[], b"").status,
        200
    );
    wait_for("the registration again", DEADLINE, || {
        present().then_some(())
    });
    assert!(metric_at(admin, "renewals_not_found_total") >= 1);
    stop_tx.send(()).unwrap();
    sidecar.join().unwrap();
    assert!(present(), "keep_registered must not cancel by itself");
}

#[test]
fn a_wait_too_large_for_a_duration_is_capped_not_a_panic() {
    let s = Server::start(Config {
        max_wait: Duration::from_millis(100),
        ..Config::default()
    });
    let v = block_on(client(&s).fetch_full()).unwrap().version;
    for wait in ["1e300", "18446744073709551616", "1.8e19"] {
        let path = format!("/eureka/lameduck/changes?after={v}&wait={wait}");
        let r = get(s.addr, &path, &[("Accept", "application/json")]);
        assert_eq!(r.status, 200, "wait={wait}: {}", r.text());
    }
    for wait in ["-1", "NaN", "inf", "soon"] {
        let path = format!("/eureka/lameduck/changes?after={v}&wait={wait}");
        let r = get(s.addr, &path, &[]);
        assert_eq!(r.status, 400, "wait={wait}: {}", r.text());
    }
}

#[test]
fn keep_registered_with_a_zero_interval_is_no_panic() {
    let s = Server::start(Config::default());
    let c = client(&s);
    let me = lameduck_eureka::model::Instance::from_body(&instance_json("ZERO", "zero-1", 8083))
        .unwrap();
    let addr = s.addr;
    block_on(async {
        let present = async {
            while get_json_async(addr, "/eureka/apps/ZERO/zero-1").await != 200 {
                tokio::task::yield_now().await;
            }
        };
        let keep = lameduck_eureka::client::keep_registered(&c, &me, Duration::ZERO, present);
        tokio::time::timeout(DEADLINE, keep)
            .await
            .expect("registered in time");
    });
}

/// The status of a GET, from inside a runtime.
async fn get_json_async(addr: std::net::SocketAddr, path: &'static str) -> u16 {
    tokio::task::spawn_blocking(move || get_json(addr, path).status)
        .await
        .unwrap()
}
