//! Waking the file lock's waiters when the lock frees, one at a time and in the order
//! they came, instead of each polling it (docs/decisions/0007-file-lock.md, "Waking
//! waiters").
//!
//! A waiter that finds the lock held takes a ticket,
//! `.locks/queue/ticket-<number>-<pid>-<nonce>` (its registration, which `inspect`
//! lists, is `.locks/waiter-<pid>-<nonce>.json`), numbered one past the highest ticket
//! there (two taken at the same instant share a number and are ordered by the rest of
//! their names), on which it keeps an exclusive OS advisory lock until it leaves the
//! queue — it took the lock, or gave up. It waits for the ticket just ahead of its own
//! by asking for a shared lock of it, which the kernel grants when that waiter leaves
//! or dies; it then looks again at the tickets ahead, and when there are none it is the
//! head of the queue. So a waiter's turn comes after every one that came before it,
//! whatever order the kernel wakes processes in, and each departure wakes exactly the
//! next in line.
//!
//! The head is the only waiter that watches the holder: it blocks on a shared lock of
//! the holder's liveness file (`.locks/live-<lockId>`), which the holder keeps
//! exclusively until it has removed `.lock`, and which the kernel lets go when the
//! holder dies. So a release or a death wakes one waiter at once, and a thousand
//! waiters cost the kernel a queue rather than a thousand polls of `.lock`.
//!
//! A leaving waiter removes its ticket before it lets its lock go, so the one behind it
//! sees the ticket gone; a ticket still there once its lock is free belonged to a
//! process that died, and the one behind removes it and the dead one's registration:
//! neither piles up.
//!
//! None of this decides who holds the lock — creating `.lock` by link does — so it can
//! only make waiting quicker: the head looks at `.lock` every retry interval (a stopped
//! or remote holder's expiry), a waiter behind it looks when the lock has not changed
//! hands for a whole floor (the head, or a waiter ahead, stopped by SIGSTOP or a
//! debugger), every waiter looks at its deadline, and a file system without advisory
//! locks falls back to polling. The blocking calls run on threads of their own, never
//! the runtime's: a waiter that gives up leaves its thread behind, which ends when the
//! waiter ahead of it leaves, and an exiting process does not wait for it.

use std::ffi::OsString;
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::fs::atomic::DIR_MODE;
use crate::fs::vfs::Vfs;

/// The directory of the tickets, in `.locks/`: apart from the files every holder
/// creates and removes, so that listing a thousand tickets never holds up a holder.
pub(crate) const QUEUE_DIR_NAME: &str = "queue";

/// How every ticket's name starts.
const TICKET_PREFIX: &str = "ticket-";

/// The digits of a ticket's number, zero-padded so that names sort as numbers do.
const NUMBER_DIGITS: usize = 20;

/// How many tickets a waiter takes before it polls instead: a ticket is taken again
/// only when one behind mistook it, in the instant between its creation and its lock,
/// for a dead waiter's.
const TICKET_ATTEMPTS: usize = 3;

/// How often a waiter behind the head checks that the lock changes hands: only a
/// waiter ahead (or a holder) that is stopped (SIGSTOP, a debugger) keeps it still
/// that long.
pub(crate) const BEHIND_THE_HEAD_FLOOR: Duration = Duration::from_secs(2);

/// Whether any waiter is queued for the lock whose files are in `locks_dir`. A
/// newcomer that finds the queue empty tries for the lock at once; one that finds it
/// not empty lines up without trying, so that it never takes the lock from under the
/// head in the instant between two holders. A queue directory that is not there or
/// cannot be read says no (the lock itself then says whether it is held).
pub(crate) fn anyone_queued(vfs: &dyn Vfs, locks_dir: &Path) -> bool {
    vfs.list_dir(&locks_dir.join(QUEUE_DIR_NAME))
        .is_ok_and(|names| names.iter().any(|name| ticket_name(name).is_some()))
}

/// Makes `.locks/queue/` in `locks_dir` if it is missing: the holder of the lock does,
/// so that the waiters who queue behind it add no directory to the store.
///
/// # Errors
/// Creating the directory, but for its being there already.
pub(crate) fn ensure_queue_dir(vfs: &dyn Vfs, locks_dir: &Path) -> io::Result<()> {
    match vfs.create_dir(&locks_dir.join(QUEUE_DIR_NAME), DIR_MODE) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => Err(error),
        _ => Ok(()),
    }
}

