//! The Eureka REST API, one rule per test: status codes, both wire formats and
//! their differently spelled fields, bad input, delta and hashcode, eviction,
//! self-preservation, gzip and basic auth.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use lameduck_registry::{registry::Rules, AuthScope, BasicAuth, Config, ManualClock};
use serde_json::json;

use crate::util::*;

fn server() -> Server {
    Server::start(Config::default())
}

#[test]
fn register_answers_204_and_the_instance_reads_back_in_both_formats() {
    let s = server();
    assert_eq!(register(s.addr, "web", "web-1", 8081).status, 204);
    // JSON when Accept asks for it, with JSON's spellings.
    let json = get_json(s.addr, "/eureka/apps/WEB/web-1");
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let i = &json.json()["instance"];
    assert_eq!(i["app"], "WEB");
    assert_eq!(i["port"], json!({"$": 8081, "@enabled": "true"}));
    assert_eq!(i["overriddenStatus"], "UNKNOWN");
    assert_eq!(
        i["dataCenterInfo"]["@class"],
        "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
    );
    assert_eq!(i["metadata"]["zone"], "a");
    // XML without an Accept header, with XML's spellings.
    let xml = get(s.addr, "/eureka/apps/WEB/web-1", &[]);
    assert_eq!(xml.header("content-type"), Some("application/xml"));
    let text = xml.text();
    for part in [
        "<overriddenstatus>UNKNOWN</overriddenstatus>",
        r#"<port enabled="true">8081</port>"#,
        r#"<dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo">"#,
        "<metadata><zone>a</zone></metadata>",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
}

#[test]
fn register_reads_xml_bodies_and_lenient_json() {
    let s = server();
    let xml = r#"<instance>
        <instanceId>x-1</instanceId><hostName>h</hostName><app>XML</app>
        <ipAddr>127.0.0.2</ipAddr><status>UP</status>
        <overriddenstatus>OUT_OF_SERVICE</overriddenstatus>
        <port enabled="true">9001</port><securePort enabled="false">443</securePort>
        <dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"><name>MyOwn</name></dataCenterInfo>
        <leaseInfo><durationInSecs>30</durationInSecs></leaseInfo>
        <metadata class="java.util.Collections$EmptyMap"/>
        </instance>"#;
    let r = http(
        s.addr,
        "POST",
        "/eureka/apps/XML",
        &[("Content-Type", "application/xml")],
        xml.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let i = get_json(s.addr, "/eureka/apps/XML/x-1").json();
    assert_eq!(i["instance"]["port"]["$"], 9001);
    assert_eq!(i["instance"]["leaseInfo"]["durationInSecs"], 30);
    // The override sent at registration is stored and applied.
    assert_eq!(i["instance"]["status"], "OUT_OF_SERVICE");
    // Lenient JSON: a bare port number, booleans, the XML spelling of the override.
    let body = json!({"instance": {"instanceId": "j-1", "hostName": "h", "app": "JSON",
        "ipAddr": "127.0.0.3", "port": "9002", "securePort": {"$": 443, "@enabled": false},
        "overriddenstatus": "UNKNOWN", "dataCenterInfo": {"name": "MyOwn"}}});
    let r = http(
        s.addr,
        "POST",
        "/eureka/v2/apps/json",
        &[],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let i = get_json(s.addr, "/eureka/v2/apps/JSON/j-1").json();
    assert_eq!(
        i["instance"]["port"],
        json!({"$": 9002, "@enabled": "true"})
    );
}

#[test]
fn bad_input_gets_400_with_a_reason_and_changes_nothing() {
    let s = server();
    register(s.addr, "WEB", "web-1", 8081);
    let before = get_json(s.addr, "/eureka/apps").json();
    let valid = instance_json("WEB", "web-2", 8082);
    let without = |field: &str| {
        let mut v = valid.clone();
        v["instance"].as_object_mut().unwrap().remove(field);
        v.to_string()
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "{\"instance\": ".into(),
            "application/json",
            "malformed JSON body",
        ),
        (
            "<instance><app>WEB</instance>".into(),
            "application/xml",
            "malformed XML body",
        ),
        (without("hostName"), "application/json", "missing hostName"),
        (without("ipAddr"), "application/json", "missing ipAddr"),
        (without("app"), "application/json", "missing app"),
        (
            without("dataCenterInfo"),
            "application/json",
            "missing dataCenterInfo",
        ),
        (
            instance_json("API", "web-2", 8082).to_string(),
            "application/json",
            "mismatched app: the URL says WEB but the body says API",
        ),
        (
            "[1, 2]".into(),
            "application/json",
            "the body must be an instance object",
        ),
    ];
    for (body, ct, reason) in cases {
        let r = http(
            s.addr,
            "POST",
            "/eureka/apps/WEB",
            &[("Content-Type", ct)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 400, "{body}");
        assert!(r.text().contains(reason), "{:?} lacks {reason:?}", r.text());
    }
    let mut no_id = valid.clone();
    let obj = no_id["instance"].as_object_mut().unwrap();
    obj.remove("instanceId");
    obj.remove("hostName");
    let r = http(
        s.addr,
        "POST",
        "/eureka/apps/WEB",
        &[],
        no_id.to_string().as_bytes(),
    );
    assert!(r.text().starts_with("missing instanceId"), "{}", r.text());
    assert_eq!(get_json(s.addr, "/eureka/apps").json(), before);
    assert_eq!(s.metric("bad_requests_total"), 9);
}

#[test]
fn renew_is_200_or_404_so_the_client_registers_again() {
    let s = server();
    register(s.addr, "WEB", "web-1", 8081);
    let renew = |q: &str| {
        http(
            s.addr,
            "PUT",
            &format!("/eureka/apps/WEB/web-1{q}"),
            &[],
            b"",
        )
    };
    assert_eq!(renew("").status, 200);
    assert_eq!(
        renew("?status=UP&lastDirtyTimestamp=1700000000000").status,
        200
    );
    assert_eq!(
        renew("?status=UP&lastDirtyTimestamp=1600000000000").status,
        200
    );
    // The client changed its record after we last saw it.
    let newer = renew("?status=UP&lastDirtyTimestamp=1800000000000");
    assert_eq!(newer.status, 404);
    assert!(newer.text().contains("register again"), "{}", newer.text());
    assert_eq!(renew("?lastDirtyTimestamp=soon").status, 400);
    let unknown = http(s.addr, "PUT", "/eureka/apps/WEB/nobody", &[], b"");
    assert_eq!(unknown.status, 404);
}

#[test]
fn status_override_put_and_delete() {
    let s = server();
    register(s.addr, "WEB", "web-1", 8081);
    let put = |q: &str| {
        http(
            s.addr,
            "PUT",
            &format!("/eureka/apps/WEB/web-1/status{q}"),
            &[],
            b"",
        )
    };
    assert_eq!(put("?value=DOWN").status, 200);
    let i = get_json(s.addr, "/eureka/apps/WEB/web-1").json();
    assert_eq!(
        (
            i["instance"]["status"].as_str(),
            i["instance"]["overriddenStatus"].as_str()
        ),
        (Some("DOWN"), Some("DOWN"))
    );
    assert_eq!(put("?value=SIDEWAYS").status, 400);
    assert_eq!(put("").status, 400);
    let unknown = http(
        s.addr,
        "PUT",
        "/eureka/apps/WEB/nobody/status?value=DOWN",
        &[],
        b"",
    );
    assert_eq!(unknown.status, 404);
    // Deleting the override hands the status back to the client: its next
    // renewal is told to register again.
    let del = http(s.addr, "DELETE", "/eureka/apps/WEB/web-1/status", &[], b"");
    assert_eq!(del.status, 200);
    assert_eq!(
        http(s.addr, "PUT", "/eureka/apps/WEB/web-1", &[], b"").status,
        404
    );
    assert_eq!(register(s.addr, "WEB", "web-1", 8081).status, 204);
    let i = get_json(s.addr, "/eureka/apps/WEB/web-1").json();
    assert_eq!(i["instance"]["status"], "UP");
    let del = http(s.addr, "DELETE", "/eureka/apps/WEB/nobody/status", &[], b"");
    assert_eq!(del.status, 404);
}

#[test]
fn metadata_and_cancel() {
    let s = server();
    register(s.addr, "WEB", "web-1", 8081);
    let md = http(
        s.addr,
        "PUT",
        "/eureka/apps/WEB/web-1/metadata?zone=b&weight=3",
        &[],
        b"",
    );
    assert_eq!(md.status, 200);
    let i = get_json(s.addr, "/eureka/apps/WEB/web-1").json();
    assert_eq!(
        i["instance"]["metadata"],
        json!({"weight": "3", "zone": "b"})
    );
    let unknown = http(
        s.addr,
        "PUT",
        "/eureka/apps/WEB/nobody/metadata?a=b",
        &[],
        b"",
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(
        http(s.addr, "DELETE", "/eureka/apps/WEB/web-1", &[], b"").status,
        200
    );
    assert_eq!(
        http(s.addr, "DELETE", "/eureka/apps/WEB/web-1", &[], b"").status,
        404
    );
    assert_eq!(get_json(s.addr, "/eureka/apps/WEB/web-1").status, 404);
}

#[test]
fn every_read_endpoint_under_both_prefixes() {
    let s = server();
    register(s.addr, "WEB", "web-1", 8081);
    register(s.addr, "API", "api-1", 8082);
    for prefix in ["/eureka", "/eureka/v2"] {
        let ids = |path: &str| listed(&get_json(s.addr, &format!("{prefix}{path}")).json());
        assert_eq!(ids("/apps").len(), 2);
        assert_eq!(ids("/vips/web"), [("web-1".into(), "UP".into())]);
        assert_eq!(ids("/svips/api-secure"), [("api-1".into(), "UP".into())]);
        assert_eq!(ids("/vips/nothing"), []);
        let app = get_json(s.addr, &format!("{prefix}/apps/web")).json();
        assert_eq!(app["application"]["name"], "WEB");
        let by_id = get_json(s.addr, &format!("{prefix}/instances/api-1")).json();
        assert_eq!(by_id["instance"]["app"], "API");
        assert_eq!(get_json(s.addr, &format!("{prefix}/apps/NOPE")).status, 404);
        assert_eq!(
            get_json(s.addr, &format!("{prefix}/instances/nope")).status,
            404
        );
    }
    let wrong = http(s.addr, "POST", "/eureka/apps", &[], b"");
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("GET")));
    assert_eq!(get(s.addr, "/elsewhere", &[]).status, 404);
}

#[test]
fn delta_carries_actions_and_the_full_registrys_hashcode() {
    let s = server();
    let version_of = |doc: &serde_json::Value| -> u64 {
        doc["applications"]["versions__delta"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let v0 = version_of(&get_json(s.addr, "/eureka/apps").json());
    register(s.addr, "WEB", "web-1", 8081);
    register(s.addr, "WEB", "web-2", 8082);
    register(s.addr, "WEB", "web-3", 8083);
    http(
        s.addr,
        "PUT",
        "/eureka/apps/WEB/web-2/status?value=DOWN",
        &[],
        b"",
    );
    http(s.addr, "DELETE", "/eureka/apps/WEB/web-3", &[], b"");
    let delta = get_json(s.addr, "/eureka/apps/delta").json();
    let actions: Vec<_> = delta["applications"]["application"][0]["instance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instanceId"].as_str().unwrap(),
                i["actionType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("web-1", "ADDED"),
            ("web-2", "MODIFIED"),
            ("web-3", "DELETED")
        ]
    );
    assert_eq!(delta["applications"]["apps__hashcode"], "DOWN_1_UP_1_");
    // Five changes, five versions; the full registry is at the same version.
    let version = version_of(&delta);
    assert_eq!(version, v0 + 5);
    let full = get_json(s.addr, "/eureka/apps").json();
    assert_eq!(version_of(&full), version);
    assert_eq!(full["applications"]["apps__hashcode"], "DOWN_1_UP_1_");
    // XML spells the same keys the same way.
    let xml = get(s.addr, "/eureka/apps/delta", &[]).text();
    assert!(
        xml.contains(
            &format!("<versions__delta>{version}</versions__delta><apps__hashcode>DOWN_1_UP_1_</apps__hashcode>")
        ),
        "{xml}"
    );
    assert!(xml.contains("<actionType>DELETED</actionType>"), "{xml}");
}

#[test]
fn list_endpoints_are_gzipped_when_asked() {
    let s = server();
    register(s.addr, "WEB", "web-1", 8081);
    let r = get(
        s.addr,
        "/eureka/apps",
        &[("Accept-Encoding", "gzip, deflate")],
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut xml = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut xml)
        .unwrap();
    assert!(xml.contains("<instanceId>web-1</instanceId>"), "{xml}");
    let plain = get(s.addr, "/eureka/apps", &[]);
    assert_eq!(plain.header("content-encoding"), None);
}

#[test]
fn basic_auth_guards_the_api_but_not_the_probes() {
    let s = Server::start(Config {
        auth: BasicAuth::parse("eureka:s3cret"),
        ..Config::default()
    });
    let r = get(s.addr, "/eureka/apps", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"lameduck registry\"")
    );
    // base64("eureka:wrong") and base64("eureka:s3cret")
    assert_eq!(
        get(
            s.addr,
            "/eureka/apps",
            &[("Authorization", "Basic ZXVyZWthOndyb25n")]
        )
        .status,
        401
    );
    assert_eq!(
        get(
            s.addr,
            "/eureka/apps",
            &[("Authorization", "Basic ZXVyZWthOnMzY3JldA==")]
        )
        .status,
        200
    );
    assert_eq!(get(s.admin, "/readyz", &[]).status, 200);
}

#[test]
fn basic_auth_on_writes_only_leaves_reads_open_and_guards_every_write() {
    let s = Server::start(Config {
        auth: BasicAuth::parse("eureka:s3cret"),
        auth_scope: AuthScope::Writes,
        ..Config::default()
    });
    let good = [("Authorization", "Basic ZXVyZWthOnMzY3JldA==")];
    let json = [("Content-Type", "application/json")];
    let body = instance_json("web", "web-1", 8081).to_string();
    // A write without credentials is refused and changes nothing.
    let anonymous = http(s.addr, "POST", "/eureka/apps/web", &json, body.as_bytes());
    assert_eq!(anonymous.status, 401);
    assert_eq!(get_json(s.addr, "/eureka/apps/WEB").status, 404);
    let creds = [json[0], good[0]];
    assert_eq!(
        http(s.addr, "POST", "/eureka/apps/web", &creds, body.as_bytes()).status,
        204
    );
    // Reads need nothing.
    for path in [
        "/eureka/apps",
        "/eureka/apps/WEB",
        "/eureka/apps/WEB/web-1",
        "/eureka/apps/delta",
    ] {
        assert_eq!(get(s.addr, path, &[]).status, 200, "{path}");
    }
    // Every other write is refused without them: DOWN, the override's
    // removal, metadata, renew, cancel.
    for (method, path) in [
        ("PUT", "/eureka/apps/WEB/web-1/status?value=DOWN"),
        ("DELETE", "/eureka/apps/WEB/web-1/status"),
        ("PUT", "/eureka/apps/WEB/web-1/metadata?k=v"),
        ("PUT", "/eureka/apps/WEB/web-1"),
        ("DELETE", "/eureka/apps/WEB/web-1"),
    ] {
        let r = http(s.addr, method, path, &[], b"");
        assert_eq!(r.status, 401, "{method} {path}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"lameduck registry\"")
        );
    }
    let still = get_json(s.addr, "/eureka/apps/WEB/web-1");
    assert_eq!(still.json()["instance"]["status"], "UP", "nothing changed");
    assert_eq!(
        http(s.addr, "DELETE", "/eureka/apps/WEB/web-1", &good, b"").status,
        200
    );
    assert_eq!(get_json(s.addr, "/eureka/apps/WEB/web-1").status, 404);
}

fn manual(self_preservation: bool) -> (Server, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000);
    let s = Server::start(Config {
        rules: Rules {
            self_preservation,
            ..Rules::default()
        },
        eviction_interval: Duration::from_millis(20),
        clock: Arc::new(clock.clone()),
        ..Config::default()
    });
    (s, clock)
}

