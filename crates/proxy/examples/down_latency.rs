//! Measures how long an instance marked DOWN in Eureka keeps getting requests
//! through `lameduck proxy`: the time from `PUT …/status?value=DOWN` to the
//! last request the proxy sent it, under steady load, over many rounds.
//!
//! ```text
//! cargo run --release -p lameduck-proxy --example down_latency -- [feed|poll] [ROUNDS] [POLL_MS]
//! ```
//!
//! Everything runs in this process on 127.0.0.1: a `lameduck registry`, two
//! upstreams, the proxy with `discovery`, and 4 client loops. Bounded in time.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lameduck_eureka::{client::Client, model::Status};

type Last = Arc<Mutex<Option<Instant>>>;

/// An upstream that remembers when it last got a request.
async fn upstream() -> (SocketAddr, Last) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let last: Last = Arc::default();
    let l = Arc::clone(&last);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let l = Arc::clone(&l);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    *l.lock().unwrap() = Some(Instant::now());
                    async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, last)
}

fn instance(id: &str, addr: SocketAddr) -> lameduck_eureka::model::Instance {
    let v = serde_json::json!({
        "instanceId": id, "hostName": "127.0.0.1", "app": "SHOP", "ipAddr": "127.0.0.1", "status": "UP",
        "port": {"$": addr.port(), "@enabled": "true"},
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}
    });
    lameduck_eureka::model::Instance::from_value(&v).unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let feed = args.first().is_none_or(|m| m != "poll");
    let rounds: usize =
        args.get(1)
            .and_then(|r| r.parse().ok())
            .unwrap_or(if feed { 50 } else { 15 });
    let poll = Duration::from_millis(args.get(2).and_then(|p| p.parse().ok()).unwrap_or(1000));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let eureka_url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(lameduck_drain::Phase::Serving);
    tokio::spawn(lameduck_registry::serve(
        lameduck_registry::Config::default(),
        listener,
        None,
        stop_rx,
    ));
    let eureka = Client::new(&eureka_url, Duration::from_secs(2)).unwrap();
    let ((a, a_last), (b, _)) = (upstream().await, upstream().await);
    eureka.register(&instance("a", a)).await.unwrap();
    eureka.register(&instance("b", b)).await.unwrap();

    let toml = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n[[route]]\nupstream = \"shop\"\n\
         [[upstream]]\nname = \"shop\"\ndiscovery = {{ eureka = \"{eureka_url}\", app = \"SHOP\", interval = \"{}ms\", feed = {feed} }}\n",
        poll.as_millis()
    );
    let config = lameduck_proxy::Config::from_toml(&toml).unwrap();
    let bound = lameduck_proxy::bind(lameduck_proxy::Source::Inline(Box::new(config)))
        .await
        .unwrap();
    let proxy = bound.listener_addrs()[0].1;
    let (_control, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(bound.run(rx));
    for _ in 0..4 {
        tokio::spawn(load(proxy));
    }

    let mut samples = Vec::new();
    for round in 0..rounds {
        // Wait until A is in the pool and busy again.
        let since = Instant::now();
        while !a_last.lock().unwrap().is_some_and(|t| t > since) {
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "A never came back into the pool"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let down_at = Instant::now();
        eureka.set_status("SHOP", "a", Status::Down).await.unwrap();
        tokio::time::sleep(poll * 2 + Duration::from_millis(500)).await;
        let last = a_last.lock().unwrap().unwrap_or(down_at);
        samples.push(last.saturating_duration_since(down_at));
        eureka
            .delete_status_override("SHOP", "a", Some(Status::Up))
            .await
            .unwrap();
        eprint!("\rround {}/{rounds}", round + 1);
    }
    eprintln!();
    let _ = stop_tx.send(lameduck_drain::Phase::Terminate);
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "mode: {}",
        if feed {
            "change feed (lameduck registry)".to_string()
        } else {
            format!("delta polling every {poll:?}")
        }
    );
    println!(
        "PUT status=DOWN → last request to that instance, {} rounds: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(), ms(pct(0.5)), ms(pct(0.99)), ms(pct(1.0))
    );
    let goal = if feed {
        Duration::from_millis(100)
    } else {
        poll + Duration::from_millis(100)
    };
    let verdict = if pct(0.99) < goal { "PASS" } else { "FAIL" };
    println!("goal p99 < {:.0} ms: {verdict}", ms(goal));
}

/// One client loop: a keepalive connection sending GETs back to back.
async fn load(proxy: SocketAddr) {
    loop {
        let Ok(stream) = tokio::net::TcpStream::connect(proxy).await else {
            continue;
        };
        let Ok((mut send, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            continue;
        };
        tokio::spawn(conn);
        loop {
            let req = hyper::Request::get("/")
                .header("host", "bench")
                .body(Full::<Bytes>::default())
                .unwrap();
            let Ok(resp) = send.send_request(req).await else {
                break;
            };
            let _ = resp.into_body().collect().await;
        }
    }
}
