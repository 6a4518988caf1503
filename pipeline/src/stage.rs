//! The stage contract. `process` is generic over the frame memory, which
//! makes `Stage` impossible to use as a trait object: every stage call is
//! static, and the per-packet work inlines into the stage's own loop.

use crate::batch::Batch;
use crate::frame::FrameMemory;
use crate::verdict::DropCounters;

pub trait Stage {
    /// Runs over every packet of `batch` whose verdict is still
    /// `Pending`, setting verdicts and metadata; counts each drop it makes.
    fn process<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    );
}
