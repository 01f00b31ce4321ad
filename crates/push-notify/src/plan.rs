//! When a festival day's reminder is due, and what it says.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::{Reminder, ReminderKey};

/// Plans "your event starts tomorrow" reminders: the day before the event's day at a local
/// time, or at once when the booking is made after that moment but before the day begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planner {
    /// The local time of day the reminder goes out, on the day before.
    pub at: NaiveTime,
    /// The events' time zone.
    pub zone: Tz,
    /// The reminder's text: `{name}` and `{date}` (`YYYY-MM-DD`) are filled in.
    pub text: String,
}

/// The default reminder text.
pub const DEFAULT_TEXT: &str = "{name} starts on {date}.";

impl Default for Planner {
    /// 09:00 UTC, [`DEFAULT_TEXT`].
    fn default() -> Self {
        Self {
            at: NaiveTime::from_hms_opt(9, 0, 0).expect("a valid time"),
            zone: chrono_tz::UTC,
            text: DEFAULT_TEXT.to_owned(),
        }
    }
}

impl Planner {
    /// From settings: `at` as `HH:MM`, `zone` an IANA name such as `Asia/Seoul`.
    pub fn parse(at: &str, zone: &str) -> Result<Self, crate::PushError> {
        let at = NaiveTime::parse_from_str(at, "%H:%M").map_err(|e| crate::PushError::Invalid {
            field: "remind_at",
            reason: format!("{at:?}: {e}"),
        })?;
        let zone = zone.parse::<Tz>().map_err(|e| crate::PushError::Invalid {
            field: "time_zone",
            reason: format!("{zone:?}: {e}"),
        })?;
        Ok(Self {
            at,
            zone,
            text: DEFAULT_TEXT.to_owned(),
        })
    }

    /// The same planner with another text (`{name}` and `{date}` are filled in).
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// The reminder for `key` of the festival `name`, as planned at `now`; `None` once the
    /// festival day has begun (a "starts tomorrow" message would be wrong by then).
    pub fn reminder(&self, key: ReminderKey, name: &str, now: DateTime<Utc>) -> Option<Reminder> {
        let day_starts = self.local(key.date, NaiveTime::MIN)?;
        if now >= day_starts {
            return None;
        }
        let eve = key.date.checked_sub_days(Days::new(1))?;
        let due = self.local(eve, self.at)?.max(now);
        Some(Reminder {
            key,
            due,
            title: name.to_owned(),
            body: self
                .text
                .replace("{date}", &key.date.format("%Y-%m-%d").to_string())
                .replace("{name}", name),
        })
    }

    /// A local date and time as an instant; in a DST gap, the first instant after it.
    fn local(&self, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let naive = date.and_time(time);
        self.zone
            .from_local_datetime(&naive)
            .earliest()
            .or_else(|| {
                self.zone
                    .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(date: &str) -> ReminderKey {
        ReminderKey {
            user: 1,
            festival: 2,
            date: date.parse().unwrap(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn seoul() -> Planner {
        Planner::parse("09:00", "Asia/Seoul").unwrap()
    }

    #[test]
    fn the_day_before_at_nine_in_seoul() {
        let r = seoul()
            .with_text("{date} 에 {name}이 시작됩니다.")
            .reminder(key("2026-12-24"), "Jazz", utc("2026-12-01T00:00:00Z"))
            .unwrap();
        // 09:00 KST on the 23rd is 00:00 UTC.
        assert_eq!(r.due, utc("2026-12-23T00:00:00Z"));
        assert_eq!(r.title, "Jazz");
        assert_eq!(r.body, "2026-12-24 에 Jazz이 시작됩니다.");
    }

    #[test]
    fn the_default_is_nine_utc_in_english() {
        let r = Planner::default()
            .reminder(key("2026-12-24"), "Jazz", utc("2026-12-01T00:00:00Z"))
            .unwrap();
        assert_eq!(r.due, utc("2026-12-23T09:00:00Z"));
        assert_eq!(r.body, "Jazz starts on 2026-12-24.");
    }

    #[test]
    fn at_once_inside_the_window_and_never_once_the_day_began() {
        let p = seoul();
        // 10:00 KST on the eve: after the reminder time, before the day.
        let now = utc("2026-12-23T01:00:00Z");
        assert_eq!(p.reminder(key("2026-12-24"), "Jazz", now).unwrap().due, now);
        // 00:00 KST on the day itself.
        assert_eq!(
            p.reminder(key("2026-12-24"), "Jazz", utc("2026-12-23T15:00:00Z")),
            None
        );
    }

    #[test]
    fn other_zones_and_times() {
        let p = Planner {
            at: NaiveTime::from_hms_opt(18, 30, 0).unwrap(),
            zone: chrono_tz::Europe::Berlin,
            ..Planner::default()
        };
        // Berlin is UTC+1 in December.
        let r = p
            .reminder(key("2026-12-24"), "X", utc("2026-01-01T00:00:00Z"))
            .unwrap();
        assert_eq!(r.due, utc("2026-12-23T17:30:00Z"));
        // The day before the spring-forward night: 02:30 does not exist on 2026-03-29.
        let p = Planner {
            at: NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
            ..p
        };
        let r = p
            .reminder(key("2026-03-30"), "X", utc("2026-01-01T00:00:00Z"))
            .unwrap();
        assert_eq!(r.due, utc("2026-03-29T01:30:00Z"));
    }

    #[test]
    fn settings_parse() {
        assert_eq!(Planner::parse("09:00", "UTC").unwrap(), Planner::default());
        assert!(Planner::parse("9am", "Asia/Seoul").is_err());
        assert!(Planner::parse("09:00", "Mars/Olympus").is_err());
    }

    #[test]
    fn keys_round_trip_through_their_ids() {
        let k = key("2026-12-24");
        assert_eq!(k.id(), "r-1-2-20261224");
        assert_eq!(ReminderKey::parse(&k.id()), Some(k));
        assert_eq!(ReminderKey::parse("r-1-2"), None);
        assert_eq!(ReminderKey::parse("x-1-2-20261224"), None);
    }
}
