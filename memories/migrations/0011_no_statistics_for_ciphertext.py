"""No planner statistics for encrypted columns.

ANALYZE sorts and counts each column's sampled values; for ciphertext every value is
distinct and no query filters, joins or sorts on it, so those statistics cost ANALYZE
about a third of its time on memories (210 against 150 ms at 20,000 rows) and tell the
planner nothing. memories.analyze runs ANALYZE after bulk writes, so this is paid again
at every tenth of growth. A statistics target of 0 skips the column. The planner then
takes these columns' width from a default guess (their rows are wider than it thinks,
which only matters to the cost of sorting or hashing whole rows); on a database that was
analyzed before, the old statistics stay until the next full re-creation of the table.
"""

from django.db import migrations

OFF, DEFAULT = 0, -1
# As the models stand at this migration; a later encrypted column needs its own
# (memories/tests/test_indexes.py checks every one).
ENCRYPTED = [
    ("memories_memory", "envelope"),
    ("memories_memory", "content"),
    ("memories_memory", "value"),
    ("memories_memory", "metadata"),
    ("memories_memoryversion", "snapshot"),
    ("memories_memoryembedding", "vector"),
    ("memories_idempotentrequest", "response_body"),
]


def set_target(target: int):
    def run(apps, schema_editor):
        db = schema_editor.connection
        if db.vendor != "postgresql":  # SQLite keeps no per-column statistics
            return
        quote = db.ops.quote_name
        for table, column in ENCRYPTED:
            schema_editor.execute(
                f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column)} SET STATISTICS {target}"
            )

    return run


class Migration(migrations.Migration):
    dependencies = [("memories", "0010_version_memory_index")]

    operations = [migrations.RunPython(set_target(OFF), set_target(DEFAULT))]
