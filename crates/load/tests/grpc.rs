//! `--grpc-health`: calls `grpc.health.v1.Health/Check`; an answer counts as
//! success only when grpc-status is 0 and the service is SERVING.

mod support;

use lameduck_testkit::inject::{Action, InjectServer};
use support::{config, grpc_targets, load, outcomes};

#[tokio::test]
async fn health_checks_are_judged_by_grpc_status_and_serving() {
    let plan = |i: u64, path: &str| {
        if path != "/grpc.health.v1.Health/Check" {
            return Action::Close; // would show as closed_before_response
        }
        match i % 10 {
            2 => Action::GrpcStatus(14),
            4 => Action::NotServing,
            6 => Action::RefusedStream,
            8 => Action::Status(503),
            _ => Action::Ok,
        }
    };
    let server = InjectServer::start_h2(plan);
    let mut cfg = config(&[server.url("/ignored")], 100, 4);
    cfg.targets = grpc_targets(&[server.url("/ignored")], "web");
    let report = load(cfg).await;
    assert_eq!(
        outcomes(&report),
        [
            ("grpc_not_serving", 10),
            ("grpc_status_14", 10),
            ("refused_stream", 10),
            ("status_503", 10),
            ("success", 60)
        ]
    );
}
