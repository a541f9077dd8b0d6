//! Human units: durations (`200ms`, `2s`, `1.5m`) and byte sizes (`64MiB`, `4096`).
//!
//! One parser and one formatter for each, shared by the task text form, the config file and
//! every display, so `spin 200ms` typed in the console and `slice = "1ms"` in a file mean the
//! same thing and are printed back the same way.

use std::fmt;
use std::time::Duration;

/// Why a duration or size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The text is empty.
    #[error("empty value; expected {expected}")]
    Empty {
        /// What was expected, e.g. "a duration like 200ms".
        expected: &'static str,
    },
    /// The number part is missing or malformed.
    #[error("'{text}' is not {expected}")]
    Malformed {
        /// The offending text.
        text: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The unit suffix is not one we know.
    #[error("unknown unit '{unit}' in '{text}'; use one of {known}")]
    UnknownUnit {
        /// The suffix found.
        unit: String,
        /// The whole text.
        text: String,
        /// The units accepted.
        known: &'static str,
    },
    /// The value does not fit.
    #[error("'{text}' is too large")]
    Overflow {
        /// The offending text.
        text: String,
    },
}

const DURATION_EXPECTED: &str = "a duration like 200ms, 2s or 1.5m";
const DURATION_UNITS: &str = "ns, us, ms, s, m, h, d";
const SIZE_EXPECTED: &str = "a size like 4096, 64KiB or 1GiB";
const SIZE_UNITS: &str =
    "B; KiB, MiB, GiB, TiB (or K, M, G, T: powers of 1024); KB, MB, GB, TB (powers of 1000)";

/// Splits `"1.5ms"` into `("1.5", "ms")`, allowing `_` separators in the number.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim_start())
}

/// Parses a decimal number with an optional fraction into (whole, numerator, denominator).
fn parse_decimal(
    number: &str,
    text: &str,
    expected: &'static str,
) -> Result<(u128, u128, u128), UnitError> {
    let malformed = || UnitError::Malformed {
        text: quoted_part(text),
        expected,
    };
    let cleaned: String = number.chars().filter(|&c| c != '_').collect();
    let (whole, fraction) = match cleaned.split_once('.') {
        Some((w, f)) => (w, f),
        None => (cleaned.as_str(), ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(malformed());
    }
    if fraction.len() > 9 {
        return Err(malformed());
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| UnitError::Overflow {
            text: quoted_part(text),
        })?
    };
    let mut denominator: u128 = 1;
    let mut numerator: u128 = 0;
    for digit in fraction.chars() {
        let d = digit.to_digit(10).ok_or_else(malformed)?;
        numerator = numerator * 10 + u128::from(d);
        denominator *= 10;
    }
    Ok((whole_value, numerator, denominator))
}

/// `text` as an error quotes it: at most 40 columns, its end cut with `…` (a 5,000-byte word
/// need not come back whole).
pub fn quoted_part(text: &str) -> String {
    cut_to_width(text, 40)
}

/// Parses a duration such as `200ms`, `2s`, `1.5m`, `500us`, `1h`. A bare number is rejected:
/// a duration always names its unit.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty {
            expected: DURATION_EXPECTED,
        });
    }
    let (number, unit) = split_number(text);
    if number.is_empty() {
        return Err(UnitError::Malformed {
            text: quoted_part(text),
            expected: DURATION_EXPECTED,
        });
    }
    let unit_ns: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" | "sec" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        // Zero is zero in every unit: `0` needs none (the config's ranges read "0 to 10ms").
        "" => {
            return match scaled(number, text, DURATION_EXPECTED, 1, "") {
                Ok(0) => Ok(Duration::ZERO),
                _ => Err(UnitError::Malformed {
                    text: quoted_part(text),
                    expected: "a duration with a unit, like 200ms or 2s",
                }),
            };
        }
        other => {
            return Err(UnitError::UnknownUnit {
                unit: quoted_part(other),
                text: quoted_part(text),
                known: DURATION_UNITS,
            });
        }
    };
    // `0.5ns` would be rounded down to nothing without a word.
    let nanos = scaled(
        number,
        text,
        DURATION_EXPECTED,
        unit_ns,
        "a whole number of nanoseconds (the finest unit)",
    )?;
    Ok(Duration::from_nanos(nanos))
}

