//! Table definitions shared by both backends (kept in step with `migrations/sqlite` and
//! `migrations/postgres`). Only types the multi-backend connection supports are used:
//! integers, text and timestamps; flags are nullable timestamps.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        email -> Nullable<Text>,
        role -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
        last_login_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        user_id -> BigInt,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_seen_at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        prefix -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    setup_tokens (token_hash) {
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        occurred_at -> Timestamp,
        actor_kind -> Text,
        actor_id -> Text,
        action -> Text,
        target -> Text,
        details -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    sources (id) {
        id -> BigInt,
        name -> Text,
        kind -> Text,
        token_hash -> Text,
        hmac_secret -> Nullable<Text>,
        config -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    cases (id) {
        id -> BigInt,
        title -> Text,
        status -> Text,
        disposition -> Nullable<Text>,
        severity -> Integer,
        assignee_id -> Nullable<BigInt>,
        correlation_key -> Text,
        source_id -> Nullable<BigInt>,
        alert_count -> Integer,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        acknowledged_at -> Nullable<Timestamp>,
        resolved_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
        ack_due_at -> Nullable<Timestamp>,
        resolve_due_at -> Nullable<Timestamp>,
        merged_into_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    case_tags (case_id, tag) {
        case_id -> BigInt,
        tag -> Text,
    }
}

diesel::table! {
    case_comments (id) {
        id -> BigInt,
        case_id -> BigInt,
        author -> Text,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    alerts (id) {
        id -> BigInt,
        case_id -> BigInt,
        source_id -> BigInt,
        fingerprint -> Text,
        class -> Text,
        severity -> Integer,
        state -> Text,
        title -> Text,
        description -> Nullable<Text>,
        vendor -> Text,
        product -> Text,
        rule_id -> Nullable<Text>,
        rule_name -> Nullable<Text>,
        external_id -> Nullable<Text>,
        event_time -> Nullable<Timestamp>,
        received_at -> Timestamp,
        last_seen_at -> Timestamp,
        occurrences -> Integer,
        tags -> Text,
        raw -> Text,
    }
}

diesel::table! {
    alert_observables (alert_id, kind, value, role) {
        alert_id -> BigInt,
        kind -> Text,
        value -> Text,
        role -> Text,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(case_tags -> cases (case_id));
diesel::joinable!(case_comments -> cases (case_id));
diesel::joinable!(alerts -> cases (case_id));
diesel::joinable!(alerts -> sources (source_id));
diesel::joinable!(alert_observables -> alerts (alert_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    api_tokens,
    setup_tokens,
    audit_events,
    audit_head,
    sources,
    cases,
    case_tags,
    case_comments,
    alerts,
    alert_observables,
);
