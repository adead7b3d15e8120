//! `lameduck registry`: flags → checked config → `lameduck_registry`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use clap::Args;
use lameduck_drain::{format_duration, parse_duration, LameDuckWait, Plan, Timing};
use lameduck_registry::{registry::Rules, AuthScope, BasicAuth, Config, Stopped, SystemClock};

/// Run a Eureka-compatible service registry (in memory), with an instant change feed.
///
/// Serves Netflix Eureka's REST API under /eureka/apps… and /eureka/v2/apps…:
/// register, renew, status override, metadata, cancel, full and delta fetch, and
/// lookups by app, instance, VIP and secure VIP; JSON when Accept asks for it, XML
/// otherwise; gzip on lists when asked. Spring Cloud Netflix, py-eureka-client and
/// eureka-js-client work unchanged. Leases, eviction, self-preservation, the
/// 3-minute delta and the reconcile hashcode follow Eureka's rules.
///
/// It keeps no response cache: a change is visible in the next response. Its own
/// extension, GET /eureka/lameduck/changes?after=VERSION&wait=SECONDS, answers as
/// soon as anything changes after VERSION (the versions__delta of the last fetch).
///
/// State is in memory, as in Eureka: after a restart every client's next
/// heartbeat gets 404 and the client registers again. There is no peer
/// replication.
///
/// Stopping follows lameduck's drain model: SIGTERM turns /readyz to 503 and adds
/// Connection: close to every response for --drain-delay, then closes the
/// listener and lets in-flight requests finish; SIGINT/SIGQUIT skip the first
/// step; at --grace minus --margin, connections left are dropped.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: lameduck registry --listen 0.0.0.0:8761 --admin 0.0.0.0:9090\n\
    Spring Cloud: eureka.client.service-url.defaultZone=http://HOST:8761/eureka/"
)]
pub(crate) struct RegistryArgs {
    /// Address of the Eureka API.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8761",
        env = "LAMEDUCK_REGISTRY_LISTEN"
    )]
    listen: SocketAddr,

    /// Serve /readyz, /healthz and /metrics (Prometheus) on this address.
    #[arg(long, value_name = "ADDR", env = "LAMEDUCK_ADMIN")]
    admin: Option<SocketAddr>,

    /// Require HTTP basic auth on the API, as Spring Security setups do (clients
    /// put it in the URL: http://USER:PASSWORD@HOST:8761/eureka/).
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "LAMEDUCK_REGISTRY_AUTH",
        hide_env_values = true,
        value_parser = parse_auth
    )]
    auth: Option<BasicAuth>,

    /// Which endpoints --auth guards: `all`, or `writes` (register, renew,
    /// status DOWN and overrides, metadata, cancel) with reads left open, so
    /// any client may discover but only holders of the credentials change
    /// the registry.
    #[arg(
        long,
        value_name = "SCOPE",
        default_value = "all",
        env = "LAMEDUCK_REGISTRY_AUTH_SCOPE",
        value_parser = parse_auth_scope,
        requires = "auth"
    )]
    auth_scope: AuthScope,

    /// Never let self-preservation stop eviction (Eureka's
    /// enable-self-preservation=false). Useful in development, where one
    /// stopped instance is enough to trigger it.
    #[arg(long, help_heading = "Eureka rules")]
    no_self_preservation: bool,

    /// Share of expected renewals (each instance twice a minute) under which
    /// self-preservation stops eviction.
    #[arg(
        long,
        value_name = "RATIO",
        default_value_t = 0.85,
        help_heading = "Eureka rules"
    )]
    renewal_percent_threshold: f64,

    /// The renewal interval clients are expected to use, for the
    /// self-preservation threshold.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, help_heading = "Eureka rules")]
    expected_renewal_interval: Duration,

    /// How often expired leases are evicted.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, help_heading = "Eureka rules")]
    eviction_interval: Duration,

    /// How long a change stays in /apps/delta (and in the change feed).
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = parse_duration, help_heading = "Eureka rules")]
    delta_retention: Duration,

    /// The longest a change-feed request waits for a change before it answers
    /// with an empty delta.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, help_heading = "Eureka rules")]
    max_wait: Duration,

    /// The whole drain budget, counted from the first stop signal. Set it to the
    /// pod's terminationGracePeriodSeconds.
    #[arg(long, value_name = "DURATION", env = "LAMEDUCK_GRACE_SECONDS", default_value = "30s", value_parser = parse_duration, help_heading = "Drain")]
    grace: Duration,

    /// Connections still open at grace − margin are dropped.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, help_heading = "Drain")]
    margin: Duration,

    /// How long to keep serving after SIGTERM with readiness 503, so the
    /// Service's endpoints catch up before the listener closes. Must fit in
    /// grace − margin − 1s. With --until-quiet: the longest the quiet wait
    /// may take.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Drain")]
    drain_delay: Option<Duration>,

    /// End the lame-duck phase as soon as no API request (register, renew,
    /// fetch, …) has arrived for this long, within its budget share.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Drain")]
    until_quiet: Option<Duration>,
}

