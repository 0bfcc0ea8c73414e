//! Cron schedules of `cron` triggers: read when a playbook loads (so a bad schedule is a load
//! error with its line) and by the scheduler that fires them (`schedule.rs`).

use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// Why a schedule is not a cron schedule.
pub type CronError = croner::errors::CronError;

/// Parse a cron schedule: five fields (minute hour day-of-month month day-of-week), or six
/// with seconds first.
pub fn parse_cron(spec: &str) -> Result<Cron, CronError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(spec)
}

#[cfg(test)]
mod tests {
    use super::parse_cron;

    #[test]
    fn five_or_six_fields_and_bad_schedules_are_explained() {
        assert!(parse_cron("0 9 * * *").is_ok());
        assert!(parse_cron("0 */5 * * * *").is_ok(), "six fields: seconds first");
        let e = parse_cron("61 * * * *").unwrap_err();
        assert!(!e.to_string().is_empty());
        assert!(parse_cron("* * *").is_err());
    }
}
