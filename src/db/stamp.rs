//! A time bound many times in one transaction, formatted once.
//!
//! SQLite stores times as text, and diesel formats a `NaiveDateTime` anew for every bind;
//! the ingestion writer binds the same commit time several times per alert, and that
//! formatting showed in its profile. A [`Stamp`] carries the text along with the time.

use chrono::NaiveDateTime;
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::serialize::{IsNull, Output, ToSql};
use diesel::sql_types::Timestamp;
use diesel::sqlite::Sqlite;

/// A time with its SQLite text, bound as a `Timestamp` on either backend.
#[derive(Debug, Clone, AsExpression)]
#[diesel(sql_type = Timestamp)]
pub struct Stamp {
    time: NaiveDateTime,
    text: String,
}

impl Stamp {
    /// `time`, formatted as diesel writes timestamps to SQLite.
    pub fn new(time: NaiveDateTime) -> Stamp {
        Stamp {
            time,
            text: time.format("%F %T%.f").to_string(),
        }
    }

    /// The time itself.
    pub fn time(&self) -> NaiveDateTime {
        self.time
    }
}

impl ToSql<Timestamp, Sqlite> for Stamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> diesel::serialize::Result {
        out.set_value(self.text.as_str());
        Ok(IsNull::No)
    }
}

impl ToSql<Timestamp, Pg> for Stamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
        <NaiveDateTime as ToSql<Timestamp, Pg>>::to_sql(&self.time, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        plain: String,
        #[diesel(sql_type = Text)]
        stamped: String,
    }

    /// A stamp is stored exactly as diesel stores the same time, so comparisons and
    /// ordering against rows written either way agree.
    #[test]
    fn stored_text_matches_diesels() {
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        for t in [
            chrono::DateTime::from_timestamp(1_764_000_000, 123_456_789).unwrap(),
            chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
            chrono::DateTime::from_timestamp(1_764_000_000, 500_000_000).unwrap(),
        ] {
            let t = t.naive_utc();
            let row: Row =
                diesel::sql_query("SELECT CAST(? AS TEXT) AS plain, CAST(? AS TEXT) AS stamped")
                    .bind::<Timestamp, _>(t)
                    .bind::<Timestamp, _>(Stamp::new(t))
                    .get_result(&mut conn)
                    .unwrap();
            assert_eq!(row.plain, row.stamped);
            assert_eq!(Stamp::new(t).time(), t);
        }
    }
}