#[test]
fn an_expired_lease_is_evicted_and_shows_as_deleted() {
    let (s, clock) = manual(false);
    register(s.addr, "WEB", "web-1", 8081);
    clock.advance(Duration::from_secs(89));
    let passes = s.metric("eviction_passes_total");
    wait_for("two eviction passes", DEADLINE, || {
        (s.metric("eviction_passes_total") >= passes + 2).then_some(())
    });
    assert_eq!(
        get_json(s.addr, "/eureka/apps/WEB/web-1").status,
        200,
        "evicted early"
    );
    clock.advance(Duration::from_secs(2));
    wait_for("the eviction", DEADLINE, || {
        (get_json(s.addr, "/eureka/apps/WEB/web-1").status == 404).then_some(())
    });
    let delta = get_json(s.addr, "/eureka/apps/delta").json();
    let last = delta["applications"]["application"][0]["instance"][0].clone();
    assert_eq!(last["actionType"], "DELETED");
    assert_eq!(s.metric("evictions_total"), 1);
}

#[test]
fn self_preservation_keeps_instances_whose_renewals_stopped() {
    let (s, clock) = manual(true);
    for n in 0..4 {
        register(s.addr, "WEB", &format!("web-{n}"), 8081 + n);
    }
    clock.advance(Duration::from_secs(300));
    let passes = s.metric("eviction_passes_total");
    wait_for("two eviction passes", DEADLINE, || {
        (s.metric("eviction_passes_total") >= passes + 2).then_some(())
    });
    assert_eq!(s.metric("self_preservation_active"), 1);
    assert_eq!(s.metric("self_preservation_threshold"), 6);
    assert_eq!(listed(&get_json(s.addr, "/eureka/apps").json()).len(), 4);
    assert_eq!(s.metric("evictions_total"), 0);
}

