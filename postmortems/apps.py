from django.apps import AppConfig


class PostmortemsConfig(AppConfig):
    name = "postmortems"
    verbose_name = "Post-mortems"

    def ready(self) -> None:
        # The training chain joins the audit trail's registry (incidents imports no app above it).
        from postmortems import training_audit

        training_audit.register()
