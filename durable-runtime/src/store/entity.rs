//! The store's side of durable entities: operation messages, the commit of a batch of
//! operations, and what is read back.
//!
//! An entity is a row (its id, its state as JSON, a version) plus a queue of operation messages.
//! Sending an operation is one write ([`Write::SignalEntity`](super::Write::SignalEntity)),
//! acknowledged once durable. Processing a batch of operations is one write too
//! ([`Write::Entity`](super::Write::Entity)): the new state, the consumed messages, the
//! signals the operations sent and the log of what ran commit in one transaction, fenced by the
//! entity's version and by the consumed messages still being there, so an operation is applied
//! exactly once whatever crashes around it.

use crate::payload::Payload;

/// An operation to queue for an entity.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEntityMessage {
    /// The addressee, `@name@key`.
    pub entity_id: String,
    /// The operation's name.
    pub operation: String,
    /// Its encoded input.
    pub input: Payload,
    /// Who sent it (an entity id, an instance id, or empty for a client), for the log.
    pub sender: String,
    /// When it was sent (ms since the epoch).
    pub created_ms: i64,
    /// Where its result goes (an orchestration's `call_entity`); `None` for a signal.
    pub reply: Option<EntityReply>,
}

/// The orchestration call an operation's result goes back to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntityReply {
    /// The calling instance.
    pub instance_id: String,
    /// Its run that made the call.
    pub execution_id: String,
    /// The call's task id.
    pub task_id: u64,
}

/// A queued operation, with its store-assigned id.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityMessage {
    /// Store-assigned id; ids only grow, so they are the arrival order.
    pub id: i64,
    /// The operation.
    pub message: NewEntityMessage,
}

/// The state an entity commits.
#[derive(Clone, Debug, PartialEq)]
pub enum EntityState {
    /// The entity has this state (JSON).
    Set(Payload),
    /// The entity has no state (never set, or deleted): its row stays, with its version, until
    /// purged.
    Deleted,
    /// The stored state stays as it is: the batch could not read it (it is corrupt, see
    /// [`EntitySnapshot::corrupt_state`]), and a corrupt row is kept for repair, never
    /// overwritten. An entity without a row gets none.
    Unchanged,
}

/// One line of an entity's bounded operation log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntityLogEntry {
    /// The operation's name.
    pub operation: String,
    /// Who sent it (an entity id, an instance id, or empty for a client).
    pub sender: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error, when it failed.
    pub error: Option<String>,
    /// When its batch committed (ms since the epoch).
    pub timestamp_ms: i64,
}

/// Everything one batch of operations on one entity changes, committed atomically.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityCommit {
    /// The entity.
    pub entity_id: String,
    /// The entity's name (the part of the id before the key), stored for listing.
    pub name: String,
    /// The version the batch was computed against (0: no row yet). Another version in the
    /// store refuses the write whole with [`StoreError::Fenced`](super::StoreError::Fenced);
    /// a committed batch increments it.
    pub expected_version: u64,
    /// The operation messages the batch consumed; each must still be there, or the write is
    /// refused whole with [`StoreError::MessagesGone`](super::StoreError::MessagesGone).
    pub consumed: Vec<i64>,
    /// The state after the batch.
    pub state: EntityState,
    /// The orchestration holding the entity's lock after the batch.
    pub locked_by: Option<String>,
    /// Operations the batch sends to entities (itself included).
    pub signals: Vec<NewEntityMessage>,
    /// Orchestrations the batch starts (each id must be new, or the write is refused whole
    /// with [`StoreError::InstanceExists`](super::StoreError::InstanceExists)); their
    /// `ExecutionStarted` messages are in the answer's [`EntityWork::messages`].
    pub starts: Vec<super::NewInstance>,
    /// The results going back to orchestrations that called operations of the batch: each
    /// becomes an `EntityOperationCompleted` / `EntityOperationFailed` message to the caller's
    /// run.
    pub responses: Vec<(EntityReply, Result<Payload, crate::failure::FailureDetails>)>,
    /// What ran, oldest first; the store keeps the last [`ENTITY_LOG_LEN`] lines.
    pub log: Vec<EntityLogEntry>,
    /// When the batch ran (ms since the epoch).
    pub timestamp_ms: i64,
}

/// The operation an orchestration's `lock_entities` sends to each entity it locks (answered
/// once the lock is granted). Reserved: clients and orchestrations cannot send it by name.
pub const LOCK_OPERATION: &str = "__durable.lock";

/// The operation that releases a lock (sent when the critical section ends, or by the store
/// when the orchestration holding or requesting the lock ends).
pub const UNLOCK_OPERATION: &str = "__durable.unlock";

/// How many operations an entity's log keeps.
pub const ENTITY_LOG_LEN: usize = 32;

/// An entity as stored, with the operations queued for it: what its worker loads.
///
/// A row that does not decode fails only itself: a corrupt state is reported in
/// [`corrupt_state`](Self::corrupt_state) (and [`state`](Self::state) is `None`), a corrupt
/// queued operation in [`corrupt`](Self::corrupt); the rest of the snapshot is read as usual.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntitySnapshot {
    /// Its state, if it has one (and it decodes).
    pub state: Option<Payload>,
    /// Why the stored state cannot be read (it is not JSON), naming the row; `None` if it can.
    pub corrupt_state: Option<String>,
    /// Its version (0: no row).
    pub version: u64,
    /// The orchestration holding its lock.
    pub locked_by: Option<String>,
    /// Its queued operations, oldest first.
    pub pending: Vec<EntityMessage>,
    /// Its queued operations whose rows do not decode, oldest first: the worker consumes them
    /// as failed (answering the caller when the reply can be read).
    pub corrupt: Vec<CorruptEntityMessage>,
}

