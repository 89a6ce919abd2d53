/*
 * replica.c: on a hot standby, a write's "cannot execute ... in a read-only transaction" says
 * where to go instead.
 *
 * A read replica (pixelgres up --replica-of) serves every read pixelgres has: tables, history,
 * time travel, similarity search. What writes (INSERT, pxt.create_table, pxt.revert, a media
 * upload...) fails there with PostgreSQL's read-only error, whatever statement inside the
 * function hit it; the hint this hook adds names the cause and the fix.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "utils/elog.h"
#include "utils/memutils.h"

void		pxt_replica_init(void);

static emit_log_hook_type prev_emit = NULL;

static void
replica_hint(ErrorData *edata)
{
	if (edata->elevel >= ERROR && edata->sqlerrcode == ERRCODE_READ_ONLY_SQL_TRANSACTION &&
		edata->hint == NULL && RecoveryInProgress())
		edata->hint = MemoryContextStrdup(ErrorContext,
										  "This server is a read-only replica (hot standby): run writes and "
										  "pixelgres DDL on its primary.");
	if (prev_emit)
		prev_emit(edata);
}

void
pxt_replica_init(void)
{
	prev_emit = emit_log_hook;
	emit_log_hook = replica_hint;
}
