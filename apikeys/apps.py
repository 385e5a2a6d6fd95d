from django.apps import AppConfig
from django.contrib.auth.signals import user_login_failed


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys and audit log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apikeys.lockout import record_login_failure

        user_login_failed.connect(record_login_failure, dispatch_uid="apikeys.lockout")