/// The tickets in `queue_dir`.
fn tickets(vfs: &dyn Vfs, queue_dir: &Path) -> io::Result<Vec<String>> {
    Ok(vfs
        .list_dir(queue_dir)?
        .iter()
        .filter_map(|name| ticket_name(name).map(str::to_owned))
        .collect())
}

/// `name` if it is a ticket's: the prefix, a number of [`NUMBER_DIGITS`] digits, `-`
/// and the rest.
fn ticket_name(name: &OsString) -> Option<&str> {
    let name = name.to_str()?;
    let number = name.strip_prefix(TICKET_PREFIX)?.get(..=NUMBER_DIGITS)?;
    let (digits, dash) = number.split_at(NUMBER_DIGITS);
    (dash == "-" && digits.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// The name of the registration (`inspect` lists them) of `waiter`, `<pid>-<nonce>`:
/// the waiter behind one that died removes it with the dead one's ticket.
pub(crate) fn registration_name(waiter: &str) -> String {
    format!("waiter-{waiter}.json")
}

/// The registration of the waiter whose ticket is `name` (a [`ticket_name`]).
fn registration_of(name: &str) -> String {
    registration_name(&name[TICKET_PREFIX.len() + NUMBER_DIGITS + 1..])
}

/// The number of the ticket `name` (a [`ticket_name`]).
fn ticket_number(name: &str) -> u64 {
    name[TICKET_PREFIX.len()..][..NUMBER_DIGITS]
        .parse()
        .unwrap_or(u64::MAX)
}

/// Whether the file `file` was opened as has no name left: its owner removed it.
fn unlinked(file: &File) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        Ok(file.metadata()?.nlink() == 0)
    }
    #[cfg(not(unix))]
    {
        // No link count to read: taken for still there, so the waiter behind removes
        // it, which for a ticket its owner removed finds nothing to remove.
        let _ = file;
        Ok(false)
    }
}

/// A waiter's ticket, locked exclusively from just after it appears until it is
/// dropped, which removes it first and then lets the lock go.
#[derive(Debug)]
pub(crate) struct Ticket {
    vfs: Arc<dyn Vfs>,
    path: PathBuf,
    name: String,
    /// Held for its OS lock; closed after the removal, in `drop`.
    file: Option<File>,
}

impl Ticket {
    /// Takes a ticket behind every ticket queued for the lock whose files are in
    /// `locks_dir`, for `waiter` (`<pid>-<nonce>`, as in its [`registration_name`]);
    /// blocking file I/O.
    ///
    /// # Errors
    /// Creating or listing `.locks/queue/`, creating or locking the ticket: the queue
    /// cannot be kept here.
    pub(crate) fn take(vfs: &Arc<dyn Vfs>, locks_dir: &Path, waiter: &str) -> io::Result<Self> {
        // The holder makes `.locks/queue/` ([`ensure_queue_dir`]); a waiter never does,
        // so that a command that only waits (a read) adds nothing to a store. Without
        // it (a lock taken by an older build, or a lock file put there by hand) the
        // waiter polls.
        let queue_dir = locks_dir.join(QUEUE_DIR_NAME);
        // Tickets taken for a dead waiter's are kept (and so listed) until a new one is
        // taken: the new one is numbered past them, so its name is not the one the
        // waiter behind is about to remove.
        let mut mistaken = Vec::new();
        loop {
            let number = tickets(vfs.as_ref(), &queue_dir)?
                .iter()
                .map(|name| ticket_number(name))
                .max()
                .map_or(1, |highest| highest.saturating_add(1));
            let name = format!("{TICKET_PREFIX}{number:0width$}-{waiter}", width = NUMBER_DIGITS);
            let path = queue_dir.join(&name);
            let ticket = Self {
                vfs: Arc::clone(vfs),
                file: Some(vfs.open_lock_file(&path)?),
                path,
                name,
            };
            let file = ticket.file.as_ref().expect("set just above");
            match file.try_lock() {
                // Removed in the instant before the lock by one behind that took it for
                // a dead waiter's (or being looked at by it now): take another.
                Ok(()) if unlinked(file)? => {}
                Ok(()) => return Ok(ticket),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(error)) => return Err(error),
            }
            mistaken.push(ticket);
            if mistaken.len() == TICKET_ATTEMPTS {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "each new ticket was taken for a dead waiter's",
                ));
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Removed before its lock goes: the waiter behind, granted the lock, finds the
        // ticket gone and knows this one left rather than died.
        let _ = self.vfs.remove_file(&self.path);
        drop(self.file.take());
    }
}

