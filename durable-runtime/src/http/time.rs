//! ISO 8601 / RFC 3339 times as the Durable Functions HTTP API writes and reads them
//! (`2026-11-27T23:14:00Z`), without a date-time dependency.

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDThh:mm:ss[.fff]Z` (UTC; the
/// fraction only when there is one), as the API writes times.
///
/// ```
/// assert_eq!(durable_runtime::http::format_time(1_000), "1970-01-01T00:00:01Z");
/// ```
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    if millis == 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
    }
}

/// Parses an RFC 3339 time (`2026-11-27T23:14:00Z`, `2026-11-27T23:14:00.123+01:00`, and, as
/// the SDK clients send them, a space for the `T` or no offset, meaning UTC; or a bare date)
/// to milliseconds since the Unix epoch. `None` if it is not one.
///
/// ```
/// assert_eq!(durable_runtime::http::parse_time("1970-01-01T01:00:01+01:00"), Some(1_000));
/// ```
pub fn parse_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    // Every slice below is taken at byte offsets: a non-ASCII character could split one.
    if !text.is_ascii() {
        return None;
    }
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i64 = digits(&text[0..4])?;
    let month: i64 = digits(&text[5..7])?;
    let day: i64 = digits(&text[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let rest = &text[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    if rest.len() < 8 || rest.as_bytes()[2] != b':' || rest.as_bytes()[5] != b':' {
        return None;
    }
    let (h, m, s): (i64, i64, i64) = (
        digits(&rest[0..2])?,
        digits(&rest[3..5])?,
        digits(&rest[6..8])?,
    );
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    ms += (h * 3600 + m * 60 + s) * 1000;
    let mut rest = &rest[8..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return None;
        }
        // Milliseconds: the first three digits, padded.
        let mut millis = 0;
        for (i, c) in fraction[..end].bytes().take(3).enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][i];
        }
        ms += millis;
        rest = &fraction[end..];
    }
    match rest {
        "" | "Z" | "z" => Some(ms),
        offset => {
            let sign = match offset.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let offset = &offset[1..];
            let (oh, om) = match offset.len() {
                5 if offset.as_bytes()[2] == b':' => (&offset[0..2], &offset[3..5]),
                4 => (&offset[0..2], &offset[2..4]),
                2 => (&offset[0..2], "00"),
                _ => return None,
            };
            let minutes = digits::<i64>(oh)? * 60 + digits::<i64>(om)?;
            Some(ms - sign * minutes * 60_000)
        }
    }
}

fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        for ms in [
            0,
            1_764_285_240_000,
            1_764_285_240_123,
            951_782_400_000,
            -86_400_000,
        ] {
            assert_eq!(parse_ms(&format_ms(ms)), Some(ms), "{}", format_ms(ms));
        }
        assert_eq!(format_ms(1_764_285_240_000), "2025-11-27T23:14:00Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_what_sdk_clients_send() {
        let utc = parse_ms("2025-11-27T23:14:00Z");
        assert_eq!(parse_ms("2025-11-27T23:14:00"), utc);
        assert_eq!(parse_ms("2025-11-27 23:14:00"), utc);
        assert_eq!(parse_ms("2025-11-28T00:14:00+01:00"), utc);
        assert_eq!(parse_ms("2025-11-27T23:14:00.000000+00:00"), utc);
        assert_eq!(parse_ms("2025-11-27T23:14:00.5Z"), utc.map(|ms| ms + 500));
        assert_eq!(
            parse_ms("2025-11-27"),
            utc.map(|ms| ms - (23 * 60 + 14) * 60_000)
        );
        for bad in [
            "",
            "yesterday",
            "2025-13-01",
            "2025-11-27T25:00:00Z",
            "2025-11-27T23:14",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_non_ascii_without_panicking() {
        // Each puts a multi-byte character where a slice boundary would fall inside it.
        for bad in [
            "2025-11-0\u{e9}",
            "2025-11-27T23:14:0\u{e9}",
            "2025-11-27T23:14:00+0\u{e9}0",
            "2025-11-27T23:14:00.\u{e9}",
            "\u{e9}025-11-27",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}
