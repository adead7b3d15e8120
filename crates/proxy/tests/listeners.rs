//! The probe listener and the admin API, as a stranger in the cluster would
//! try them: the probe listener answers probes and refuses every change; the
//! admin API with a token refuses whoever does not send it.

mod support;

use support::{admin, admin_as, config, proxy_toml, upstream};

const CHANGE: &str = "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n\n\
                      [[route]]\nupstream = \"app\"\n\n[[upstream]]\nname = \"app\"\nendpoints = [\"127.0.0.1:9\"]\n";

#[tokio::test]
async fn the_probe_listener_serves_probes_and_refuses_every_change() {
    let app = upstream("a").await;
    // On every address, as in a pod (the kubelet probes the pod IP); the
    // test itself only talks to it over loopback.
    let toml = config(&[app.addr], "[probe]\nlisten = \"0.0.0.0:0\"\n");
    let p = proxy_toml(&toml).await;
    let bound = p.probe.expect("a probe listener");
    assert!(bound.ip().is_unspecified(), "bound on {bound}");
    let probe = std::net::SocketAddr::from(([127, 0, 0, 1], bound.port()));
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(admin(probe, "GET", path, "").await.status, 200, "{path}");
    }
    let put = admin(probe, "PUT", "/config", CHANGE).await;
    assert_eq!(put.status, 404, "{}", put.body);
    assert!(put.body.contains("admin.listen"), "{}", put.body);
    let put = admin(probe, "PUT", "/upstreams/app", r#"{"endpoints": []}"#).await;
    assert_eq!(put.status, 404, "{}", put.body);
    assert_eq!(admin(probe, "GET", "/config", "").await.status, 404);
    // Nothing changed: the proxy still routes to the app.
    let mut c = support::h1(p.addr).await;
    assert_eq!(c.get("/x").await.unwrap().body, "a /x");
}

#[tokio::test]
async fn with_a_token_the_admin_api_refuses_whoever_does_not_send_it() {
    let app = upstream("a").await;
    let dir = std::env::temp_dir().join(format!("ld-admin-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "s3cret\n").unwrap();
    let toml = config(&[app.addr], "").replace(
        "[admin]\nlisten = \"127.0.0.1:0\"\n",
        &format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = {:?}\n",
            file.display().to_string()
        ),
    );
    let p = proxy_toml(&toml).await;
    for token in [None, Some("wrong"), Some("s3cre")] {
        let r = admin_as(
            p.admin,
            token,
            "PUT",
            "/upstreams/app",
            r#"{"endpoints": []}"#,
        )
        .await;
        assert_eq!(r.status, 401, "token {token:?}: {}", r.body);
        assert_eq!(
            r.headers.get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        let r = admin_as(p.admin, token, "GET", "/config", "").await;
        assert_eq!(r.status, 401, "GET /config shows the config: {}", r.body);
    }
    assert_eq!(
        admin(p.admin, "GET", "/readyz", "").await.status,
        200,
        "probes stay open"
    );
    let mut c = support::h1(p.addr).await;
    assert_eq!(c.get("/x").await.unwrap().body, "a /x", "nothing changed");
    let r = admin_as(p.admin, Some("s3cret"), "GET", "/config", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_head_that_never_ends_on_the_admin_or_probe_listener_is_cut() {
    let app = upstream("a").await;
    let extra = "[proxy]\nheader_read_timeout = \"200ms\"\n[probe]\nlisten = \"127.0.0.1:0\"\n";
    let p = proxy_toml(&config(&[app.addr], extra)).await;
    for addr in [p.admin, p.probe.expect("probe")] {
        let mut c = support::Raw::connect(addr).await;
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
        assert!(c.closed().await, "{addr}: the slow head is cut");
    }
}