/// `number` (digits, `_`, one `.`) times `unit`, as a whole count of the finest unit: a
/// fraction of it is refused (`not_whole` says what was expected), not rounded away.
fn scaled(
    number: &str,
    text: &str,
    expected: &'static str,
    unit: u128,
    not_whole: &'static str,
) -> Result<u64, UnitError> {
    let (whole, numerator, denominator) = parse_decimal(number, text, expected)?;
    if !(numerator * unit).is_multiple_of(denominator) {
        return Err(UnitError::Malformed {
            text: quoted_part(text),
            expected: not_whole,
        });
    }
    let overflow = || UnitError::Overflow {
        text: quoted_part(text),
    };
    let value = whole
        .checked_mul(unit)
        .and_then(|w| w.checked_add(numerator * unit / denominator))
        .ok_or_else(overflow)?;
    u64::try_from(value).map_err(|_| overflow())
}

/// Parses a byte size such as `64MiB`, `4096`, `1.5GiB`, `10MB` (decimal units are powers of ten).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty {
            expected: SIZE_EXPECTED,
        });
    }
    let (number, unit) = split_number(text);
    if number.is_empty() {
        return Err(UnitError::Malformed {
            text: quoted_part(text),
            expected: SIZE_EXPECTED,
        });
    }
    let multiplier: u128 = match unit {
        "" | "B" | "b" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(UnitError::UnknownUnit {
                unit: quoted_part(other),
                text: quoted_part(text),
                known: SIZE_UNITS,
            });
        }
    };
    // `hash 1.5` would hash one byte without a word.
    scaled(
        number,
        text,
        SIZE_EXPECTED,
        multiplier,
        "a whole number of bytes (1.5KiB is 1536 bytes)",
    )
}

/// Parses a plain count such as `10000000` or `10_000_000`.
pub fn parse_count(text: &str) -> Result<u64, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty {
            expected: "a whole number",
        });
    }
    if !text.chars().all(|c| c.is_ascii_digit() || c == '_') || text.starts_with('_') {
        return Err(UnitError::Malformed {
            text: quoted_part(text),
            expected: "a whole number",
        });
    }
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    cleaned.parse().map_err(|_| UnitError::Overflow {
        text: quoted_part(text),
    })
}

/// `count` and the noun for it: "1 task", "3 tasks".
pub fn counted(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// Displays a duration in the shortest exact unit (`1ms`, `1.5s`, `250us`), the form the parser
/// reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        const UNITS: [(u128, &str); 7] = [
            (86_400_000_000_000, "d"),
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (unit_ns, name) in UNITS {
            if nanos.is_multiple_of(unit_ns) {
                return write!(f, "{}{}", nanos / unit_ns, name);
            }
        }
        write!(f, "{nanos}ns")
    }
}

/// Displays a duration rounded for people (`1.23s`, `45.6ms`, `812us`), for tables and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortDuration(pub Duration);

impl fmt::Display for ShortDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Each unit's limit is where its rounded form would reach the next unit, so 59.996 s
        // shows as 1m00s, not 60.00s.
        let nanos = self.0.as_nanos() as f64;
        if nanos < 999.5 {
            write!(f, "{nanos:.0}ns")
        } else if nanos < 999_500.0 {
            write!(f, "{:.0}us", nanos / 1_000.0)
        } else if nanos < 999_950_000.0 {
            let ms = nanos / 1_000_000.0;
            if ms < 9.995 {
                write!(f, "{ms:.2}ms")
            } else {
                write!(f, "{ms:.1}ms")
            }
        } else if nanos < 59_995_000_000.0 {
            write!(f, "{:.2}s", nanos / 1_000_000_000.0)
        } else if nanos < 3_599_500_000_000.0 {
            let secs = (nanos / 1_000_000_000.0).round() as u64;
            write!(f, "{}m{:02}s", secs / 60, secs % 60)
        } else {
            let minutes = (nanos / 60_000_000_000.0).round() as u64;
            write!(f, "{}h{:02}m", minutes / 60, minutes % 60)
        }
    }
}

/// Displays a byte count in the largest binary unit that divides it (`64MiB`), or with one
/// decimal when `approximate` is set (`1.5GiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanSize {
    /// The size in bytes.
    pub bytes: u64,
    /// Round to one decimal instead of printing the exact form.
    pub approximate: bool,
}

