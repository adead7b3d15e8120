//! How long after `PUT …/status?value=DOWN` a subscriber knows: through the
//! change feed, and through plain delta polling (what Eureka clients do) as the
//! peer. Prints p50, p99 and max for both, and their ratio.
//!
//! `cargo run --release -p lameduck-eureka --example feed_latency [ROUNDS]`
//!
//! Everything runs on 127.0.0.1: a registry with 1,000 instances, one writer
//! flipping one instance DOWN and UP, one subscriber. The polling peer uses a
//! 250 ms interval (Eureka's default is 30 s), so its rounds are fewer.

use std::time::{Duration, Instant};

use lameduck_drain::Phase;
use lameduck_eureka::client::{Changes, Client, Snapshot};
use lameduck_eureka::model::{Instance, Status};
use lameduck_registry::Config;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

const POLL_INTERVAL: Duration = Duration::from_millis(250);

fn instance(n: usize) -> Instance {
    Instance::from_body(&json!({"instance": {
        "instanceId": format!("web-{n}"), "hostName": "127.0.0.1", "app": "WEB",
        "ipAddr": "127.0.0.1", "port": {"$": 10_000 + n, "@enabled": "true"},
        "dataCenterInfo": {"name": "MyOwn"},
    }}))
    .expect("a valid instance")
}

/// Follows the registry and reports each status it sees for `web-0`.
async fn subscribe(
    client: Client,
    feed: bool,
    ready: oneshot::Sender<()>,
    seen: mpsc::UnboundedSender<(Status, Instant)>,
) {
    let mut copy = Snapshot::full(client.fetch_full().await.expect("full fetch"));
    let _ = ready.send(());
    loop {
        let delta = if feed {
            match client.changes(copy.version, Duration::from_secs(30)).await {
                Ok(Changes::Delta(d)) => d,
                Ok(Changes::Gone) | Err(_) => return,
            }
        } else {
            tokio::time::sleep(POLL_INTERVAL).await;
            match client.fetch_delta().await {
                Ok(d) => d,
                Err(_) => return,
            }
        };
        let at = Instant::now();
        let before = copy
            .instances
            .get(&("WEB".into(), "web-0".into()))
            .map(|i| i.status);
        copy.apply(&delta);
        let after = copy
            .instances
            .get(&("WEB".into(), "web-0".into()))
            .map(|i| i.status);
        if let Some(status) = after.filter(|s| Some(*s) != before) {
            let _ = seen.send((status, at));
        }
    }
}

/// Flips `web-0` `rounds` times and returns how long each flip took to be seen.
async fn measure(client: &Client, feed: bool, rounds: usize) -> Vec<Duration> {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (ready_tx, ready) = oneshot::channel();
    let task = tokio::spawn(subscribe(client.clone(), feed, ready_tx, tx));
    ready.await.expect("the subscriber took its full copy");
    let mut took = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let status = if round % 2 == 0 {
            Status::Down
        } else {
            Status::Up
        };
        let sent = Instant::now();
        client
            .set_status("WEB", "web-0", status)
            .await
            .expect("set status");
        loop {
            let (s, at) = seen.recv().await.expect("the subscriber stopped");
            if s == status {
                took.push(at - sent);
                break;
            }
        }
    }
    task.abort();
    took.sort();
    took
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, took: &[Duration]) {
    println!(
        "{name:<28} rounds {:>4}  p50 {:>9.3} ms  p99 {:>9.3} ms  max {:>9.3} ms",
        took.len(),
        pct(took, 0.5).as_secs_f64() * 1e3,
        pct(took, 0.99).as_secs_f64() * 1e3,
        took.last().unwrap().as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
    let (stop, phase) = watch::channel(Phase::Serving);
    let server = tokio::spawn(lameduck_registry::serve(
        Config::default(),
        listener,
        None,
        phase,
    ));
    let client = Client::new(&url, Duration::from_secs(5)).expect("client");
    for n in 0..1000 {
        client.register(&instance(n)).await.expect("register");
    }
    let feed = measure(&client, true, rounds).await;
    let poll = measure(&client, false, (rounds / 10).max(4)).await;
    println!("time from PUT …/status to the subscriber's copy, 1,000 instances, loopback");
    report("change feed", &feed);
    report(&format!("delta polling every {POLL_INTERVAL:?}"), &poll);
    println!(
        "p99 ratio polling / feed      {:.0}",
        pct(&poll, 0.99).as_secs_f64() / pct(&feed, 0.99).as_secs_f64()
    );
    stop.send_replace(Phase::Terminate);
    let _ = server.await;
}
