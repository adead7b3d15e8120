//! The drain flags `run` and `prestop` share: the budget and the lame-duck phase.

use std::time::Duration;

use clap::Args;
use lameduck_drain::{parse_duration, LameDuckWait, Plan, Timing};
use lameduck_supervisor::{EurekaConfig, Hook, LameDuckWork};

#[derive(Debug, Args)]
#[command(next_help_heading = "Drain budget")]
pub(crate) struct BudgetArgs {
    /// The whole drain budget, counted from the first trigger (preStop or stop
    /// signal). Set it to the pod's terminationGracePeriodSeconds.
    #[arg(long, value_name = "DURATION", env = "LAMEDUCK_GRACE_SECONDS", default_value = "30s", value_parser = parse_duration)]
    pub(crate) grace: Duration,

    /// Safety margin before the kubelet's SIGKILL: lameduck sends SIGKILL to the
    /// app's process group itself at grace − margin, and says so in its log.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub(crate) margin: Duration,

    /// Time kept for the app to finish in-flight work after its stop signal: the
    /// lame-duck phase ends at the latest at grace − margin − stop-reserve.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub(crate) stop_reserve: Duration,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Lame-duck phase (phase 1)")]
pub(crate) struct LameDuckArgs {
    /// Wait this long after the hooks before the app gets its stop signal (what
    /// `preStop: sleep N` did). With --until-quiet: the longest the quiet wait may take.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) drain_delay: Option<Duration>,

    /// End the lame-duck phase as soon as --port has been quiet for this long: no
    /// new connection and no data received on any connection to it, keepalive
    /// connections included (the kernel's tcp_info, through sock_diag netlink; or
    /// new connections only, from /proc/net/tcp, where netlink is not available).
    /// Within its budget share.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "port")]
    pub(crate) until_quiet: Option<Duration>,

    /// The app's port(s) watched by --until-quiet (repeatable); the first is also
    /// the default --eureka-port.
    #[arg(long, value_name = "PORT")]
    pub(crate) port: Vec<u16>,

    /// Command run at the start of the lame-duck phase, before the wait, e.g. to
    /// mark the instance DOWN in a registry. Split like a shell line but run
    /// without a shell. Repeatable: hooks run in order, each bounded by the budget.
    /// Hooks see LAMEDUCK_PHASE, LAMEDUCK_BUDGET_LEFT_MS and LAMEDUCK_APP_PID.
    #[arg(long, value_name = "CMD", value_parser = Hook::parse)]
    pub(crate) on_drain: Vec<Hook>,

    #[command(flatten)]
    pub(crate) eureka: EurekaArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Eureka")]
pub(crate) struct EurekaArgs {
    /// Eureka service URL (repeatable for several servers), e.g.
    /// http://eureka:8761/eureka/. The lame-duck phase starts by marking this
    /// instance DOWN there and ends by cancelling it.
    #[arg(long = "eureka", value_name = "URL")]
    servers: Vec<String>,

    /// The application name in Eureka (required with --eureka).
    #[arg(long, value_name = "NAME", requires = "servers")]
    eureka_app: Option<String>,

    /// The instance id; without it the instance is found by --eureka-ip and --eureka-port.
    #[arg(long, value_name = "ID", requires = "servers")]
    eureka_instance_id: Option<String>,

    /// This pod's IP as Eureka knows it.
    #[arg(long, value_name = "IP", env = "POD_IP")]
    eureka_ip: Option<String>,

    /// The app's port as Eureka knows it [default: the first --port].
    #[arg(long, value_name = "PORT")]
    eureka_port: Option<u16>,

    /// Register and heartbeat the instance from lameduck, for apps that do not
    /// speak Eureka (after --ready-check answers 2xx, if given).
    #[arg(long, requires = "servers")]
    eureka_register: bool,

    /// Heartbeat interval with --eureka-register (at least 1s: Eureka counts
    /// it in whole seconds).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_renew_interval)]
    eureka_renew_interval: Duration,

    /// Lease asked for with --eureka-register (Eureka evicts after it without a heartbeat).
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = parse_duration)]
    eureka_lease: Duration,

    /// Bound on one request to a Eureka server (retries never pass the lame-duck share).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    eureka_timeout: Duration,
}

impl EurekaArgs {
    /// The checked Eureka settings, if --eureka was given.
    pub(crate) fn config(&self, ports: &[u16]) -> Result<Option<EurekaConfig>, String> {
        if self.servers.is_empty() {
            return Ok(None);
        }
        let config = EurekaConfig {
            servers: self.servers.clone(),
            app: self.eureka_app.clone().unwrap_or_default(),
            instance_id: self.eureka_instance_id.clone(),
            ip: self.eureka_ip.clone(),
            port: self.eureka_port.or_else(|| ports.first().copied()),
            register: self.eureka_register,
            renew_every: self.eureka_renew_interval,
            lease: self.eureka_lease,
            timeout: self.eureka_timeout,
        };
        config.check().map_err(|e| e.to_string())?;
        Ok(Some(config))
    }
}

impl LameDuckArgs {
    /// True if any phase-1 work was asked for.
    pub(crate) fn any(&self) -> bool {
        self.drain_delay.is_some()
            || self.until_quiet.is_some()
            || !self.on_drain.is_empty()
            || !self.eureka.servers.is_empty()
    }

    /// The checked plan and the lame-duck work; the error names the flag to change.
    pub(crate) fn plan(&self, budget: &BudgetArgs) -> Result<(Plan, LameDuckWork), String> {
        let timing = Timing {
            grace: budget.grace,
            margin: budget.margin,
            stop_reserve: budget.stop_reserve,
        };
        let wait = match (self.until_quiet, self.drain_delay) {
            (Some(quiet), max) => LameDuckWait::UntilQuiet { quiet, max },
            (None, Some(delay)) => LameDuckWait::Fixed(delay),
            (None, None) => LameDuckWait::None,
        };
        if !self.port.is_empty() && self.until_quiet.is_none() && self.eureka.servers.is_empty() {
            return Err("--port is only used with --until-quiet or --eureka".into());
        }
        let plan = Plan::new(timing, wait).map_err(|e| e.to_string())?;
        let eureka = self.eureka.config(&self.port)?;
        let work = LameDuckWork {
            hooks: self.on_drain.clone(),
            quiet_ports: self.port.clone(),
            eureka,
        };
        Ok((plan, work))
    }
}

/// A heartbeat interval: a duration of at least one second.
fn parse_renew_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s:?} is shorter than 1s, the least Eureka counts"));
    }
    Ok(d)
}
