from django.apps import AppConfig


class ReplicasConfig(AppConfig):
    name = "replicas"
    verbose_name = "Read replicas"
    default_auto_field = "django.db.models.BigAutoField"