/// A waiter's place in the queue of one lock.
#[derive(Debug)]
pub(crate) struct Queue {
    locks_dir: PathBuf,
    place: Place,
    /// The holder the head watches, and the news of its release.
    watched: Option<(String, oneshot::Receiver<()>)>,
    /// The holder of the lock when this waiter, behind the head, last checked that the
    /// lock changes hands (`Some(None)`: nobody).
    holder_seen: Option<Option<String>>,
}

#[derive(Debug)]
enum Place {
    /// Not in the queue yet.
    Outside,
    /// Behind others; the thread waiting for them says when this waiter is the head.
    Behind {
        ticket: Ticket,
        turn: oneshot::Receiver<io::Result<()>>,
    },
    /// At the head: nobody ahead.
    Head(#[allow(dead_code, reason = "held for its OS lock, removed on drop")] Ticket),
    /// The queue cannot be kept here (no advisory locks, no thread): poll.
    Unavailable,
}

impl Queue {
    /// A place outside the queue of the lock whose files are in `locks_dir`.
    pub(crate) fn new(locks_dir: &Path) -> Self {
        Self {
            locks_dir: locks_dir.to_owned(),
            place: Place::Outside,
            watched: None,
            holder_seen: None,
        }
    }

    /// Whether others are ahead of this waiter: it does not try for the lock when it
    /// frees, which is the head's turn.
    pub(crate) fn behind(&self) -> bool {
        matches!(self.place, Place::Behind { .. })
    }

    /// Lines up with the ticket `taken` ([`Ticket::take`]); a ticket that could not be
    /// taken leaves this waiter polling, as before there was a queue.
    pub(crate) fn join(&mut self, taken: io::Result<Ticket>, vfs: &Arc<dyn Vfs>) {
        let ticket = match taken {
            Ok(ticket) => ticket,
            Err(error) => {
                tracing::debug!(%error, dir = %self.locks_dir.display(), "no lock queue; polling");
                self.place = Place::Unavailable;
                return;
            }
        };
        let (turn_sender, turn) = oneshot::channel();
        let (vfs, locks_dir, mine) = (Arc::clone(vfs), self.locks_dir.clone(), ticket.name.clone());
        let spawned = std::thread::Builder::new()
            .name("checklist-lock-queue".into())
            .spawn(move || wait_for_turn(vfs.as_ref(), &locks_dir, &mine, turn_sender));
        self.place = match spawned {
            Ok(_) => Place::Behind { ticket, turn },
            Err(_) => Place::Unavailable,
        };
    }

    /// How long this waiter may go without trying for the lock (the head) or checking
    /// that it changes hands (a waiter behind it).
    pub(crate) fn floor(&self, retry_interval: Duration) -> Duration {
        match self.place {
            Place::Outside | Place::Behind { .. } => BEHIND_THE_HEAD_FLOOR.max(retry_interval),
            Place::Head(_) | Place::Unavailable => retry_interval,
        }
    }

    /// Whether the lock, held now by `holder` (its lock id; `None`: nobody; `Err`: the
    /// lock could not be read), has not changed hands since this waiter, behind the
    /// head, last asked, a floor ago: then a waiter ahead is stopped (or the holder is),
    /// and this one tries for the lock itself rather than wait for them. Checking the
    /// holder rather than the queue reads one small file instead of listing a thousand
    /// tickets.
    pub(crate) fn stuck<E>(&mut self, holder: Result<Option<String>, E>) -> bool {
        let Ok(holder) = holder else { return true };
        let stuck = self.holder_seen.as_ref() == Some(&holder);
        self.holder_seen = Some(holder);
        stuck
    }

