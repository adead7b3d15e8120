//! Log lines on stderr that a user can tell apart from the app's own output:
//! `TIME lameduck[PID] LEVEL message key=value…`, or JSON with `--log-format json`.
//! The level comes from `LAMEDUCK_LOG` (error, warn, info, debug, trace).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    filter::Targets,
    fmt::{
        format::Writer, time::FormatTime, time::SystemTime, FmtContext, FormatEvent, FormatFields,
    },
    layer::SubscriberExt,
    registry::LookupSpan,
};

use crate::cli::LogFormat;

/// Sets up logging. `quiet` lists library crates that log only at or above
/// the level given (the parts a command embeds, such as the proxy inside
/// `rollout`).
pub(crate) fn init(format: LogFormat, quiet: &[(&str, Level)]) {
    let level = std::env::var("LAMEDUCK_LOG")
        .ok()
        .and_then(|v| v.parse::<Level>().ok())
        .unwrap_or(Level::INFO);
    // LAMEDUCK_LOG=debug (or trace) shows everything again.
    let filter = quiet
        .iter()
        .fold(Targets::new().with_default(level), |t, (target, at)| {
            t.with_target(*target, if level > Level::INFO { level } else { *at })
        });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => tracing::subscriber::set_global_default(
            builder
                .event_format(Text {
                    pid: std::process::id(),
                })
                .finish()
                .with(filter),
        ),
        LogFormat::Json => tracing::subscriber::set_global_default(
            builder
                .json()
                .flatten_event(true)
                .with_target(false)
                .finish()
                .with(filter),
        ),
    };
}

struct Text {
    pid: u32,
}

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        write!(
            writer,
            " lameduck[{}] {:>5} ",
            self.pid,
            event.metadata().level()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
