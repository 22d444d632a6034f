//! Nonblocking operations: [`Request`] handles and the borrowing [`Scope`].

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::comm::{CommInner, Status};
use crate::engine::{Completion, ReqId};
use crate::error::Result;

/// Turns a completion into the request's output.
pub(crate) type Finish<T> = fn(&CommInner, Completion) -> Result<T>;

/// A nonblocking send or receive in flight.
///
/// [`wait`](Request::wait) drives progress until it completes and yields its result: `()` for a
/// send, a [`Status`] for a receive into a buffer, `(Vec<T>, Status)` for an allocating receive,
/// `(T, Status)` for an object receive.
///
/// Dropping a request that has not completed lets go of it without losing data: a send goes on in
/// the background (copying whatever it still needed from the caller's buffer); an unmatched
/// receive is withdrawn, and a message it was receiving is kept for a later receive.
#[must_use = "a request does nothing unless waited on; drop it to let go"]
pub struct Request<'a, T> {
    comm: Arc<CommInner>,
    id: ReqId,
    finish: Finish<T>,
    live: bool,
    /// Collective traffic: errors are refined to name the member that failed first.
    group: bool,
    _borrow: PhantomData<&'a mut ()>,
}

impl<T> std::fmt::Debug for Request<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("id", &self.id).field("live", &self.live).finish()
    }
}

impl<'a, T> Request<'a, T> {
    pub(crate) fn new(comm: Arc<CommInner>, id: ReqId, finish: Finish<T>) -> Self {
        Request { comm, id, finish, live: true, group: false, _borrow: PhantomData }
    }

    pub(crate) fn on_group(mut self, group: bool) -> Self {
        self.group = group;
        self
    }

    fn refine(&self, e: crate::Error) -> crate::Error {
        if self.group {
            self.comm.refine(e)
        } else {
            e
        }
    }

    /// Waits for completion and returns the result.
    pub fn wait(mut self) -> Result<T> {
        let id = self.id;
        let c = self.comm.engine().wait_req(id, || format!("request {id}"));
        self.live = false;
        let c = c.map_err(|e| self.refine(e))?;
        (self.finish)(&self.comm, c)
    }

    /// Waits at most `timeout`: `Ok(Ok(value))` when the request completed, `Ok(Err(self))` (the
    /// request, still in flight) when the time ran out, `Err` when it failed.
    ///
    /// ```
    /// use std::time::Duration;
    /// rmpi::local::run(2, |world| {
    ///     if world.rank() == 0 {
    ///         let r = world.irecv::<u8>(1, 5)?;
    ///         // Nothing sent yet: the wait times out and hands the request back.
    ///         let r = r.wait_timeout(Duration::from_millis(20))?.unwrap_err();
    ///         world.send(&[0u8], 1, 6)?;
    ///         let (v, _) = r.wait()?;
    ///         assert_eq!(v, vec![9]);
    ///     } else {
    ///         world.recv::<u8>(0, 6)?;
    ///         world.send(&[9u8], 0, 5)?;
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), rmpi::Error>(())
    /// ```
    pub fn wait_timeout(
        mut self,
        timeout: std::time::Duration,
    ) -> Result<std::result::Result<T, Self>> {
        let id = self.id;
        let deadline = std::time::Instant::now() + timeout;
        let done = self.comm.engine().wait_req_until(id, deadline, || format!("request {id}"));
        match done {
            Ok(c) => {
                self.live = false;
                let c = c.map_err(|e| self.refine(e))?;
                Ok(Ok((self.finish)(&self.comm, c)?))
            }
            Err(crate::Error::Timeout { .. }) => Ok(Err(self)),
            Err(e) => Err(self.refine(e)),
        }
    }

    /// Makes progress and tells whether [`wait`](Self::wait) would return at once.
    pub fn is_complete(&self) -> bool {
        self.comm.engine().with_fresh_state(|st| st.is_done(self.id))
    }

    /// Waits for every request, in order, and returns their results (the first error wins, after
    /// every request has been waited for or let go of).
    pub fn wait_all(reqs: Vec<Request<'a, T>>) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(reqs.len());
        let mut first_err = None;
        for r in reqs {
            match r.wait() {
                Ok(v) => out.push(v),
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Waits until any one request completes; returns its index and result, and the others.
    ///
    /// # Panics
    /// Never; an empty list returns `None`.
    pub fn wait_any(
        mut reqs: Vec<Request<'a, T>>,
    ) -> Option<(usize, Result<T>, Vec<Request<'a, T>>)> {
        if reqs.is_empty() {
            return None;
        }
        let ids: Vec<ReqId> = reqs.iter().map(|r| r.id).collect();
        let engine = reqs[0].comm.engine();
        let found = engine.wait(
            None,
            || "any of several requests".into(),
            |st| ids.iter().position(|id| st.is_done(*id)).map(Ok),
        );
        let i = match found {
            Ok(i) => i,
            Err(e) => return Some((0, Err(e), reqs)),
        };
        let r = reqs.remove(i);
        Some((i, r.wait(), reqs))
    }
}

impl<T> Drop for Request<'_, T> {
    fn drop(&mut self) {
        if self.live {
            let id = self.id;
            self.comm.engine().with_state(|st| st.cancel(id));
        }
    }
}

/// A region in which nonblocking operations may borrow caller buffers without copying.
///
/// Created by [`Communicator::scope`](crate::Communicator::scope). When the scope ends, every
/// request made in it that is still in flight is let go of (as when a [`Request`] is dropped), so
/// no borrowed buffer is used after the scope, even if a request was leaked with `mem::forget`.
pub struct Scope<'scope, 'env: 'scope> {
    pub(crate) comm: Arc<CommInner>,
    pub(crate) ctx: u32,
    pub(crate) ids: Rc<RefCell<Vec<ReqId>>>,
    pub(crate) _scope: PhantomData<&'scope mut &'scope ()>,
    pub(crate) _env: PhantomData<&'env mut &'env ()>,
}

impl Scope<'_, '_> {
    pub(crate) fn track(&self, id: ReqId) {
        self.ids.borrow_mut().push(id);
    }
}

/// Lets go of a scope's requests when the scope ends, normally or by a panic.
pub(crate) struct ScopeGuard {
    pub(crate) comm: Arc<CommInner>,
    pub(crate) ids: Rc<RefCell<Vec<ReqId>>>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.borrow_mut());
        if ids.is_empty() {
            return;
        }
        // Letting go needs no progress pass first (it only stops the engine borrowing memory),
        // and a request whose result was taken (the usual case: it was waited for) holds
        // nothing to let go of.
        self.comm.engine().locked(|st| {
            for id in ids {
                if st.is_open(id) {
                    st.cancel(id);
                }
            }
        });
    }
}

/// What a receive into a caller buffer yields.
pub(crate) fn finish_status(c: &CommInner, done: Completion) -> Result<Status> {
    Ok(c.status(done.info))
}

/// What a send yields.
pub(crate) fn finish_unit(_: &CommInner, _: Completion) -> Result<()> {
    Ok(())
}
