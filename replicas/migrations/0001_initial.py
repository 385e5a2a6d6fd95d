from django.db import migrations, models


def set_unlogged(apps, schema_editor):
    # Positions are read on the primary only and matter for a few seconds after a write
    # (until the replicas replay it), so they need no WAL of their own: recording one costs
    # no extra flush. After a primary crash they start empty (docs/SCALING.md).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE replicas_writeposition SET UNLOGGED")


def set_logged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE replicas_writeposition SET LOGGED")


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="WritePosition",
            fields=[
                ("owner_id", models.CharField(max_length=255, primary_key=True, serialize=False)),
                (
                    "lsn",
                    models.BigIntegerField(help_text="The WAL position as bytes from 0/0."),
                ),
            ],
        ),
        migrations.RunPython(set_unlogged, set_logged),
    ]
