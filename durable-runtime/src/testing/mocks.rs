//! Replacing activities in a test, and asserting which ran.
//!
//! A mock is consulted by the runtime's own activity worker (per runtime, by the activity's
//! registered name), so a mocked activity goes through the same queue, result delivery and
//! commit as a real one; only the function body is swapped. The global registry is untouched:
//! other runtimes in the same test binary still run the real function.

use super::{TestError, TestRuntime};
use crate::failure::FailureDetails;
use crate::function::ActivityFn;
use crate::outcome::Outcome;
use crate::payload::Payload;
use crate::registry::registered_activity;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// An activity the runtime's workers started, in the order they started them.
#[derive(Clone, Debug)]
pub struct ActivityCall {
    /// The instance that scheduled it.
    pub instance_id: String,
    /// The activity's registered name.
    pub name: String,
    /// Its input, encoded (one input as itself, several as a JSON array, none as `null`).
    pub input: Payload,
}

impl ActivityCall {
    /// The input, decoded as `T`.
    pub fn input_as<T: DeserializeOwned>(&self) -> Result<T, TestError> {
        self.input.decode().map_err(|source| TestError::Decode {
            name: self.name.clone(),
            source,
        })
    }
}

impl TestRuntime {
    /// Replaces `activity` in this runtime: from now on the workers call `mock` with its
    /// decoded input instead of running it. `mock` returns what the activity would: its output,
    /// or a `Result` whose `Err` fails the task with its message. A panic in `mock` fails the
    /// task, as one in the activity would. Replaces an earlier mock of the same activity.
    ///
    /// ```
    /// use durable_runtime::prelude::*;
    /// use durable_runtime::testing::TestRuntime;
    ///
    /// #[activity]
    /// async fn charge(cents: u64) -> Result<String, String> {
    ///     unimplemented!("talks to the payment provider")
    /// }
    ///
    /// # async fn demo() -> Result<(), durable_runtime::testing::TestError> {
    /// let test = TestRuntime::new().await?;
    /// test.mock_activity(charge, |cents: u64| -> Result<String, String> {
    ///     if cents > 10_000 { Err("declined".into()) } else { Ok(format!("receipt-{cents}")) }
    /// })?;
    /// # test.shutdown().await; Ok(()) }
    /// ```
    pub fn mock_activity<F, M, H, R>(&self, activity: F, mock: H) -> Result<(), TestError>
    where
        F: ActivityFn<M>,
        H: Fn(F::Input) -> R + Send + Sync + 'static,
        R: Outcome<Ok = F::Output>,
    {
        let name = activity_name(activity)?;
        let mock = move |input: Payload| -> Result<Payload, FailureDetails> {
            let input: F::Input = input.decode().map_err(|err| {
                FailureDetails::new(format!(
                    "the input of mocked activity '{name}' does not decode: {err}"
                ))
            })?;
            let output = mock(input).into_outcome()?;
            Payload::encode(&output).map_err(|err| {
                FailureDetails::new(format!(
                    "the output of mocked activity '{name}' does not serialize: {err}"
                ))
            })
        };
        self.hooks.set_mock(name, Arc::new(mock));
        Ok(())
    }

    /// Replaces `activity` in this runtime by one that always fails with `message` (the
    /// orchestration sees a [`TaskFailed`](crate::TaskFailed) with it, and retries, if any,
    /// fail too).
    pub fn mock_activity_failure<F, M>(
        &self,
        activity: F,
        message: impl Into<String>,
    ) -> Result<(), TestError>
    where
        F: ActivityFn<M>,
    {
        let name = activity_name(activity)?;
        let failure = FailureDetails::new(message);
        self.hooks
            .set_mock(name, Arc::new(move |_| Err(failure.clone())));
        Ok(())
    }

    /// Runs the real `activity` again from now on.
    pub fn unmock_activity<F, M>(&self, activity: F) -> Result<(), TestError>
    where
        F: ActivityFn<M>,
    {
        self.hooks.remove_mock(activity_name(activity)?);
        Ok(())
    }

    /// Every activity the workers started so far (mocked or real), in the order they started,
    /// with their inputs. A retried activity appears once per attempt.
    pub fn activity_calls(&self) -> Vec<ActivityCall> {
        self.hooks
            .started()
            .into_iter()
            .map(|started| ActivityCall {
                instance_id: started.instance_id,
                name: started.name,
                input: started.input,
            })
            .collect()
    }

    /// The registered names of the activities started so far, in order.
    pub fn activity_names(&self) -> Vec<String> {
        self.hooks
            .started()
            .into_iter()
            .map(|started| started.name)
            .collect()
    }

    /// The inputs `activity` was started with so far, in order, decoded as its input type.
    pub fn calls_of<F, M>(&self, activity: F) -> Result<Vec<F::Input>, TestError>
    where
        F: ActivityFn<M>,
    {
        let name = activity_name(activity)?;
        self.activity_calls()
            .into_iter()
            .filter(|call| call.name == name)
            .map(|call| call.input_as())
            .collect()
    }
}

/// The registered name of an activity function.
fn activity_name<F: 'static>(activity: F) -> Result<&'static str, TestError> {
    registered_activity(activity)
        .map(|registered| registered.name)
        .ok_or(TestError::NotAnActivity(std::any::type_name::<F>()))
}
