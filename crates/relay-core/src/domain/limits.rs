//! The bounds the core asks of every queue, in its own terms. Each queue adapter accepts at
//! least these: relay-aws checks them against SQS's quotas at compile time, and the local and
//! memory queues refuse what goes beyond them, as SQS would, so tests catch it before AWS does.

/// The longest delay the core sends a message with: a longer wait before a retry takes several
/// hops (`retry::messages_for_wait`). 15 minutes, the longest SQS delays a message.
pub const MAX_QUEUE_DELAY_SECS: u32 = 900;
/// The largest message a queue must carry: 1 MiB (the queues' `MaximumMessageSize` in
/// infra/template.yaml); `model::LARGEST_QUEUE_MESSAGE_BYTES` stays within it.
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 1_048_576;

/// The delay of a message sent with `delay_secs`, refused over `MAX_QUEUE_DELAY_SECS`; the
/// queues that imitate SQS (local, memory) check it here.
pub fn queue_delay(delay_secs: u32) -> Result<std::time::Duration, DelayTooLong> {
    if delay_secs > MAX_QUEUE_DELAY_SECS {
        return Err(DelayTooLong { delay_secs });
    }
    Ok(std::time::Duration::from_secs(u64::from(delay_secs)))
}

/// A message delay over `MAX_QUEUE_DELAY_SECS` (a queue refuses the send, as SQS does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("delay {delay_secs} s is over the queue limit of {MAX_QUEUE_DELAY_SECS} s")]
pub struct DelayTooLong {
    pub delay_secs: u32,
}
