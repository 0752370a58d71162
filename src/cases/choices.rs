//! What the queue's filters offer: the ingestion sources and the people cases can be
//! assigned to.

use super::CaseError;
use crate::db::schema::{sources, users};
use crate::db::DbConn;
use diesel::prelude::*;

/// Source names and active usernames, each sorted.
pub fn filter_choices(conn: &mut DbConn) -> Result<(Vec<String>, Vec<String>), CaseError> {
    let source_names = sources::table
        .order(sources::name)
        .select(sources::name)
        .load::<String>(conn)?;
    let usernames = users::table
        .filter(users::disabled_at.is_null())
        .order(users::username)
        .select(users::username)
        .load::<String>(conn)?;
    Ok((source_names, usernames))
}
