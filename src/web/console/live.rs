//! `GET /live`: the change feed as Server-Sent Events, for signed-in console pages. Each
//! page's script decides from the changes whether what it shows is stale and, if so,
//! fetches itself again (see `frontend/static/tocsin.js`).

use super::page::SignedIn;
use crate::live::Change;
use crate::web::AppState;
use actix_web::web::Bytes;
use actix_web::{get, web, HttpResponse};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// A comment line this often keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// Registers the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(live);
}

#[get("/live")]
async fn live(state: web::Data<AppState>, _session: SignedIn) -> HttpResponse {
    let sub = state.live.subscribe();
    let hello = Bytes::from_static(b"retry: 3000\nevent: hello\ndata: {}\n\n");
    let stream = futures_util::stream::unfold((sub, Some(hello)), |(mut sub, first)| async move {
        if let Some(first) = first {
            return Some((Ok::<_, actix_web::Error>(first), (sub, None)));
        }
        if *sub.closed.borrow() {
            return None;
        }
        let chunk = tokio::select! {
            received = sub.changes.recv() => match received {
                Ok(changes) => frame(&changes),
                // This follower fell behind: tell it to refresh everything.
                Err(RecvError::Lagged(_)) => frame(&Arc::new(vec![Change::bulk()])),
                Err(RecvError::Closed) => return None,
            },
            _ = tokio::time::sleep(HEARTBEAT) => Bytes::from_static(b": ping\n\n"),
            _ = sub.closed.changed() => return None,
        };
        Some((Ok(chunk), (sub, None)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

/// One SSE `changes` event; the data is a JSON array on one line.
fn frame(changes: &[Change]) -> Bytes {
    let json = serde_json::to_string(changes).unwrap_or_else(|_| "[]".into());
    Bytes::from(format!("event: changes\ndata: {json}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_one_event_with_json_on_one_line() {
        let text = frame(&[Change {
            action: "case.updated".into(),
            target: "case:3".into(),
            case: Some(3),
        }]);
        let text = std::str::from_utf8(&text).unwrap();
        assert!(text.starts_with("event: changes\ndata: ["), "{text}");
        assert!(text.ends_with("\n\n"));
        assert_eq!(text.matches('\n').count(), 3, "{text}");
    }
}
