from django.urls import path

from gdpr import views

urlpatterns = [
    path("export", views.ExportView.as_view(), name="gdpr-export"),
    path("delete", views.EraseView.as_view(), name="gdpr-delete"),
]
