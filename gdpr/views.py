from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from gdpr import services
from gdpr.serializers import ErasureSerializer, ExportSerializer
from memories.serializers import UserQuerySerializer
from memoryproject.parsing import query_params
from memoryproject.schema import error_responses
from replicas.routing import read_only

TAGS = ["gdpr"]


class ExportView(APIView):
    # No HEAD: it would run and audit a whole export to send nothing.
    http_method_names = ["get", "options"]

    @extend_schema(
        summary="Export everything stored about a user (live, deleted and expired)",
        operation_id="gdpr_export",
        description="Streamed JSON, decrypted. Audited (the user id is stored hashed).",
        tags=TAGS,
        parameters=[UserQuerySerializer],
        responses={200: ExportSerializer, **error_responses(400)},
    )
    @read_only
    def get(self, request):
        params = query_params(UserQuerySerializer, request)
        chunks = services.export_user(
            owner_id=request.auth.owner_id, user_id=params["user_id"], actor=str(request.auth.pk)
        )
        response = StreamingHttpResponse(chunks, content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="memory-export.json"'
        return response


class EraseView(APIView):
    @extend_schema(
        summary="Erase everything stored about a user under this owner",
        operation_id="gdpr_delete",
        description="One transaction; idempotent (a second call returns zeros). Another "
        "owner's data with the same user_id is untouched. Audited without the user id in "
        "the clear.",
        tags=TAGS,
        parameters=[UserQuerySerializer],
        responses={200: ErasureSerializer, **error_responses(400)},
    )
    def delete(self, request):
        params = query_params(UserQuerySerializer, request)
        counts = services.erase_user(
            owner_id=request.auth.owner_id, user_id=params["user_id"], actor=str(request.auth.pk)
        )
        return Response(
            {
                "owner_id": request.auth.owner_id,
                "user_id": params["user_id"],
                "deleted": counts,
                "total": sum(counts.values()),
            }
        )