    /// Resolves when the lock held by `holder` (its lock id; `None`: a lock that cannot
    /// be read, which only its expiry frees) may have been let go, or when this waiter
    /// has just become the head of the queue and should look again. Cancellation-safe:
    /// dropped half-way, it keeps its place.
    pub(crate) async fn woken(&mut self, holder: Option<&str>) {
        match &mut self.place {
            Place::Behind { turn, .. } => {
                let outcome = turn.await;
                let Place::Behind { ticket, .. } = std::mem::replace(&mut self.place, Place::Unavailable)
                else {
                    unreachable!("matched just above");
                };
                self.place = match outcome {
                    Ok(Ok(())) => Place::Head(ticket),
                    Ok(Err(error)) => {
                        tracing::debug!(%error, dir = %self.locks_dir.display(), "no lock queue; polling");
                        Place::Unavailable
                    }
                    Err(_) => Place::Unavailable,
                };
                // The holder may have changed while this waiter queued: look again.
            }
            Place::Head(_) => {
                let Some(holder) = holder else {
                    return std::future::pending().await;
                };
                if self.watched.as_ref().is_none_or(|(watched, _)| watched != holder) {
                    self.watched = Some((holder.to_owned(), self.watch(holder)));
                }
                let (_, released) = self.watched.as_mut().expect("set just above");
                // A watch that could not be kept (no thread) resolves at once; the
                // caller then looks, and its floor bounds how often.
                let _ = released.await;
                self.watched = None;
            }
            Place::Outside | Place::Unavailable => std::future::pending().await,
        }
    }

    /// Starts a thread that blocks on a shared lock of `holder`'s liveness file and
    /// says when it has it: the holder has let the lock go, or died. A liveness file
    /// already gone means the holder has released.
    fn watch(&self, holder: &str) -> oneshot::Receiver<()> {
        let (released, news) = oneshot::channel();
        let path = self.locks_dir.join(format!("live-{holder}"));
        let _ = std::thread::Builder::new()
            .name("checklist-lock-watch".into())
            .spawn(move || {
                // Opened for reading only, never created: a liveness file that is not
                // there is not made again for nobody to remove.
                if let Ok(file) = File::open(&path) {
                    let _ = file.lock_shared();
                }
                let _ = released.send(());
            });
        news
    }
}

/// Waits, on a thread of its own, until no ticket queued for the lock whose files are in
/// `locks_dir` is ahead of `mine`, and says so on `turn` (or why the queue cannot be
/// kept). Ends early when the waiter gave up (dropped the receiver).
fn wait_for_turn(vfs: &dyn Vfs, locks_dir: &Path, mine: &str, turn: oneshot::Sender<io::Result<()>>) {
    let queue_dir = locks_dir.join(QUEUE_DIR_NAME);
    let outcome = loop {
        if turn.is_closed() {
            return;
        }
        let ahead = match tickets(vfs, &queue_dir) {
            Ok(names) => names.into_iter().filter(|name| name.as_str() < mine).max(),
            Err(error) => break Err(error),
        };
        let Some(ahead) = ahead else { break Ok(()) };
        let path = queue_dir.join(&ahead);
        // Opened for reading only, never created: a ticket gone is not made again.
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => break Err(error),
        };
        if let Err(error) = file.lock_shared() {
            break Err(error);
        }
        match unlinked(&file) {
            Ok(true) => {}
            // Its lock is free and it is still there: its waiter died without leaving.
            // Removed here with the dead waiter's registration, so that neither piles
            // up; a ticket that cannot be removed would be found ahead again and again,
            // so the queue is given up.
            Ok(false) => match vfs.remove_file(&path) {
                Ok(()) => {
                    let _ = vfs.remove_file(&locks_dir.join(registration_of(&ahead)));
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => break Err(error),
            },
            Err(error) => break Err(error),
        }
    };
    let _ = turn.send(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_names_are_tickets_and_they_sort_by_number() {
        let name = |s: &str| OsString::from(s);
        assert_eq!(
            ticket_name(&name("ticket-00000000000000000042-7-ab")),
            Some("ticket-00000000000000000042-7-ab")
        );
        assert_eq!(ticket_name(&name("ticket-42-7-ab")), None);
        assert_eq!(ticket_name(&name("ticket-0000000000000000004x-7-ab")), None);
        assert_eq!(ticket_name(&name("ticket-00000000000000000042")), None);
        assert_eq!(ticket_name(&name("waiter-1-ab.json")), None);
        assert_eq!(ticket_number("ticket-00000000000000000042-7-ab"), 42);
        assert_eq!(
            registration_of("ticket-00000000000000000042-7-ab"),
            "waiter-7-ab.json"
        );
        assert!("ticket-00000000000000000009-99-ff" < "ticket-00000000000000000010-1-00");
    }
}
