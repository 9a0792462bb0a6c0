//! The platform's location provider, injected like the clock. When the app does not pass a
//! fix with an arrival or a photo, the device asks the provider; no answer (no permission,
//! no signal, a failing provider) records no fix rather than failing the engineer's action.

use crate::order::GpsFix;

pub trait LocationSource: Send + Sync {
    /// The current fix, if the platform has a recent one.
    fn current_fix(&self) -> Option<GpsFix>;
}
