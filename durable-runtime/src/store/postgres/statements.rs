//! The statements the writer's sequential path (`apply`) and its pipelined path (`pipeline`)
//! share: one text each, so a connection prepares each once.

/// Reads (and locks) what `apply::instance_state` returns; the same statement in a pipeline.
pub(super) const INSTANCE_STATE: &str =
    "SELECT status, history_len, execution_id, parent_instance_id, parent_execution_id,
            parent_task_id
     FROM instances WHERE instance_id = $1 FOR UPDATE";

/// Inserts an instance row (`$1` id, `$2` name, `$3` version, `$4` status, `$5` created,
/// `$6` run, `$7`..`$9` parent), unless the id is taken.
pub(super) const INSERT_INSTANCE: &str = "INSERT INTO instances
     (instance_id, name, version, status, created_ms, updated_ms, history_len,
      execution_id, parent_instance_id, parent_execution_id, parent_task_id)
     VALUES ($1, $2, $3, $4, $5, $5, 0, $6, $7, $8, $9)
     ON CONFLICT DO NOTHING";

/// Inserts a message (`$1` instance, `$2` event, `$3` run); its id.
pub(super) const INSERT_MESSAGE: &str =
    "INSERT INTO messages (instance_id, event, execution_id) VALUES ($1, $2, $3)
             RETURNING id";

/// Inserts activities (`$1` instance, `$2` task ids, `$3` names, `$4` inputs, `$5` run); their ids and task ids.
pub(super) const INSERT_ACTIVITIES: &str =
    "INSERT INTO activities (instance_id, task_id, name, input, execution_id)
             SELECT $1, t, n, i, $5
             FROM unnest($2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS a(t, n, i, o)
             ORDER BY o
             RETURNING id, task_id";

/// Arms a timer (`$1` instance, `$2` task id, `$3` due, `$4` run); its id.
pub(super) const INSERT_TIMER: &str =
    "INSERT INTO timers (instance_id, task_id, fire_at_ms, execution_id)
             VALUES ($1, $2, $3, $4) RETURNING id";

/// Stores an instance's input.
pub(super) const INSERT_INPUT: &str =
    "INSERT INTO instance_inputs (instance_id, input) VALUES ($1, $2)";

/// Sets (or with NULL clears) an instance's custom status.
pub(super) const SET_CUSTOM_STATUS: &str =
    "UPDATE instances SET custom_status = $2 WHERE instance_id = $1";

/// Appends a step's events (`$1` instance, `$2` first position, `$3` time, `$4` events).
pub(super) const INSERT_HISTORY: &str =
    "INSERT INTO history (instance_id, seq, timestamp_ms, event)
             SELECT $1, $2 + n - 1, $3, e FROM unnest($4::text[]) WITH ORDINALITY AS t(e, n)";

/// A step's new status (`$2`), failure, time and history length.
pub(super) const SET_STATUS: &str =
    "UPDATE instances SET status = $2, failure = $3, updated_ms = $4, history_len = $5
             WHERE instance_id = $1";

/// Stores an instance's output.
pub(super) const SET_OUTPUT: &str =
    "INSERT INTO instance_outputs (instance_id, output) VALUES ($1, $2)
                 ON CONFLICT (instance_id) DO UPDATE SET output = EXCLUDED.output";

/// A step's new history length.
pub(super) const SET_HISTORY_LEN: &str =
    "UPDATE instances SET history_len = $2 WHERE instance_id = $1";

/// Deletes the rows `$1` of `table` that belong to instance `$2`; the ids deleted.
pub(super) fn delete_owned_sql(table: &str) -> String {
    format!("DELETE FROM {table} WHERE id = ANY($1) AND instance_id = $2 RETURNING id")
}

/// Deletes an instance's timers (it finished).
pub(super) const DISARM_TIMERS: &str = "DELETE FROM timers WHERE instance_id = $1";

/// Consumes an activity work item (`$1` id, `$2` instance) and sends its result (`$3`) to the
/// run that scheduled it, in one statement; nothing (no row) if it was already consumed.
pub(super) const DELIVER_ACTIVITY_RESULT: &str =
    "WITH done AS (DELETE FROM activities WHERE id = $1 AND instance_id = $2
                   RETURNING execution_id)
     INSERT INTO messages (instance_id, event, execution_id)
     SELECT $2::text, $3::text, execution_id FROM done
     RETURNING id, execution_id";

/// Consumes a timer (`$1` id, `$2` instance) and sends its firing (`$3`) to the run that armed
/// it, in one statement; nothing (no row) if it was already consumed.
pub(super) const DELIVER_TIMER_FIRED: &str =
    "WITH done AS (DELETE FROM timers WHERE id = $1 AND instance_id = $2
                   RETURNING execution_id)
     INSERT INTO messages (instance_id, event, execution_id)
     SELECT $2::text, $3::text, execution_id FROM done
     RETURNING id, execution_id";