impl HumanSize {
    /// The exact form, which the parser reads back.
    pub fn exact(bytes: u64) -> Self {
        Self {
            bytes,
            approximate: false,
        }
    }
    /// A rounded form for displays.
    pub fn approx(bytes: u64) -> Self {
        Self {
            bytes,
            approximate: true,
        }
    }
}

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        if self.approximate {
            for (unit, name) in UNITS {
                if self.bytes >= unit {
                    return write!(f, "{:.1}{}", self.bytes as f64 / unit as f64, name);
                }
            }
            return write!(f, "{}B", self.bytes);
        }
        if self.bytes == 0 {
            return f.write_str("0");
        }
        // The unit, binary or decimal, that writes the size exactly with the smallest
        // number: `64GB` stays `64GB` (not `62500000KiB`), `64MiB` stays `64MiB`.
        const DECIMAL: [(u64, &str); 4] = [
            (1_000_000_000_000, "TB"),
            (1_000_000_000, "GB"),
            (1_000_000, "MB"),
            (1_000, "KB"),
        ];
        let best = UNITS
            .iter()
            .chain(DECIMAL.iter())
            .filter(|(unit, _)| self.bytes.is_multiple_of(*unit))
            .min_by_key(|(unit, _)| self.bytes / unit);
        match best {
            Some((unit, name)) => write!(f, "{}{}", self.bytes / unit, name),
            None => write!(f, "{}", self.bytes),
        }
    }
}

/// Displays Unix microseconds as UTC, `2026-11-25T04:11:47.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime(pub u64);

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0 / 1_000_000;
        let millis = (self.0 / 1_000) % 1_000;
        let days = (seconds / 86_400) as i64;
        let of_day = seconds % 86_400;
        // Days since 1970-01-01 to a civil date (proleptic Gregorian).
        let shifted = days + 719_468;
        let era = shifted.div_euclid(146_097);
        let day_of_era = shifted.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_index + 2) / 5 + 1;
        let month = if month_index < 10 {
            month_index + 3
        } else {
            month_index - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            of_day / 3600,
            (of_day % 3600) / 60,
            of_day % 60
        )
    }
}

/// The largest index at most `max` that is a character boundary of `text` (`text.len()` if
/// it is shorter): where to cut it to keep at most `max` bytes (`str::floor_char_boundary`,
/// which needs a newer Rust than this crate's minimum).
pub fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&at| text.is_char_boundary(at))
        .unwrap_or(0)
}

/// `text` with each control character a terminal would act on (escape sequences, carriage
/// returns, bells, line breaks) shown as its picture (`␛`, `␍`, `␇`, `␊`) instead: task text
/// and output go into tables and views as data, never as commands to the terminal. Tabs are
/// kept where `keep_tabs`.
pub fn printable(text: &str, keep_tabs: bool) -> std::borrow::Cow<'_, str> {
    let shown = |c: char| c.is_control() && !(keep_tabs && c == '\t');
    if !text.chars().any(shown) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| match c {
            c if !shown(c) => c,
            '\u{7f}' => '\u{2421}',
            c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('?'),
            _ => '?',
        })
        .collect::<String>()
        .into()
}

/// `text` in at most `columns` terminal columns, its end replaced by `…` when cut (a CJK
/// character takes two columns, so counting characters would overflow).
pub fn cut_to_width(text: &str, columns: usize) -> String {
    use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};
    if text.width() <= columns {
        return text.to_string();
    }
    let mut kept = String::new();
    let mut width = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if width + w + 1 > columns {
            break;
        }
        width += w;
        kept.push(c);
    }
    kept.push('…');
    kept
}

/// `text` in at most `columns` terminal columns, its middle replaced by `…` when cut: for
/// names, which often differ only at the end (`…-euw1-001`, `…-euw1-002`), so the end is
/// kept as well as the start.
pub fn cut_middle_to_width(text: &str, columns: usize) -> String {
    use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};
    if text.width() <= columns {
        return text.to_string();
    }
    if columns < 3 {
        return cut_to_width(text, columns);
    }
    // One column for the mark; the end gets half of the rest, the start what is left.
    let tail_room = (columns - 1) / 2;
    let head_room = columns - 1 - tail_room;
    let mut tail: Vec<char> = Vec::new();
    let mut tail_width = 0;
    for c in text.chars().rev() {
        let w = c.width().unwrap_or(0);
        if tail_width + w > tail_room {
            break;
        }
        tail_width += w;
        tail.push(c);
    }
    let mut kept = String::new();
    let mut head_width = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if head_width + w > head_room {
            break;
        }
        head_width += w;
        kept.push(c);
    }
    kept.push('…');
    kept.extend(tail.into_iter().rev());
    kept
}

