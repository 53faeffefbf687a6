//! Where a paused execution lives.
//!
//! A pause keeps its wasm instance while few pauses hold one (resuming it
//! costs nothing), and beyond `max_live_paused` it is kept as its dump bytes
//! (a few KB) and its instance goes back to the pool: however many
//! conversations are paused, the instances they pin (memory, address space,
//! mappings) stay bounded. A hibernated execution is woken into any instance
//! when it is resumed, with the budgets it had already spent.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::bindings::GuestError;
use crate::control::{service_control, CallError};
use crate::engine;
use crate::instance::Instance;
use crate::pool;
use crate::settings::ExecLimits;

/// Where a paused execution lives.
pub enum Held {
    /// In its own instance, ready to resume at once.
    Live(PausedInstance),
    /// As its dump bytes (hibernated): woken into any instance on resume.
    Hibernated(Vec<u8>),
}

pub struct Paused {
    pub held: Held,
    pub limits: ExecLimits,
}

/// An instance that holds a paused execution. Counted, so the host keeps a
/// bounded number of them: beyond `max_live_paused`, new pauses hibernate.
pub struct PausedInstance(Option<Box<Instance>>);

static LIVE_PAUSED: AtomicUsize = AtomicUsize::new(0);

static MAX_LIVE_PAUSED: AtomicUsize = AtomicUsize::new(256);

impl PausedInstance {
    pub fn new(instance: Instance) -> Self {
        LIVE_PAUSED.fetch_add(1, Ordering::Relaxed);
        Self(Some(Box::new(instance)))
    }

    /// The instance, no longer counted as paused.
    pub fn into_instance(mut self) -> Option<Instance> {
        self.0.take().map(|instance| *instance)
    }

    /// Hands the instance to `f`, still counted as paused until `f` returns.
    pub fn finish_with(mut self, f: impl FnOnce(Instance)) {
        if let Some(instance) = self.0.take() {
            f(*instance);
        }
    }

    pub fn instance_mut(&mut self) -> Option<&mut Instance> {
        self.0.as_deref_mut()
    }
}

impl Drop for PausedInstance {
    fn drop(&mut self) {
        LIVE_PAUSED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a new pause may keep its instance.
pub fn may_stay_live() -> bool {
    LIVE_PAUSED.load(Ordering::Relaxed) < MAX_LIVE_PAUSED.load(Ordering::Relaxed)
}

/// Whether more pauses keep an instance than `max_live_paused` allows (a
/// pause kept live until its answer was out, to be hibernated after).
pub fn over_cap() -> bool {
    LIVE_PAUSED.load(Ordering::Relaxed) > MAX_LIVE_PAUSED.load(Ordering::Relaxed)
}

pub fn set_max_live_paused(max: usize) {
    MAX_LIVE_PAUSED.store(max, Ordering::Relaxed);
}

/// Paused executions holding an instance right now.
pub fn live_paused() -> usize {
    LIVE_PAUSED.load(Ordering::Relaxed)
}

/// Where a new pause is kept: in its instance while few pauses hold one,
/// otherwise as its dump bytes, the instance going back to the pool. This
/// bounds the instances (memory, address space, mappings) paused executions
/// pin, however many there are.
pub fn hold(instance: Instance) -> Result<Held, CallError> {
    if may_stay_live() {
        return Ok(Held::Live(PausedInstance::new(instance)));
    }
    hibernate(instance)
}

/// Keeps a paused execution as its dump bytes and returns its instance to
/// the pool (an execution that cannot be dumped keeps its instance).
pub fn hibernate(mut instance: Instance) -> Result<Held, CallError> {
    let ctl = service_control();
    match instance.dump_snapshot(&ctl)? {
        Ok(bytes) => {
            // The bytes hold the execution: an instance that cannot clear it
            // afterwards (a trap) is dropped, the execution is not.
            if instance.abandon(&ctl).is_ok() {
                pool::checkin(instance);
            }
            Ok(Held::Hibernated(bytes))
        }
        // Not dumpable: it keeps its instance.
        Err(_) => Ok(Held::Live(PausedInstance::new(instance))),
    }
}

/// The instance a paused execution runs in: its own, or one a hibernated
/// execution is loaded into.
pub fn wake(held: Held, limits: &ExecLimits) -> Result<Instance, Result<GuestError, CallError>> {
    match held {
        Held::Live(paused) => paused.into_instance().ok_or_else(|| {
            Ok(GuestError::Invalid(
                "internal: the paused execution lost its instance".to_owned(),
            ))
        }),
        Held::Hibernated(bytes) => {
            let runtime = engine::runtime().map_err(|message| Ok(GuestError::Invalid(message)))?;
            let mut instance = pool::checkout(&runtime, limits.untrusted)
                .map_err(|message| Ok(GuestError::Invalid(message)))?;
            let typed = limits.mounts.is_some();
            match instance.load_snapshot(&service_control(), &bytes, &limits.guest, typed) {
                Ok(Ok(_progress)) => Ok(instance),
                Ok(Err(error)) => Err(Ok(error)),
                Err(trap) => Err(Err(trap)),
            }
        }
    }
}

/// `wake`, in a slice (see `inline`): a hibernated execution is loaded into
/// a warm instance (a new one when untrusted: see `pool::checkout`) by guest
/// code, which yields at the tick like any other.
pub async fn wake_async(
    held: Held,
    limits: &ExecLimits,
) -> Result<Instance, Result<GuestError, CallError>> {
    match held {
        Held::Hibernated(bytes) => {
            // An untrusted execution (from an unsigned dump) wakes into a
            // new instance, like its first load.
            let mut instance = pool::checkout_async(limits.untrusted)
                .await
                .map_err(|message| Ok(GuestError::Invalid(message)))?;
            let typed = limits.mounts.is_some();
            match instance
                .load_snapshot_async(&service_control(), &bytes, &limits.guest, typed)
                .await
            {
                Ok(Ok(_progress)) => Ok(instance),
                Ok(Err(error)) => Err(Ok(error)),
                Err(trap) => Err(Err(trap)),
            }
        }
        live => wake(live, limits),
    }
}
