//! Hand-written statements that diesel keeps prepared.
//!
//! Diesel re-prepares every `UPDATE` it builds and every `sql_query` on each call (it
//! marks them unsafe to cache), which on the ingestion writer's hot path meant parsing
//! and planning the same statement thousands of times a second. A [`Kept`] statement is
//! fixed SQL text with typed binds; diesel caches its prepared form by that text. Each
//! `?` in the text is a bind, so one text serves both backends (`?` on SQLite, `$n` on
//! PostgreSQL, rendered by diesel).

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};
use std::marker::PhantomData;

/// A statement of fixed text and typed binds, one per `?` in the text.
#[derive(Debug, Clone, Copy)]
#[must_use = "a statement does nothing until it is executed"]
pub struct Kept<B> {
    sql: &'static str,
    binds: B,
}

/// One bind of SQL type `ST`.
#[derive(Debug, Clone, Copy)]
pub struct Bind<ST, V>(V, PhantomData<ST>);

/// A bind of SQL type `ST`: `kept(sql, (bind::<Integer, _>(1), ...))`.
pub fn bind<ST, V>(value: V) -> Bind<ST, V> {
    Bind(value, PhantomData)
}

/// `sql` with `binds` (a tuple of [`bind`]s, in the order of the `?`s).
pub fn kept<B>(sql: &'static str, binds: B) -> Kept<B> {
    Kept { sql, binds }
}

/// Binds that can be written into a statement, each after the next piece of its text.
pub trait Binds<DB: Backend> {
    /// Pushes, for each bind, the text before its `?` and then the bind.
    fn walk<'b>(
        &'b self,
        pieces: &mut std::str::Split<'static, char>,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>;
}

impl<DB, ST, V> Binds<DB> for Bind<ST, V>
where
    DB: Backend + HasSqlType<ST>,
    V: ToSql<ST, DB>,
{
    fn walk<'b>(
        &'b self,
        pieces: &mut std::str::Split<'static, char>,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        let piece = pieces.next().ok_or_else(|| {
            diesel::result::Error::QueryBuilderError("more binds than `?` in a statement".into())
        })?;
        out.push_sql(piece);
        out.push_bind_param::<ST, V>(&self.0)
    }
}

macro_rules! tuple_binds {
    ($($name:ident . $i:tt),+) => {
        impl<DB: Backend, $($name: Binds<DB>),+> Binds<DB> for ($($name,)+) {
            fn walk<'b>(
                &'b self,
                pieces: &mut std::str::Split<'static, char>,
                out: &mut AstPass<'_, 'b, DB>,
            ) -> QueryResult<()> {
                $(self.$i.walk(pieces, out)?;)+
                Ok(())
            }
        }
    };
}
tuple_binds!(A.0);
tuple_binds!(A.0, B.1);
tuple_binds!(A.0, B.1, C.2);
tuple_binds!(A.0, B.1, C.2, D.3);
tuple_binds!(A.0, B.1, C.2, D.3, E.4);
tuple_binds!(A.0, B.1, C.2, D.3, E.4, F.5);
tuple_binds!(A.0, B.1, C.2, D.3, E.4, F.5, G.6);
tuple_binds!(A.0, B.1, C.2, D.3, E.4, F.5, G.6, H.7);

impl<DB: Backend, B: Binds<DB>> QueryFragment<DB> for Kept<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let mut pieces = self.sql.split('?');
        self.binds.walk(&mut pieces, &mut out)?;
        let rest = pieces.next().unwrap_or("");
        if pieces.next().is_some() {
            return Err(diesel::result::Error::QueryBuilderError(
                "fewer binds than `?` in a statement".into(),
            ));
        }
        out.push_sql(rest);
        Ok(())
    }
}

// Not a static id: the cache is keyed by the rendered text, which differs per statement.
impl<B> QueryId for Kept<B> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B> Query for Kept<B> {
    type SqlType = Untyped;
}

impl<B, Conn> RunQueryDsl<Conn> for Kept<B> {}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::{BigInt, Text};
    use diesel::{Connection, QueryableByName, SqliteConnection};

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Text)]
        s: String,
    }

    #[test]
    fn binds_fill_the_question_marks_in_order_and_counts_must_match() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE t (n INTEGER, s TEXT)")
            .unwrap();
        for i in 0..3_i64 {
            kept(
                "INSERT INTO t (n, s) VALUES (?, ?)",
                (bind::<BigInt, _>(i), bind::<Text, _>(format!("v{i}"))),
            )
            .execute(&mut c)
            .unwrap();
        }
        let updated = kept(
            "UPDATE t SET s = ? WHERE n >= ?",
            (bind::<Text, _>("late"), bind::<BigInt, _>(1_i64)),
        )
        .execute(&mut c)
        .unwrap();
        assert_eq!(updated, 2);
        let rows: Vec<Row> = kept(
            "SELECT n, s FROM t WHERE n < ? ORDER BY n",
            (bind::<BigInt, _>(2_i64),),
        )
        .load(&mut c)
        .unwrap();
        assert_eq!(
            rows,
            vec![
                Row {
                    n: 0,
                    s: "v0".into()
                },
                Row {
                    n: 1,
                    s: "late".into()
                }
            ]
        );
        let too_few = kept(
            "SELECT n, s FROM t WHERE n = ? AND s = ?",
            (bind::<BigInt, _>(1_i64),),
        )
        .load::<Row>(&mut c);
        assert!(too_few.is_err());
        let too_many = kept(
            "SELECT n, s FROM t WHERE n = ?",
            (bind::<BigInt, _>(1_i64), bind::<BigInt, _>(2_i64)),
        )
        .load::<Row>(&mut c);
        assert!(too_many.is_err());
    }
}
