"""The admin's login, behind the lockout: failed admin logins count against the client
address like bad keys (apikeys.lockout). Included before the admin's own URLs."""

from django.contrib import admin
from django.urls import path

from apikeys import lockout

urlpatterns = [path("login/", lockout.guard(admin.site.login))]
