from django.urls import path

from chat import views

urlpatterns = [
    path("memory/extract", views.ExtractView.as_view(), name="memory-extract"),
    path("chat", views.ChatView.as_view(), name="chat"),
]
