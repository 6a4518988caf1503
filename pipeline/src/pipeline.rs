//! The staged pipeline: a fixed graph of concrete stages run in order over
//! each batch (parse → forwarding). Stages are fields, not a list of trait
//! objects, so the whole run compiles to direct calls.

use crate::batch::Batch;
use crate::frame::FrameMemory;
use crate::parse::Parse;
use crate::stage::Stage;
use crate::verdict::DropCounters;
use crate::xconnect::CrossConnect;

pub struct Pipeline {
    parse: Option<Parse>,
    xconnect: CrossConnect,
}

impl Pipeline {
    /// `parse = false` forwards frames without looking past the Ethernet
    /// header, as testpmd's io mode does.
    pub fn new(parse: bool, xconnect: CrossConnect) -> Self {
        Pipeline {
            parse: parse.then_some(Parse),
            xconnect,
        }
    }

    pub fn parses(&self) -> bool {
        self.parse.is_some()
    }

    /// Runs every stage over the batch. Afterwards each packet has a final
    /// verdict: forward, flood, local, or a counted drop.
    #[inline]
    pub fn run<M: FrameMemory + ?Sized>(
        &mut self,
        batch: &mut Batch,
        mem: &mut M,
        drops: &mut DropCounters,
    ) {
        if let Some(parse) = &mut self.parse {
            parse.process(batch, mem, drops);
        }
        self.xconnect.process(batch, mem, drops);
    }
}
