//! Wall-clock times as e3pipe writes them: in results, locks and file names, always UTC.

/// Now, as an RFC 3339 UTC string (`2026-11-29T18:03:16Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now as `YYYYMMDD_HHMMSS` (UTC), for result file names, as the seed named them.
pub fn file_name_time() -> String {
    chrono::Utc::now().format("%Y%m%d_%H%M%S").to_string()
}

/// An RFC 3339 time (`now_rfc3339`) as `YYYYMMDD_HHMMSS`; `None` when it is not one.
pub fn file_name_time_of(rfc3339: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(rfc3339).ok().map(|t| {
        t.with_timezone(&chrono::Utc)
            .format("%Y%m%d_%H%M%S")
            .to_string()
    })
}

/// This `e3pipe` process's run: its start time and pid, recorded with every point it measures and with the roof
/// it measured them against.
pub fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| format!("{} pid {}", now_rfc3339(), std::process::id()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_name_times_come_from_rfc3339_times() {
        assert_eq!(
            super::file_name_time_of("2026-11-29T18:03:16Z").as_deref(),
            Some("20261129_180316")
        );
        assert_eq!(super::file_name_time_of(""), None);
        assert_eq!(super::file_name_time_of("yesterday"), None);
    }
}
