from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from memoryproject.errors import is_database_down
from memoryproject.schema import ERROR
from replicas.services import replica_health


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
        description="With read replicas configured, `replicas` gives each one's state "
        "(`ok`, `lagging`, `disconnected`, `down`, or `primary` when it is not in "
        "recovery) and lag; a replica that is not `ok` is skipped, and never fails the "
        "check.",
        tags=["service"],
        auth=[],
        responses={
            200: inline_serializer(
                "Health",
                {
                    "status": serializers.CharField(),
                    "database": serializers.CharField(),
                    "replicas": serializers.ListField(
                        required=False,
                        child=inline_serializer(
                            "ReplicaHealth",
                            {
                                "name": serializers.CharField(),
                                "state": serializers.CharField(),
                                "lag_seconds": serializers.FloatField(allow_null=True),
                            },
                        ),
                    ),
                },
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
        body: dict[str, object] = {"status": "ok", "database": "ok"}
        if settings.REPLICA_DATABASES:
            body["replicas"] = replica_health()
        return Response(body)