#[test]
fn a_restarted_registry_answers_404_and_takes_the_registration_again() {
    let first = server();
    let addr = first.addr;
    register(addr, "WEB", "web-1", 8081);
    first.stop();
    let second = Server::start_on(addr, Config::default());
    let renew = http(
        addr,
        "PUT",
        "/eureka/apps/WEB/web-1?status=UP&lastDirtyTimestamp=1700000000000",
        &[],
        b"",
    );
    assert_eq!(renew.status, 404);
    assert_eq!(register(addr, "WEB", "web-1", 8081).status, 204);
    assert_eq!(
        http(addr, "PUT", "/eureka/apps/WEB/web-1", &[], b"").status,
        200
    );
    drop(second);
}

#[test]
fn a_lease_too_long_to_count_in_milliseconds_registers_and_never_expires() {
    let (s, clock) = manual(false);
    let mut body = instance_json("WEB", "web-1", 8081);
    body["instance"]["leaseInfo"]["durationInSecs"] = json!(u64::MAX);
    let r = http(
        s.addr,
        "POST",
        "/eureka/apps/WEB",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    clock.advance(Duration::from_secs(3600));
    let passes = s.metric("eviction_passes_total");
    wait_for("two eviction passes", DEADLINE, || {
        (s.metric("eviction_passes_total") >= passes + 2).then_some(())
    });
    assert_eq!(get_json(s.addr, "/eureka/apps/WEB/web-1").status, 200);
    assert_eq!(s.metric("evictions_total"), 0);
}

#[test]
fn a_head_that_never_ends_is_cut_at_header_read_timeout() {
    use std::io::Write;
    let s = Server::start(Config {
        header_read_timeout: Duration::from_millis(200),
        ..Config::default()
    });
    for addr in [s.addr, s.admin] {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        c.write_all(b"GET /eureka/apps HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let closed = c.read_to_end(&mut rest).is_ok();
        assert!(closed, "{addr}: still open after {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(5), "{addr}");
    }
}
