/*
 * faces.c: statements that name a managed table's face act on its storage.
 *
 * A managed table is two relations: its storage (pxt_data.<key>: the user's columns and
 * pixelgres's bookkeeping columns) and its face, a view with the table's name that shows only
 * the user's columns and passes INSERT, UPDATE and DELETE through. PostgreSQL refuses the
 * statements below on a view; users write them with the table's name, so this hook points
 * them at the storage (server/faces.py keeps the face in step with the storage's columns):
 *
 *   TRUNCATE, COPY (the face's columns unless a column list is given), ALTER TABLE (but its
 *   OWNER TO and SET/RESET options, which PostgreSQL applies to the view), ALTER TABLE ...
 *   RENAME COLUMN, CREATE INDEX, CREATE/DROP TRIGGER (not INSTEAD OF), CREATE/ALTER/DROP
 *   POLICY, VACUUM and ANALYZE;
 *   DROP TABLE drops the face as a view, and the sql_drop event trigger drops its storage;
 *   GRANT/REVOKE ON TABLE apply to the face and to its storage (COPY reads the storage's).
 *
 * Whether a view is a face is the catalog's answer (pxt.tables.face), asked only for views.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

void		pxt_faces_init(void);

static ProcessUtility_hook_type prev_utility = NULL;

/* The storage of the face ``rv`` names, or NULL when it names no face. */
static RangeVar *
storage_of(const RangeVar *rv)
{
	Oid			relid,
				nsp,
				tables;
	MemoryContext outer = CurrentMemoryContext;
	RangeVar   *out = NULL;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];

	if (rv == NULL || !IsTransactionState())
		return NULL;
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_VIEW)
		return NULL;
	nsp = get_namespace_oid("pxt", true);
	tables = OidIsValid(nsp) ? get_relname_relid("tables", nsp) : InvalidOid;
	if (!OidIsValid(tables) || get_attnum(tables, "face") == InvalidAttrNumber)
		return NULL;			/* no pixelgres here, or a release before faces */
	values[0] = ObjectIdGetDatum(relid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "pixelgres: SPI_connect failed");
	if (SPI_execute_with_args("SELECT n.nspname::text, c.relname::text FROM pxt.tables t "
							  "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid "
							  "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
							  "WHERE t.face OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		char	   *schema = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		MemoryContext spi = MemoryContextSwitchTo(outer);

		out = makeRangeVar(pstrdup(schema), pstrdup(name), rv->location);
		out->inh = rv->inh;
		out->relpersistence = rv->relpersistence;
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return out;
}

/* ``rv`` itself, or the storage when it names a face. */
static RangeVar *
redirect(RangeVar *rv, bool *changed)
{
	RangeVar   *s = storage_of(rv);

	if (s == NULL)
		return rv;
	if (rv->alias)
		s->alias = rv->alias;
	*changed = true;
	return s;
}

/* A face's columns, in order, as String nodes (a COPY column list). */
static List *
face_columns(const RangeVar *face)
{
	Relation	rel = relation_openrv(face, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *cols = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped)
			cols = lappend(cols, makeString(pstrdup(NameStr(att->attname))));
	}
	relation_close(rel, AccessShareLock);
	return cols;
}

static bool
alter_applies_to_view(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		if (cmd->subtype == AT_ChangeOwner || cmd->subtype == AT_SetRelOptions ||
			cmd->subtype == AT_ResetRelOptions)
			return true;
	}
	return false;
}

/* An object name "relation parts..., object" (DROP POLICY/TRIGGER): on the storage if the
 * relation is a face. */
static List *
on_storage(List *name, bool *changed)
{
	List	   *rel = list_copy(name);
	RangeVar   *s;

	rel = list_truncate(rel, list_length(name) - 1);
	s = storage_of(makeRangeVarFromNameList(rel));
	if (s == NULL)
		return name;
	*changed = true;
	return list_make3(makeString(s->schemaname), makeString(s->relname), llast(name));
}

/* As the sql_drop event trigger says for a table without a face (sql/functions/20_tables.sql). */
static void
refuse_drop_column(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		if (lfirst_node(AlterTableCmd, lc)->subtype == AT_DropColumn)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("columns of managed tables are dropped with pxt.drop_column (it keeps their history)")));
	}
}