/// A queued operation whose row does not decode, with what could be read of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CorruptEntityMessage {
    /// Its store-assigned id.
    pub id: i64,
    /// The operation's name, if it could be read.
    pub operation: Option<String>,
    /// Its sender, if it could be read.
    pub sender: Option<String>,
    /// Where its result goes, if it is a call and the reply could be read.
    pub reply: Option<EntityReply>,
    /// Whether only its input is unreadable (the rest of the row decodes).
    pub only_input: bool,
    /// What does not decode, naming the row.
    pub reason: String,
}

/// One entity as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityRecord {
    /// Its id, `@name@key`.
    pub entity_id: String,
    /// Its state, if it has one (and it decodes).
    pub state: Option<Payload>,
    /// Why its stored state cannot be read (it is not JSON), naming the row; `None` if it can.
    /// One such row is listed with it rather than failing the listing of every other entity.
    pub corrupt_state: Option<String>,
    /// How many batches of operations it committed.
    pub version: u64,
    /// Operations queued and not processed yet.
    pub pending_operations: u64,
    /// The orchestration holding its lock (a critical section), if one does.
    pub locked_by: Option<String>,
    /// When its last batch committed (ms since the epoch).
    pub updated_ms: i64,
}

/// Which entities to list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntityQuery {
    /// Only entities whose name starts with this.
    pub name_prefix: Option<String>,
    /// Only entities that have a state (not deleted or never set).
    pub with_state_only: bool,
    /// Only entities whose last batch committed at or after this time (ms since the epoch):
    /// the original's `lastOperationTimeFrom`.
    pub last_operation_from_ms: Option<i64>,
    /// Only entities whose last batch committed before this time (ms since the epoch): the
    /// original's `lastOperationTimeTo`.
    pub last_operation_to_ms: Option<i64>,
    /// Page size (0: the default, 100).
    pub page_size: usize,
    /// Where the page starts: the token of the previous page.
    pub continuation_token: Option<String>,
}

/// One page of entities, in id order.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityPage {
    /// The entities.
    pub entities: Vec<EntityRecord>,
    /// Pass it as [`EntityQuery::continuation_token`] for the next page; `None` at the end.
    pub continuation_token: Option<String>,
}

/// The work a committed entity write sent, with store-assigned ids.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntityWork {
    /// Operations queued for entities.
    pub signals: Vec<EntityMessage>,
    /// Results sent to orchestrations, and the starts of the orchestrations the batch started.
    pub messages: Vec<super::Message>,
}

/// A queued operation's row as read, each column either its text or why it could not be read:
/// both stores decode it with [`RawEntityMessage::decode`], so a corrupt row is reported the
/// same way by each.
pub(crate) struct RawEntityMessage {
    pub id: i64,
    pub operation: Result<String, String>,
    pub input: Result<String, String>,
    pub sender: Result<String, String>,
    pub created_ms: Result<i64, String>,
    pub reply: Result<Option<String>, String>,
}

impl RawEntityMessage {
    /// The message, or what could be read of it and why the rest could not.
    pub(crate) fn decode(
        self,
        entity_id: &str,
    ) -> Result<EntityMessage, Box<CorruptEntityMessage>> {
        let row = format!("entity_messages row {} (entity '{entity_id}')", self.id);
        let reply = self.reply.and_then(|reply| {
            reply
                .map(|text| {
                    serde_json::from_str::<EntityReply>(&text)
                        .map_err(|err| format!("its reply does not decode: {err}"))
                })
                .transpose()
        });
        let input = self.input.and_then(|text| {
            Payload::from_json(text).map_err(|err| format!("its input is not JSON: {err}"))
        });
        match (self.operation, input, self.sender, self.created_ms, reply) {
            (Ok(operation), Ok(input), Ok(sender), Ok(created_ms), Ok(reply)) => {
                Ok(EntityMessage {
                    id: self.id,
                    message: NewEntityMessage {
                        entity_id: entity_id.to_string(),
                        operation,
                        input,
                        sender,
                        created_ms,
                        reply,
                    },
                })
            }
            (operation, input, sender, created_ms, reply) => {
                let reasons: Vec<String> = [
                    operation.as_ref().err(),
                    input.as_ref().err(),
                    sender.as_ref().err(),
                    created_ms.as_ref().err(),
                    reply.as_ref().err(),
                ]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
                let only_input = input.is_err() && reasons.len() == 1;
                Err(Box::new(CorruptEntityMessage {
                    id: self.id,
                    operation: operation.ok(),
                    sender: sender.ok(),
                    reply: reply.ok().flatten(),
                    only_input,
                    reason: format!("{row} is corrupt: {}", reasons.join("; ")),
                }))
            }
        }
    }
}

/// Decodes an entity's stored state: `Err` says why it is not JSON, naming the row.
pub(crate) fn decode_state(entity_id: &str, text: String) -> Result<Payload, String> {
    Payload::from_json(text).map_err(|err| {
        format!("the stored state of entity '{entity_id}' (entities row) is not JSON: {err}")
    })
}

/// Where the idempotency keys of signals to `entity_id` are kept, in the table of the keys of
/// raised events (by instance id): a name no instance can have (instance ids cannot contain
/// `#`), so an instance's keys and an entity's never meet.
pub(crate) fn entity_key_scope(entity_id: &str) -> String {
    format!("#entity/{entity_id}")
}