/// Text order in which runs of digits compare by their value: `node-2` before `node-10`.
pub fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(text: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = text;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some((digits, run))
        })
    }
    let mut left = runs(a);
    let mut right = runs(b);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((true, x)), Some((true, y))) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                let order = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
                if order.is_ne() {
                    return order;
                }
            }
            (Some((_, x)), Some((_, y))) => {
                if x != y {
                    return x.cmp(y);
                }
            }
        }
    }
}

/// Order of task specs: word by word, where a duration or a size compares by its value
/// (`sleep 90s` before `sleep 5m`, `hash 512KiB` before `hash 2MiB`) and other words as
/// [`natural_order`] does (`fib 9` before `fib 10`). `timeout=5s` is two words.
pub fn spec_order(a: &str, b: &str) -> std::cmp::Ordering {
    /// A word that is a number with a unit: (0 for a duration, 1 for a size; its value).
    fn quantity(word: &str) -> Option<(u8, u128)> {
        let starts_with_digit = word.starts_with(|c: char| c.is_ascii_digit());
        let ends_with_unit = word.ends_with(|c: char| c.is_alphabetic());
        if !starts_with_digit || !ends_with_unit {
            return None;
        }
        if let Ok(duration) = parse_duration(word) {
            return Some((0, duration.as_nanos()));
        }
        parse_size(word).ok().map(|bytes| (1, u128::from(bytes)))
    }
    let words = |text| {
        let text: &str = text;
        text.split(|c: char| c.is_whitespace() || c == '=')
            .filter(|word| !word.is_empty())
    };
    let (mut left, mut right) = (words(a), words(b));
    loop {
        let (x, y) = match (left.next(), right.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => (x, y),
        };
        if x == y {
            continue;
        }
        let order = match (quantity(x), quantity(y)) {
            (Some((kind_x, x_value)), Some((kind_y, y_value))) if kind_x == kind_y => {
                x_value.cmp(&y_value)
            }
            _ => natural_order(x, y),
        };
        if order.is_ne() {
            return order;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_sort_by_the_values_of_their_durations_and_sizes() {
        let mut specs = vec![
            "sleep 5m",
            "sleep 90s",
            "spin 2s",
            "hash 1GiB",
            "sleep 500ms",
            "fib 10",
            "hash 64MiB",
            "fib 9",
            "sleep 1m timeout=30s",
            "sleep 1m timeout=5s",
            "sleep 60s",
            "echo b",
            "echo a",
        ];
        specs.sort_by(|a, b| spec_order(a, b));
        assert_eq!(
            specs,
            [
                "echo a",
                "echo b",
                "fib 9",
                "fib 10",
                "hash 64MiB",
                "hash 1GiB",
                "sleep 500ms",
                // Equal values compare the words after them: none first.
                "sleep 60s",
                "sleep 1m timeout=5s",
                "sleep 1m timeout=30s",
                "sleep 90s",
                "sleep 5m",
                "spin 2s",
            ]
        );
    }

    #[test]
    fn text_is_cut_only_between_characters() {
        assert_eq!(floor_char_boundary("abc", 10), 3);
        assert_eq!(floor_char_boundary("abc", 2), 2);
        // 'é' takes bytes 1 and 2: a cut at 2 falls inside it, so it goes before it.
        assert_eq!(floor_char_boundary("aéb", 2), 1);
        assert_eq!(floor_char_boundary("aéb", 3), 3);
        assert_eq!(floor_char_boundary("", 0), 0);
    }

    #[test]
    fn a_name_cut_in_the_middle_keeps_the_end_that_tells_it_apart() {
        use unicode_width::UnicodeWidthStr as _;
        let one = "worker-europe-west1-b-rack-17-long-host-name-001";
        let two = "worker-europe-west1-b-rack-17-long-host-name-002";
        for columns in [3, 10, 20, 40] {
            let (cut_one, cut_two) = (
                cut_middle_to_width(one, columns),
                cut_middle_to_width(two, columns),
            );
            assert_ne!(cut_one, cut_two, "at {columns}");
            assert_eq!(cut_one.width(), columns, "{cut_one}");
            let end = if columns >= 10 { "001" } else { "1" };
            assert!(cut_one.contains('…') && cut_one.ends_with(end), "{cut_one}");
        }
        assert_eq!(cut_middle_to_width(one, 20), "worker-eur…-name-001");
        assert_eq!(cut_middle_to_width("short", 20), "short");
        // Wide characters count two columns on either side of the mark.
        let wide = cut_middle_to_width("日本語のノード名前-1", 9);
        assert!(wide.width() <= 9 && wide.ends_with("-1"), "{wide}");
    }

    #[test]
    fn durations_parse_in_every_unit() {
        let cases = [
            ("200ms", Duration::from_millis(200)),
            ("2s", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("1.5m", Duration::from_secs(90)),
            ("500us", Duration::from_micros(500)),
            ("7ns", Duration::from_nanos(7)),
            ("1h", Duration::from_secs(3600)),
            ("2d", Duration::from_secs(172_800)),
            ("1_000ms", Duration::from_secs(1)),
            ("0s", Duration::ZERO),
            (" 3 s ", Duration::from_secs(3)),
            ("0", Duration::ZERO),
            ("0.0", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn durations_reject_bad_text_with_reasons() {
        assert!(matches!(parse_duration(""), Err(UnitError::Empty { .. })));
        for malformed in ["200", "0.5ns", ".", "ms", "1.2.3s"] {
            assert!(
                matches!(parse_duration(malformed), Err(UnitError::Malformed { .. })),
                "{malformed}"
            );
        }
        assert!(matches!(
            parse_size("1.5"),
            Err(UnitError::Malformed { .. })
        ));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_duration("1.5us"), Ok(Duration::from_nanos(1500)));
        assert!(matches!(
            parse_duration("2x"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999d"),
            Err(UnitError::Overflow { .. })
        ));
        let message = parse_duration("5parsecs").unwrap_err().to_string();
        assert!(
            message.contains("parsecs") && message.contains("ms"),
            "{message}"
        );
    }

    #[test]
    fn sizes_parse_binary_and_decimal_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert!(matches!(
            parse_size("12 parsecs"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size("99999999999TiB"),
            Err(UnitError::Overflow { .. })
        ));
    }

    #[test]
    fn counts_accept_separators_only_between_digits() {
        assert_eq!(parse_count("10_000_000"), Ok(10_000_000));
        assert!(parse_count("_1").is_err());
        assert!(parse_count("1e7").is_err());
        assert!(parse_count("-3").is_err());
    }

    #[test]
    fn utc_times_format_as_iso_8601() {
        assert_eq!(UtcTime(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            UtcTime(951_782_400_000_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            UtcTime(1_795_833_107_123_456).to_string(),
            "2026-11-28T02:31:47.123Z"
        );
    }

    #[test]
    fn formats_read_back_to_the_same_value() {
        for nanos in [
            1u64,
            999,
            1_000,
            1_500_000,
            2_000_000_000,
            90_000_000_000,
            3_600_000_000_000,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(parse_duration(&HumanDuration(d).to_string()), Ok(d));
        }
        for bytes in [0u64, 1, 1024, 1000, 64 << 20, (1 << 30) + 1, 64_000_000_000] {
            assert_eq!(parse_size(&HumanSize::exact(bytes).to_string()), Ok(bytes));
        }
        // Written as typed when that is exact, in whichever family it was.
        assert_eq!(HumanSize::exact(64_000_000_000).to_string(), "64GB");
        assert_eq!(HumanSize::exact(1000).to_string(), "1KB");
        assert_eq!(HumanSize::exact(64 << 20).to_string(), "64MiB");
        assert_eq!(HumanSize::exact(1000 << 20).to_string(), "1000MiB");
        assert_eq!(
            ShortDuration(Duration::from_micros(1234)).to_string(),
            "1.23ms"
        );
        assert_eq!(HumanSize::approx(3 << 29).to_string(), "1.5GiB");
    }

    #[test]
    fn a_short_duration_that_rounds_up_to_the_next_unit_is_written_in_it() {
        let shown = |nanos: u64| ShortDuration(Duration::from_nanos(nanos)).to_string();
        assert_eq!(shown(999), "999ns");
        assert_eq!(shown(999_600), "1.00ms");
        assert_eq!(shown(9_996_000), "10.0ms");
        assert_eq!(shown(999_960_000), "1.00s");
        assert_eq!(shown(59_996_000_000), "1m00s");
        assert_eq!(shown(59_994_000_000), "59.99s");
        assert_eq!(shown(119_600_000_000), "2m00s");
        assert_eq!(shown(3_599_600_000_000), "1h00m");
    }
}