fn parse_auth_scope(s: &str) -> Result<AuthScope, String> {
    match s {
        "all" => Ok(AuthScope::All),
        "writes" => Ok(AuthScope::Writes),
        _ => Err("expected `all` or `writes`".to_string()),
    }
}

fn parse_auth(s: &str) -> Result<BasicAuth, String> {
    BasicAuth::parse(s).ok_or_else(|| "expected USER:PASSWORD".to_string())
}

impl RegistryArgs {
    fn config(&self) -> Result<(Config, Plan), String> {
        if !(0.0..=1.0).contains(&self.renewal_percent_threshold) {
            return Err("--renewal-percent-threshold must be between 0 and 1".into());
        }
        let positive = [
            ("--eviction-interval", self.eviction_interval),
            (
                "--expected-renewal-interval",
                self.expected_renewal_interval,
            ),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("{flag} must be more than 0"));
        }
        let timing = Timing {
            grace: self.grace,
            margin: self.margin,
            stop_reserve: Duration::from_secs(1),
        };
        for (flag, wait) in [
            ("--drain-delay", self.drain_delay),
            ("--until-quiet", self.until_quiet),
        ] {
            let Some(wait) = wait.filter(|w| *w > timing.lame_duck_share()) else {
                continue;
            };
            return Err(format!(
                "{flag} {} does not fit: --grace {} − --margin {} − 1s kept for \
                 in-flight requests leaves {}; shorten {flag} or raise --grace",
                format_duration(wait),
                format_duration(self.grace),
                format_duration(self.margin),
                format_duration(timing.lame_duck_share()),
            ));
        }
        let wait = match (self.until_quiet, self.drain_delay) {
            (Some(quiet), max) => LameDuckWait::UntilQuiet { quiet, max },
            (None, delay) => LameDuckWait::Fixed(delay.unwrap_or(Duration::ZERO)),
        };
        let plan = Plan::new(timing, wait).map_err(|e| e.to_string())?;
        let config = Config {
            rules: Rules {
                self_preservation: !self.no_self_preservation,
                renewal_percent_threshold: self.renewal_percent_threshold,
                expected_renewal_interval: self.expected_renewal_interval,
                delta_retention: self.delta_retention,
            },
            eviction_interval: self.eviction_interval,
            auth: self.auth.clone(),
            auth_scope: self.auth_scope,
            max_wait: self.max_wait,
            clock: Arc::new(SystemClock::new()),
            ..Config::default()
        };
        Ok((config, plan))
    }
}

pub(crate) fn main(args: RegistryArgs) -> i32 {
    let (config, plan) = match args.config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("starting the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        let bind = |addr: SocketAddr, flag: &'static str| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("{flag} {addr}: {e}"))
        };
        let listener = bind(args.listen, "--listen").await?;
        let admin = match args.admin {
            Some(addr) => Some(bind(addr, "--admin").await?),
            None => None,
        };
        lameduck_registry::serve_until_stopped(config, listener, admin, plan)
            .await
            .map_err(|e| e.to_string())
    })
    .map_or_else(
        |e| {
            tracing::error!("{e}");
            1
        },
        |stopped| match stopped {
            Stopped::Drained => 0,
            Stopped::Forced => 1,
        },
    )
}
