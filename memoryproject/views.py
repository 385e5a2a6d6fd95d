from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from memoryproject.errors import is_database_down
from memoryproject.schema import ERROR


class StatusView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(
        summary="Service status",
        operation_id="service_status",
        tags=["service"],
        auth=[],
        responses=inline_serializer(
            "Status",
            {
                "service": serializers.CharField(),
                "version": serializers.CharField(),
                "status": serializers.CharField(),
                "docs": serializers.CharField(),
            },
        ),
    )
    def get(self, request):
        return Response(
            {
                "service": settings.SERVICE_NAME,
                "version": settings.SERVICE_VERSION,
                "status": "ok",
                "docs": "/docs",
            }
        )


class HealthView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(
        summary="Health check: 200 when the database answers, 503 when it does not",
        operation_id="service_health",
        tags=["service"],
        auth=[],
        responses={
            200: inline_serializer(
                "Health",
                {"status": serializers.CharField(), "database": serializers.CharField()},
            ),
            503: ERROR,
        },
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:
            if not is_database_down(exc):
                raise
            return Response(
                {"detail": "Database unavailable", "status": "unavailable", "database": "down"},
                status=503,
            )
        return Response({"status": "ok", "database": "ok"})
