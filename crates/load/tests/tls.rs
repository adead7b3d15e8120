//! `https://`: trusted with `--cacert`, refused (and counted as `tls_error`)
//! when the certificate is not trusted, accepted anyway with `--insecure`; and
//! failures inside TLS are classified like plain ones.

mod support;

use std::path::PathBuf;

use lameduck_load::TlsOptions;
use lameduck_testkit::inject::{Action, InjectServer, TestCert};
use support::{config, load, outcomes, targets_tls};

fn https(server: &InjectServer) -> String {
    format!("https://{}/", server.addr())
}

fn cacert_file(cert: &TestCert) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "ld-load-ca-{}-{}.pem",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    std::fs::write(&path, &cert.pem).unwrap();
    path
}

async fn load_tls(server: &InjectServer, n: u64, tls: TlsOptions) -> lameduck_load::Report {
    let urls = [https(server)];
    let mut cfg = config(&[server.url("/")], n, 2);
    cfg.targets = targets_tls(&urls, true, &tls).unwrap();
    load(cfg).await
}

#[tokio::test]
async fn a_trusted_ca_gives_successes_over_kept_alive_tls_connections() {
    let cert = TestCert::new();
    let server = InjectServer::start_tls(|_, _| Action::Ok, &cert);
    let ca = cacert_file(&cert);
    let tls = TlsOptions {
        insecure: false,
        cacert: Some(ca.clone()),
    };
    let report = load_tls(&server, 40, tls).await;
    assert_eq!(outcomes(&report), [("success", 40)]);
    assert_eq!(server.connections(), 2);
    std::fs::remove_file(ca).unwrap();
}

#[tokio::test]
async fn an_untrusted_certificate_is_tls_error_for_every_request() {
    let cert = TestCert::new();
    let server = InjectServer::start_tls(|_, _| Action::Ok, &cert);
    let other_ca = cacert_file(&TestCert::new());
    let tls = TlsOptions {
        insecure: false,
        cacert: Some(other_ca.clone()),
    };
    let report = load_tls(&server, 10, tls).await;
    assert_eq!(outcomes(&report), [("tls_error", 10)]);
    assert_eq!(server.requests(), 0, "nothing was sent");
    std::fs::remove_file(other_ca).unwrap();
}

#[tokio::test]
async fn insecure_accepts_any_certificate() {
    let cert = TestCert::new();
    let server = InjectServer::start_tls(|_, _| Action::Ok, &cert);
    let tls = TlsOptions {
        insecure: true,
        cacert: None,
    };
    let report = load_tls(&server, 20, tls).await;
    assert_eq!(outcomes(&report), [("success", 20)]);
}

#[tokio::test]
async fn failures_inside_tls_are_classified_like_plain_ones() {
    let cert = TestCert::new();
    let plan = |i: u64, _: &str| match i % 5 {
        1 => Action::Close,
        2 => Action::Truncate,
        3 => Action::Status(503),
        _ => Action::Ok,
    };
    let server = InjectServer::start_tls(plan, &cert);
    let tls = TlsOptions {
        insecure: true,
        cacert: None,
    };
    let report = load_tls(&server, 50, tls).await;
    assert_eq!(
        outcomes(&report),
        [
            ("closed_before_response", 10),
            ("status_503", 10),
            ("success", 20),
            ("truncated_body", 10)
        ]
    );
}

#[test]
fn an_unreadable_cacert_is_an_error_naming_the_file() {
    let tls = TlsOptions {
        insecure: false,
        cacert: Some("/nonexistent/ca.pem".into()),
    };
    let e = targets_tls(&["https://127.0.0.1:1/".into()], true, &tls).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}
