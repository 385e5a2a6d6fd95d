"""content, value and metadata move into one encrypted column, `envelope`.

Nothing is converted here: existing rows keep their three tokens, in the same columns (now
nullable, and named legacy_* in the model), and are read from them until their next write,
which moves them into the envelope; rotate_encryption_key writes every row. No column is
renamed or dropped, so a worker of the previous version that still runs while this
migration applies keeps reading and writing the rows it knows. It cannot read rows that
the new code writes, and a change it makes to one is lost: old workers must stop before
new ones serve (docs/DEPLOYMENT.md).
"""

from django.db import migrations

import memories.models


class Migration(migrations.Migration):
    dependencies = [
        ("memories", "0008_key_index_newest_first"),
    ]

    operations = [
        migrations.AlterField(
            model_name="memory",
            name="content",
            field=memories.models.EncryptedTextField(null=True),
        ),
        migrations.AlterField(
            model_name="memory",
            name="metadata",
            field=memories.models.EncryptedJSONField(null=True),
        ),
        migrations.AlterField(
            model_name="memory",
            name="value",
            field=memories.models.EncryptedJSONField(null=True),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField("memory", "content", "legacy_content"),
                migrations.RenameField("memory", "value", "legacy_value"),
                migrations.RenameField("memory", "metadata", "legacy_metadata"),
                migrations.AlterField(
                    model_name="memory",
                    name="legacy_content",
                    field=memories.models.EncryptedTextField(
                        db_column="content", editable=False, null=True
                    ),
                ),
                migrations.AlterField(
                    model_name="memory",
                    name="legacy_value",
                    field=memories.models.EncryptedJSONField(
                        db_column="value", editable=False, null=True
                    ),
                ),
                migrations.AlterField(
                    model_name="memory",
                    name="legacy_metadata",
                    field=memories.models.EncryptedJSONField(
                        db_column="metadata", editable=False, null=True
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="memory",
            name="envelope",
            field=memories.models.EncryptedJSONField(editable=False, null=True),
        ),
    ]
