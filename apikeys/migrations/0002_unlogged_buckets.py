from django.db import migrations


def set_unlogged(apps, schema_editor):
    # Bucket state is worthless after a crash (every bucket simply starts full again), so
    # PostgreSQL need not write it to the WAL: the per-request upsert gets much cheaper.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE apikeys_ratelimitbucket SET UNLOGGED")


def set_logged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE apikeys_ratelimitbucket SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [("apikeys", "0001_initial")]
    operations = [migrations.RunPython(set_unlogged, set_logged)]