/* The statement to run instead of ``node`` (``node`` when nothing names a face). */
static Node *
rewrite(Node *node, bool *changed)
{
	ListCell   *lc;

	switch (nodeTag(node))
	{
		case T_TruncateStmt:
			{
				TruncateStmt *stmt = (TruncateStmt *) node;

				foreach(lc, stmt->relations)
					lfirst(lc) = redirect(lfirst_node(RangeVar, lc), changed);
				break;
			}
		case T_CopyStmt:
			{
				CopyStmt   *stmt = (CopyStmt *) node;

				if (stmt->relation != NULL)
				{
					RangeVar   *face = stmt->relation;

					stmt->relation = redirect(face, changed);
					if (stmt->relation != face && stmt->attlist == NIL)
						stmt->attlist = face_columns(face);
				}
				break;
			}
		case T_AlterTableStmt:
			{
				AlterTableStmt *stmt = (AlterTableStmt *) node;

				if (stmt->objtype == OBJECT_TABLE && !alter_applies_to_view(stmt))
				{
					stmt->relation = redirect(stmt->relation, changed);
					if (*changed)
						refuse_drop_column(stmt);
				}
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) node;

				if (stmt->renameType == OBJECT_COLUMN && stmt->relationType == OBJECT_TABLE)
					stmt->relation = redirect(stmt->relation, changed);
				break;
			}
		case T_IndexStmt:
			{
				IndexStmt  *stmt = (IndexStmt *) node;

				stmt->relation = redirect(stmt->relation, changed);
				break;
			}
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *stmt = (CreateTrigStmt *) node;

				if (stmt->timing != TRIGGER_TYPE_INSTEAD)
					stmt->relation = redirect(stmt->relation, changed);
				break;
			}
		case T_CreatePolicyStmt:
			{
				CreatePolicyStmt *stmt = (CreatePolicyStmt *) node;

				stmt->table = redirect(stmt->table, changed);
				break;
			}
		case T_AlterPolicyStmt:
			{
				AlterPolicyStmt *stmt = (AlterPolicyStmt *) node;

				stmt->table = redirect(stmt->table, changed);
				break;
			}
		case T_VacuumStmt:
			{
				VacuumStmt *stmt = (VacuumStmt *) node;

				foreach(lc, stmt->rels)
				{
					VacuumRelation *vr = lfirst_node(VacuumRelation, lc);

					if (vr->relation != NULL && vr->va_cols == NIL)
						vr->relation = redirect(vr->relation, changed);
				}
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) node;
				List	   *faces = NIL;
				List	   *rest = NIL;

				if (stmt->removeType == OBJECT_POLICY || stmt->removeType == OBJECT_TRIGGER)
				{
					/* DROP POLICY / TRIGGER name ON face: the policy or trigger is the storage's */
					foreach(lc, stmt->objects)
						lfirst(lc) = on_storage(lfirst(lc), changed);
					break;
				}
				if (stmt->removeType != OBJECT_TABLE)
					break;
				foreach(lc, stmt->objects)
				{
					List	   *name = lfirst(lc);
					RangeVar   *rv = makeRangeVarFromNameList(name);

					if (storage_of(rv) != NULL)
						faces = lappend(faces, name);
					else
						rest = lappend(rest, name);
				}
				if (faces != NIL && rest == NIL)
				{
					stmt->removeType = OBJECT_VIEW;
					*changed = true;
				}
				else if (faces != NIL)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("DROP TABLE names both pixelgres tables and other tables"),
							 errhint("Drop the pixelgres tables in a statement of their own.")));
				break;
			}
		default:
			break;
	}
	return node;
}

/* The relations a GRANT/REVOKE ON TABLE names, with each face's storage added. */
static void
grant_storage_too(GrantStmt *stmt, bool *changed)
{
	List	   *more = NIL;
	ListCell   *lc;

	if (stmt->objtype != OBJECT_TABLE || stmt->targtype != ACL_TARGET_OBJECT)
		return;
	foreach(lc, stmt->objects)
	{
		RangeVar   *s = storage_of(lfirst_node(RangeVar, lc));

		if (s != NULL)
			more = lappend(more, s);
	}
	if (more != NIL)
	{
		stmt->objects = list_concat(stmt->objects, more);
		*changed = true;
	}
}

static void
faces_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			  ProcessUtilityContext context, ParamListInfo params,
			  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *node = pstmt->utilityStmt;

	switch (nodeTag(node))
	{
		case T_TruncateStmt:
		case T_CopyStmt:
		case T_AlterTableStmt:
		case T_RenameStmt:
		case T_IndexStmt:
		case T_CreateTrigStmt:
		case T_CreatePolicyStmt:
		case T_AlterPolicyStmt:
		case T_VacuumStmt:
		case T_DropStmt:
		case T_GrantStmt:
			{
				PlannedStmt *copy = copyObject(pstmt);
				bool		changed = false;

				if (IsA(copy->utilityStmt, GrantStmt))
					grant_storage_too((GrantStmt *) copy->utilityStmt, &changed);
				else
					copy->utilityStmt = rewrite(copy->utilityStmt, &changed);
				if (changed)
				{
					pstmt = copy;
					readOnlyTree = false;
				}
				break;
			}
		default:
			break;
	}
	if (prev_utility)
		prev_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
pxt_faces_init(void)
{
	prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = faces_utility;
}
