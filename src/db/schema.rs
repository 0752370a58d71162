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

diesel::table! {
    engine_events (id) {
        id -> BigInt,
        kind -> Text,
        case_id -> Nullable<BigInt>,
        alert_id -> Nullable<BigInt>,
        details -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    playbook_definitions (hash) {
        hash -> Text,
        playbook_id -> Text,
        version -> Integer,
        definition -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    playbook_runs (id) {
        id -> BigInt,
        playbook_id -> Text,
        playbook_version -> Integer,
        definition_hash -> Text,
        case_id -> Nullable<BigInt>,
        trigger_kind -> Text,
        trigger_data -> Text,
        inputs -> Text,
        requested_by -> Text,
        parent_step_run_id -> Nullable<BigInt>,
        status -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        wake_at -> Nullable<Timestamp>,
        signal -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        cancel_requested_at -> Nullable<Timestamp>,
        cancel_requested_by -> Nullable<Text>,
    }
}

diesel::table! {
    step_runs (id) {
        id -> BigInt,
        run_id -> BigInt,
        step_id -> Text,
        item_index -> Integer,
        status -> Text,
        attempts -> Integer,
        item -> Nullable<Text>,
        items -> Nullable<Text>,
        input -> Nullable<Text>,
        output -> Nullable<Text>,
        error -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        child_run_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        next_attempt_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    approval_gates (id) {
        id -> BigInt,
        run_id -> BigInt,
        step_id -> Text,
        case_id -> Nullable<BigInt>,
        action -> Text,
        status -> Text,
        message -> Text,
        approvers -> Text,
        required -> Integer,
        requested_by -> Text,
        escalation_level -> Integer,
        created_at -> Timestamp,
        deadline_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        outcome_reason -> Nullable<Text>,
        target -> Nullable<Text>,
        kind -> Text,
    }
}

diesel::table! {
    approval_decisions (id) {
        id -> BigInt,
        gate_id -> BigInt,
        user_id -> BigInt,
        decision -> Text,
        comment -> Nullable<Text>,
        channel -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    playbook_schedules (playbook_id) {
        playbook_id -> Text,
        schedule -> Text,
        next_fire_at -> Timestamp,
    }
}

diesel::table! {
    email_outbox (id) {
        id -> BigInt,
        recipients -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Nullable<Text>,
        origin -> Text,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        next_attempt_at -> Nullable<Timestamp>,
        sent_at -> Nullable<Timestamp>,
        gate_id -> Nullable<BigInt>,
        user_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    approval_links (id) {
        id -> BigInt,
        gate_id -> BigInt,
        user_id -> BigInt,
        outbox_id -> Nullable<BigInt>,
        token_hash -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(case_tags -> cases (case_id));
diesel::joinable!(case_comments -> cases (case_id));
diesel::joinable!(alerts -> cases (case_id));
diesel::joinable!(alerts -> sources (source_id));
diesel::joinable!(alert_observables -> alerts (alert_id));
diesel::joinable!(step_runs -> playbook_runs (run_id));
diesel::joinable!(approval_gates -> playbook_runs (run_id));
diesel::joinable!(approval_decisions -> approval_gates (gate_id));
diesel::joinable!(approval_decisions -> users (user_id));
diesel::joinable!(approval_links -> approval_gates (gate_id));
diesel::joinable!(approval_links -> users (user_id));
diesel::joinable!(email_outbox -> approval_gates (gate_id));
diesel::joinable!(email_outbox -> users (user_id));

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
    engine_events,
    playbook_definitions,
    playbook_runs,
    step_runs,
    approval_gates,
    approval_decisions,
    playbook_schedules,
    email_outbox,
    approval_links,
);

// Console: runs and playbooks (playbook enable/disable).
diesel::table! {
    playbook_switches (playbook_id) {
        playbook_id -> Text,
        disabled_at -> Nullable<Timestamp>,
        changed_by -> Text,
        changed_at -> Timestamp,
    }
}
