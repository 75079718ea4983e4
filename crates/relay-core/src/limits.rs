//! Amazon SQS's documented quotas, in one place for the core and both queue adapters (the local
//! queue imitates them). Source: Amazon SQS Developer Guide, "Amazon SQS message quotas".

/// A message's delay (`DelaySeconds`) is at most 15 minutes.
pub const SQS_MAX_DELAY_SECS: u32 = 900;
/// A visibility timeout is at most 12 hours, counted from the receive.
pub const SQS_MAX_VISIBILITY_SECS: u32 = 12 * 3600;
/// A long poll waits at most 20 seconds.
pub const SQS_MAX_WAIT_SECS: u32 = 20;
/// A message is at most 1 MiB (the queues' `MaximumMessageSize` in infra/template.yaml).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1_048_576;

/// The delay of a message sent with `delay_secs`, refused over `SQS_MAX_DELAY_SECS` as SQS
/// refuses it; the queues that imitate SQS (local, memory) check it here.
pub fn sqs_delay(delay_secs: u32) -> Result<std::time::Duration, crate::ports::QueueError> {
    if delay_secs > SQS_MAX_DELAY_SECS {
        return Err(crate::ports::QueueError::Unavailable(format!(
            "delay {delay_secs} s is over the SQS limit of {SQS_MAX_DELAY_SECS} s"
        )));
    }
    Ok(std::time::Duration::from_secs(u64::from(delay_secs)))
}
