//! One connection to the server: the client, the task that drives it, and the
//! notifications it receives (`LISTEN`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use checklist_core::{Error, Result};
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, Client};

use super::server::Server;

/// What a session does with each notification it receives; called on the task that
/// drives the connection, so it must not block.
pub(crate) type OnNotification = Arc<dyn Fn() + Send + Sync>;

/// A connected session. Dropping it closes the connection.
pub(crate) struct Session {
    /// The client; statements on it run one after another.
    pub(crate) client: Client,
    /// Set once the connection has ended (closed, broken, the server gone).
    ended: Arc<AtomicBool>,
    /// This session's backend process and its start, as `pg_stat_activity` shows them.
    pub(crate) backend: BackendId,
}

/// A backend process of the server: its pid and start time, which together tell a
/// live session from a pid the server reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackendId {
    /// `pg_backend_pid()`.
    pub(crate) pid: i32,
    /// `backend_start` in `pg_stat_activity`.
    pub(crate) started: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("backend", &self.backend)
            .field("ended", &self.is_ended())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects to `server` (waiting at most its connect timeout plus `grace`), and
    /// learns the session's backend id; every notification the session receives (on
    /// the channels it `LISTEN`s to) calls `on_notification`.
    /// `location` names the store in errors.
    pub(crate) async fn connect(
        server: &Server,
        location: &str,
        grace: Duration,
        on_notification: Option<OnNotification>,
    ) -> Result<Self> {
        let limit = server
            .config()
            .get_connect_timeout()
            .copied()
            .unwrap_or(super::server::DEFAULT_CONNECT_TIMEOUT)
            + grace;
        let connected = tokio::time::timeout(limit, server.config().connect(server.tls())).await;
        let (client, mut connection) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(error)) => return Err(connect_error(location, error)),
            Err(_) => {
                return Err(Error::Backend {
                    backend: super::BACKEND_NAME.to_owned(),
                    operation: "connect to".to_owned(),
                    location: location.to_owned(),
                    source: format!(
                        "no answer within {} s; check that the server is up and reachable from here",
                        limit.as_secs()
                    )
                    .into(),
                });
            }
        };
        let ended = Arc::new(AtomicBool::new(false));
        let driver_ended = Arc::clone(&ended);
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        if let Some(notified) = &on_notification {
                            notified();
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(%error, "a PostgreSQL connection ended");
                        break;
                    }
                }
            }
            driver_ended.store(true, Ordering::Release);
        });
        let row = client
            .query_typed_one(
                "SELECT pg_backend_pid(), (SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid()))",
                &[],
            )
            .await
            .map_err(|error| connect_error(location, error))?;
        let backend = BackendId {
            pid: row.get(0),
            started: row
                .get::<_, Option<chrono::DateTime<chrono::Utc>>>(1)
                .unwrap_or_else(chrono::Utc::now),
        };
        Ok(Self {
            client,
            ended,
            backend,
        })
    }

    /// Whether the connection has ended; a session that has must not be used again.
    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire) || self.client.is_closed()
    }
}

fn connect_error(location: &str, error: tokio_postgres::Error) -> Error {
    Error::Backend {
        backend: super::BACKEND_NAME.to_owned(),
        operation: "connect to".to_owned(),
        location: location.to_owned(),
        source: explained(error),
    }
}

/// The server's or the driver's error with what to do about it, where that is clear
/// from its kind: the one sentence a person needs after "could not … <server>".
pub(crate) fn explained(error: tokio_postgres::Error) -> Box<dyn std::error::Error + Send + Sync> {
    use tokio_postgres::error::SqlState;
    let advice = match error.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            Some("check the user and the password (the URL, PGPASSWORD, ~/.pgpass or CHECKLIST_DATABASE_URL)")
        }
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => Some(
            "the role lacks a privilege on the schema or its tables: grant it, or have a role that may create \
             them run `init` once (createSchema)",
        ),
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
            Some("the database does not exist: check the URL")
        }
        Some(code) if *code == SqlState::QUERY_CANCELED => {
            Some("the statement took longer than the operation timeout")
        }
        Some(code) if *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CRASH_SHUTDOWN => {
            Some("the server is shutting down or restarting: run the command again once it is up")
        }
        Some(code) if *code == SqlState::TOO_MANY_CONNECTIONS => {
            Some("the server has no connection slot free: raise max_connections or put a pooler in front")
        }
        None if error.is_closed() => Some("the connection was closed: run the command again"),
        // The driver's own refusal before asking the server (it names no SQL state).
        None if chain(&error).contains("password missing") => Some(
            "no password was given: check the user and the password (PGPASSWORD, ~/.pgpass or CHECKLIST_DATABASE_URL)",
        ),
        None => Some("check that the server is up and reachable from here, and the URL"),
        _ => None,
    };
    let what = match error.as_db_error() {
        Some(db) => {
            let mut what = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                what.push_str(&format!(" ({detail})"));
            }
            what
        }
        None => chain(&error),
    };
    match advice {
        Some(advice) => format!("{what}; {advice}").into(),
        None => what.into(),
    }
}

/// `error` and its causes, `: `-separated (tokio-postgres keeps what went wrong in the
/// cause of a connection or configuration error).
fn chain(error: &tokio_postgres::Error) -> String {
    let mut what = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        what.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    what
}
